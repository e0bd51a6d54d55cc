"""Generation from a patch code: a folder of pictures becomes code arrays, a flow map trains on
them from the closed-form Gaussian map of the codes, and samples decode to full resolution.

    flowmaps train --data pictures/ --code patch --minutes 3 --out runs/shapes
    flowmaps sample --run runs/shapes --steps 1 --out grid.png        # decoded pictures

The pictures are read at ``resolution`` (default: the median shorter side, at most 64), a
:class:`flowmaps.data.patch_code.PatchCode` is fitted to them in seconds, and the run folder
holds (:class:`flowmaps.run_folder.RunFolder`):

    RUN/code/codes.npy          the training pictures' codes [N, K, H/p, W/p]
    RUN/code/decoder.pt2        the decoder, torch.export (``data.decoder``): codes -> pictures
    RUN/code/code.safetensors   the code itself (basis, mean, scaling), for encoding new pictures

The run itself is an array run on the codes (``data.name=array``, ``data.scaling=none``: the
code's own per-coefficient scaling stands) with ``net.gaussian_base=true``: it starts at the
Gaussian flow map of the codes (their mean and leading covariance), so even a short run
samples the Gaussian's pictures, and learns the residual.
"""
from __future__ import annotations

import io
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from .autoconfig import native_resolution
from .data.images import load_image_folder
from .data.patch_code import PatchCode, fit_patch_code
from .errors import DataError, UsageError
from .run_folder import RunFolder
from .train.checkpoint import removed_on_failure, tensors_bytes, write_file

CODE_SETTINGS = ["data.name=array", "data.scaling=none", "net.gaussian_base=true"]
MAX_CODE_RESOLUTION = 64


def code_pictures(data: str | Path, folder: RunFolder, resolution: int | None = None, patch: int = 4,
                  energy: float = 0.95, kind: str = "pca", scaling: str = "coefficient", seed: int = 0) -> PatchCode:
    """Read the pictures under ``data``, fit their code and write RUN/code/ (module docstring);
    returns the code. Refuses a folder of fewer than 2 pictures and a resolution the patch does
    not divide, before writing anything."""
    if resolution is None:
        side = native_resolution(data)[0]
        resolution = max(patch, min(MAX_CODE_RESOLUTION, side) // patch * patch)
    if resolution % patch:
        raise UsageError(f"resolution {resolution} is not a multiple of the patch size {patch}")
    images, _ = load_image_folder(data, resolution, labels_from_subfolders=False)
    if len(images) < 2:
        raise DataError(f"{str(data)!r} holds {len(images)} readable picture(s); a code needs at least 2")
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(127.5).sub_(1.0)
    code = fit_patch_code(x, patch, energy, kind, scaling, seed)
    z = torch.cat([code.encode(x[i:i + 512]) for i in range(0, len(x), 512)])
    if z.shape[-1] == 1 and z.shape[-2] == 1:  # a whole-picture code: flat vectors [N, K]
        z = z.flatten(1)
    out = folder.code
    decoder = code.decoder().eval()
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(decoder, (z[:2],), dynamic_shapes=({0: batch},))
    # written into a temporary folder renamed into place: a crash or a full disk leaves no half code
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    with removed_on_failure(tmp, out, folder.path):
        tmp.mkdir(parents=True)
        codes, decoder_file = io.BytesIO(), io.BytesIO()
        np.save(codes, z.numpy().astype(np.float32))
        torch.export.save(program, decoder_file)
        write_file(tmp / "codes.npy", codes.getvalue())
        write_file(tmp / "code.safetensors", tensors_bytes(code.as_tensors()))
        write_file(tmp / folder.code_decoder.name, decoder_file.getvalue())
        shutil.rmtree(out, ignore_errors=True)  # a code left by an earlier start that never became a run
        os.replace(tmp, out)
    print(f"flowmaps: {len(x)} pictures at {resolution} x {resolution} -> a {kind} code of {patch} x {patch} patches: "
          f"{code.size} of {code.channels * patch * patch} coefficients keep {100 * code.energy:.1f}% of the patches' "
          f"variance; codes {list(z.shape[1:])} in {out}", file=sys.stderr)
    return code


def code_overrides(folder: RunFolder) -> list[str]:
    """The settings of the array run on RUN/code/ (module docstring)."""
    return [*CODE_SETTINGS, f"data.decoder={folder.code_decoder.resolve()}"]
