"""``flowmaps report --run DIR``: one self-contained HTML page about a run.

The page embeds its images (base64 PNG) and needs no network: the resolved config and the
automatic choices, a data summary with real data, loss and gradient-norm curves, samples at each
N (the same noise across N) beside real data, the metrics table with the perfect-sampler floor
or a real-data baseline, the EMA choice, step time and throughput, and the provenance.
"""
from __future__ import annotations

import base64
import html
import io
import json
import platform
from pathlib import Path
from typing import Any

import torch
import yaml

from .errors import RunError
from .kinds import data_kind
from .metrics.registry import METRICS
from .plots import plot_training
from .run_folder import RunFolder
from .train.budget import budget_summary
from .train.builders import build_data
from .train.checkpoint import write_text_atomic


def _img(png: bytes, alt: str, width: str = "100%") -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" style="max-width:{width}" src="data:image/png;base64,{data}">'


def _table(header: list[str] | None, rows: list[list[Any]]) -> str:
    """An HTML table; ``header`` None for a two-column key/value table without a header row."""
    head = "" if header is None else "<thead><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr></thead>"
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _real_data_png(cfg: Any, shape: tuple[int, ...]) -> bytes | None:
    """A picture of real training data (:meth:`flowmaps.kinds.DataKind.real_data_png`), or None
    when the data are unavailable."""
    try:
        source = build_data(cfg)
    except (FileNotFoundError, ValueError, OSError):
        return None
    return data_kind(cfg, shape, getattr(source, "normalization", None)).real_data_png(source)


def _better_text(names: list[str]) -> str:
    """Which way is better, for the metrics in the table (the registry's ``higher_is_better``)."""
    higher = [n for n in names if n in METRICS and METRICS[n].higher_is_better]
    if not higher:
        return "Lower is better for every metric."
    return f"Lower is better for every metric but {', '.join(higher)}, where higher is better."


def _curves_png(records: list[dict[str, Any]]) -> bytes:
    buf = io.BytesIO()
    plot_training(records, buf)
    return buf.getvalue()


VERDICT_STYLE = {"good": "color:#070", "weak": "color:#a60", "failing": "color:#b00;font-weight:bold"}


def _audit_section(folder: RunFolder) -> list[str]:
    """The audit (``audit.json``, :mod:`flowmaps.audit`): one row per N and figure, with its verdict."""
    path = folder.audit
    if not path.is_file():
        return ["<h2>Audit</h2><p>Not audited yet: <code>flowmaps audit --run DIR</code> measures fidelity, coverage, "
                "memorisation and validity against held-out data.</p>"]
    audit = json.loads(path.read_text())
    counts = ", ".join(f"{v:,} {k}" for k, v in audit["counts"].items())
    out = [f"<h2>Audit against held-out data</h2><p>In {html.escape(audit['features'])}; {counts}. "
           "Each figure beside what real data score on the same test; the rule behind each verdict is in its row "
           "(and in <code>flowmaps.audit</code>'s documentation).</p>"]
    out += [f"<p class='warn'>{html.escape(n)}</p>" for n in audit.get("notes", [])]
    rows = []
    for n, figures in audit["figures"].items():
        for f in figures:
            ref = ", ".join(f"{k} {v:.3f}" for k, v in f["references"].items())
            verdict = f"<span style='{VERDICT_STYLE.get(f['verdict'], '')}'>{html.escape(f['verdict'])}</span>"
            rows.append([n, f["name"], f["value"], ref, verdict, f["rule"]])
    head = "<tr>" + "".join(f"<th>{h}</th>" for h in ["N", "figure", "value", "reference", "verdict", "rule"]) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{c if i == 4 else html.escape(_fmt(c))}</td>" for i, c in enumerate(r)) + "</tr>"
                   for r in rows)
    out.append(f"<table>{head}{body}</table>")
    nearest = folder.audit_nearest
    if nearest.is_file():
        out.append("<h3>Samples above their nearest training pictures (memorisation, shown)</h3>"
                   + _img(nearest.read_bytes(), "nearest training pictures"))
    marginals = folder.audit_marginals
    if marginals.is_file():
        out.append("<h3>Each column: training rows against samples</h3>" + _img(marginals.read_bytes(), "marginals"))
    return out


