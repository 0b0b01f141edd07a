"""Saving a model's raw outputs as ``.npy`` files: what ``run`` gives for a model whose output is a map
(a segmentation, a U-Net), where top classes mean nothing, and for any model with ``--save``.

One file per input file, named after it (``photo.png`` -> ``photo.npy``; a second ``photo`` from
another folder becomes ``photo_2.npy``); a model with several outputs writes one per input file and
output, ``photo.<output name>.npy``: [C, H, W] (or [K]) for an image or an unbatched array,
[N, ...] for a batched ``.npy``. The files are published together
(:func:`cnnspec.files.publish.staged_output`), so a reader sees the whole set or the old one, and a
failure leaves the folder as it was.

For a model whose output is a [K, H, W] map of class scores (a segmentation), each image's predicted
mask (the class of highest score at each pixel) is also written as ``photo.mask.png``: a palette PNG
whose pixel values are the class indices (the colours, PASCAL VOC's palette, only show them), the
format ``cnnspec train`` reads masks in. A batched ``.npy`` gives ``name_0.mask.png``, ``name_1...``.
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


def voc_palette() -> list[int]:
    """PASCAL VOC's 256-colour palette (class i's colour from the bits of i), flat RGB."""
    out = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out += [r, g, b]
    return out


def mask_png(scores) -> bytes:
    """A palette PNG of the argmax class of [K, H, W] scores (K <= 256)."""
    import io

    import numpy as np
    from PIL import Image

    image = Image.fromarray(np.asarray(scores).argmax(axis=0).astype(np.uint8), mode="P")
    image.putpalette(voc_palette())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def mask_path(saved_npy: str, index) -> str:
    """Where the predicted mask of a sample saved in ``saved_npy`` went."""
    stem = saved_npy[:-len(".npy")]
    return f"{stem}_{index}.mask.png" if index is not None else f"{stem}.mask.png"


def is_class_map(raw) -> bool:
    return raw.ndim == 4 and 2 <= raw.shape[1] <= 256


def save_outputs(raw, samples, outdir: str | Path) -> dict[str, str]:
    """Write ``raw`` ([N, ...], one row per sample) grouped by input file; input file -> path written."""
    return save_named_outputs([(None, raw)], samples, outdir)[None]


def save_named_outputs(raws, samples, outdir: str | Path) -> dict:
    """Several outputs at once, ``raws`` a list of (output name, [N, ...] array): ``<stem>.<name>.npy``
    (``<stem>.npy`` for the name None), and for a class map each image's ``.mask.png`` beside it, all
    published together. Output name -> input file -> path."""
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
                if is_class_map(raw):
                    stem = names[file][:-len(".npy")]
                    for i, part in enumerate(parts):
                        name = f"{stem}_{i}.mask.png" if batched[file] else f"{stem}.mask.png"
                        atomic_write_bytes(stage / name, mask_png(part))
            written[output] = {file: str(Path(outdir) / name) for file, name in names.items()}
    return written


def _safe(name: str) -> str:
    """A layer name as part of a file name (they hold letters, digits, '_', '.' and '-' already)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "output"
