"""Saving a model's raw outputs as ``.npy`` files: what ``run`` gives for a model whose output is a map
(a segmentation, a U-Net), where top classes mean nothing, and for any model with ``--save``.

One file per input file, named after it (``photo.png`` -> ``photo.npy``; a second ``photo`` from
another folder becomes ``photo_2.npy``); a model with several outputs writes one per input file and
output, ``photo.<output name>.npy``: [C, H, W] (or [K]) for an image or an unbatched array,
[N, ...] for a batched ``.npy``. The files are published together
(:func:`cnnspec.files.publish.staged_output`), so a reader sees the whole set or the old one, and a
failure leaves the folder as it was.
"""
from __future__ import annotations

import re
from pathlib import Path

DEFAULT_DIR = "outputs"


def _stem(file: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(file).stem) or "output"
    name, k = base, 1
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


def save_outputs(raw, samples, outdir: str | Path) -> dict[str, str]:
    """Write ``raw`` ([N, ...], one row per sample) grouped by input file; input file -> path written."""
    return save_named_outputs([(None, raw)], samples, outdir)[None]


def save_named_outputs(raws, samples, outdir: str | Path) -> dict:
    """Several outputs at once, ``raws`` a list of (output name, [N, ...] array): ``<stem>.<name>.npy``
    (``<stem>.npy`` for the name None), all published together. Output name -> input file -> path."""
    import io

    import numpy as np

    from ..files.atomic import atomic_write_bytes
    from ..files.publish import staged_output

    files = list(dict.fromkeys(sample.file for sample in samples))
    batched = {sample.file: sample.index is not None for sample in samples}
    taken: set[str] = set()
    stems = {file: _stem(file, taken) for file in files}
    written: dict = {}
    with staged_output(outdir) as stage:
        for output, raw in raws:
            rows: dict[str, list] = {}
            for sample, row in zip(samples, raw):
                rows.setdefault(sample.file, []).append(row)
            names = {file: stems[file] + (f".{_safe(output)}" if output is not None else "") + ".npy" for file in rows}
            for file, parts in rows.items():
                array = np.stack(parts) if batched[file] else parts[0]
                buffer = io.BytesIO()
                np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
                atomic_write_bytes(stage / names[file], buffer.getvalue())
            written[output] = {file: str(Path(outdir) / name) for file, name in names.items()}
    return written


def _safe(name: str) -> str:
    """A layer name as part of a file name (they hold letters, digits, '_', '.' and '-' already)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "output"