def build_report(run_dir: str | Path) -> str:
    """The HTML text of the report of run ``run_dir``."""
    folder = RunFolder(run_dir)
    root = folder.path
    if not folder.is_run():
        raise RunError(f"{str(root)!r} is not a flowmaps run folder (no config.yaml / run.json)")
    cfg = folder.read_config()
    meta = folder.read_meta()
    shape = tuple(meta["shape"])
    records = folder.read_jsonl(folder.metrics)
    result = json.loads(folder.evaluation.read_text()) if folder.evaluation.is_file() else None
    auto = json.loads(folder.autoconfig.read_text()) if folder.autoconfig.is_file() else None

    parts: list[str] = []
    title = f"flowmaps run {root.name}: {cfg.method} on {cfg.data.name}"
    parts.append(f"<h1>{html.escape(title)}</h1>")
    last_step = records[-1]["step"] if records else 0
    summary = [
        ["method", cfg.method], ["data", cfg.data.name + (f" ({cfg.data.path})" if cfg.data.path else "")],
        ["data shape", " x ".join(map(str, shape))], ["classes", meta.get("num_classes", 0)],
        ["noise scale sigma", float(meta["sigma"])], ["network parameters", f"{meta.get('parameters', 0):,}"],
        ["steps trained", f"{last_step:,} of {cfg.train.steps:,}"], ["batch", cfg.train.batch_size],
        ["precision", meta.get("precision", cfg.train.precision)], ["device", meta.get("device", "?")],
    ]
    if "budget" in meta:
        summary.append(["budget", budget_summary(meta["budget"])])
    parts.append("<h2>Summary</h2>" + _table(None, summary))

    # metrics
    parts.append("<h2>Metrics</h2>")
    if result is None:
        parts.append("<p>This run has not been evaluated yet: <code>flowmaps eval --run DIR</code>.</p>")
    else:
        table = result["metrics"]
        names: list[str] = []
        for per_n in table.values():
            for row in per_n.values():
                names += [k for k in row if k not in names and k != "nfe"]
        rows = [[solver, n, int(row["nfe"])] + [row.get(k, "") for k in names]
                for solver, per_n in table.items() for n, row in per_n.items()]
        for label, values in (result.get("reference") or {}).items():
            rows.append([label, "", ""] + [values.get(k, "") for k in names])
        parts.append(_table(["solver", "N", "network calls"] + names, rows))
        prov = result.get("provenance", {})
        parts.append(f"<p>Weights evaluated: <b>{html.escape(str(prov.get('ema', '?')))}</b>; "
                     f"{prov.get('num_samples', '?')} samples per row from the same noise (seed {prov.get('noise_seed', '?')}). "
                     f"{_better_text(names)}</p>")
        choice = result.get("guidance_choice")
        if choice:
            reached = "" if choice["reached"] else f", below the target {choice['target']:.2f}"
            parts.append(f"<p>Guidance recommended by the evaluation: <b>{html.escape(choice['chosen'])}</b> (class accuracy "
                         f"{choice['class_accuracy']:.3f} at N = {choice['at_steps']}{reached}).</p>")
        per_class = result.get("class_accuracy_per_class")
        if per_class:
            k = len(next(iter(next(iter(per_class.values())).values())))
            prow = [[key, n] + accs for key, per_n in per_class.items() for n, accs in per_n.items()]
            parts.append("<h3>Class accuracy per class</h3>" + _table(["rows", "N"] + [f"class {c}" for c in range(k)], prow))
        for metric, why in (result.get("skipped_metrics") or {}).items():
            parts.append(f"<p class='warn'>Skipped {html.escape(metric)}: {html.escape(why)}</p>")
        sel = result.get("ema_selection")
        if sel:
            srows = sorted(sel["scores"].items(), key=lambda kv: kv[1])
            parts.append(f"<h3>Weight averages compared ({html.escape(sel['metric'])}, mean over N = "
                         f"{', '.join(map(str, sel['steps']))}, {sel['samples']} samples, noise of its own)</h3>")
            parts.append(_table(["weights", sel["metric"], ""],
                                [[k, v, "chosen" if k == sel["chosen"] else ("reconstructed post hoc" if k in sel["reconstructed"] else "")]
                                 for k, v in srows]))

    # samples
    parts.append("<h2>Samples</h2><p>The same noise in every column (2-D) or row (images); N is the number of "
                 "flow-map steps.</p>")
    real = _real_data_png(cfg, shape)
    sample_files = folder.sample_grids("final")
    if real is not None:
        parts.append(_img(real, "real data", "360px" if len(shape) == 1 else "100%"))
    for f in sample_files:
        parts.append(f"<div>{_img(f.read_bytes(), f.stem)}</div>")
    if not sample_files:
        parts.append("<p>No samples yet (they are drawn by the evaluation).</p>")

    parts += _audit_section(folder)

    # training
    parts.append("<h2>Training</h2>")
    if records:
        parts.append(_img(_curves_png(records), "loss and gradient norm"))
        rates = [r["steps_per_s"] for r in records if r.get("steps_per_s")]
        if rates:
            rate = sorted(rates)[len(rates) // 2]
            parts.append(_table(["step time (median)", "steps / s", "samples / s", "logged windows", "skipped steps"],
                                [[f"{1000 / rate:.1f} ms", rate, rate * cfg.train.batch_size, len(records),
                                  sum(r.get("skipped", 0) for r in records)]]))
    else:
        parts.append("<p>No training log (metrics.jsonl) in this run folder.</p>")

    # config and provenance
    if auto:
        parts.append("<h2>Automatic choices</h2>" + _table(["key", "value", "why"],
                                                           [[a["key"], a["value"], a["why"]] for a in auto]))
    parts.append("<h2>Resolved configuration</h2><pre>" + html.escape(yaml.safe_dump(cfg.to_dict(), sort_keys=False)) + "</pre>")
    prov_rows = [[k, v] for k, v in (result or {}).get("provenance", {}).items()]
    prov_rows += [["report written with", f"torch {torch.__version__}, {platform.machine()}, python {platform.python_version()}"]]
    if meta.get("command"):
        prov_rows.append(["command", " ".join(meta["command"])])
    parts.append("<h2>Provenance</h2>" + _table(None, prov_rows))

    script = ("<script>window.addEventListener('load',function(){var im=document.images,ok=0;"
              "for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)ok++;}"
              "document.body.setAttribute('data-images',im.length);document.body.setAttribute('data-images-loaded',ok);});"
              "</script>")
    style = ("<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
             "th{background:#f3f3f3}pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:85%}"
             ".warn{color:#a40}img{display:block;margin:.5em 0}</style>")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>{style}"
            f"{script}</head><body>{''.join(parts)}</body></html>")


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of ``run_dir`` (default ``RUN/report.html``) atomically; returns its path."""
    path = Path(out) if out else RunFolder(run_dir).report
    write_text_atomic(path, build_report(run_dir))
    return path
