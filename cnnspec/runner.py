"""``cnnspec run``: an exported model, ONNX Runtime and the user's files (.npy arrays or images).

No framework at import time; onnxruntime, numpy and Pillow are imported inside the functions that
need them. Models are read only through :func:`cnnspec.onnxio.read_model`, which refuses files that
are not models or whose external data reaches outside their folder. Every problem with a model or
an input is one line naming the file (``InputError``); a missing CUDA provider is
``BackendUnavailable``, never a silent fall-back to the CPU.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import BackendUnavailable, InputError, UsageError
from .images import IMAGE_MODES, load_image

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
MAX_NPY_BYTES = 2 * 1024 ** 3
NPY_SUFFIXES = (".npy",)


@dataclass(frozen=True)
class Sample:
    """Where a sample came from: a file, and its index within the file for a batched .npy array."""

    file: str
    index: int | None


# ---------------------------------------------------------------- the model

def _session(model_path: str, provider: str):
    """An ONNX Runtime session on exactly the asked-for provider."""
    import onnxruntime as ort

    from .onnxio import read_model

    if provider not in PROVIDERS:
        raise UsageError(f"unknown provider '{provider}'; choose one of {', '.join(PROVIDERS)}")
    wanted = PROVIDERS[provider]
    available = ort.get_available_providers()
    if wanted not in available:
        raise BackendUnavailable(
            f"--provider {provider}: this onnxruntime {ort.__version__} has no {wanted} (it has "
            f"{', '.join(available)}); install onnxruntime-gpu with a matching CUDA, or use --provider cpu")
    model = read_model(model_path)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: warnings would interleave with the results
    chain = [wanted] if wanted == "CPUExecutionProvider" else [wanted, "CPUExecutionProvider"]
    try:
        # by path, so external data (already checked to stay inside the model's folder) is found
        session = ort.InferenceSession(str(model_path), sess_options=options, providers=chain)
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{model_path}: ONNX Runtime cannot load this model ({first[:200]})") from None
    if session.get_providers()[0] != wanted:
        raise BackendUnavailable(f"--provider {provider}: ONNX Runtime could not start {wanted} "
                                 f"(is CUDA installed and a GPU present?); use --provider cpu")
    return model, session


def _input_layout(model_path: str, session, meta: dict) -> tuple[object, tuple[int, int, int]]:
    """(batch dimension: an int when fixed, else None) and the model's (C, H, W)."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise InputError(f"{model_path}: the model has {len(inputs)} inputs; cnnspec run feeds models with one")
    spec = inputs[0]
    if spec.type != "tensor(float)":
        raise InputError(f"{model_path}: the model's input is {spec.type}; cnnspec run feeds float32 images")
    shape = list(spec.shape)
    if len(shape) != 4:
        raise InputError(f"{model_path}: the model's input has shape {shape}; cnnspec run feeds "
                         f"[batch, channels, height, width]")
    chw = shape[1:]
    if not all(isinstance(d, int) and d > 0 for d in chw):
        try:
            chw = [int(v) for v in json.loads(meta.get("cnnspec.input_shape", "null"))]
        except (TypeError, ValueError):
            raise InputError(f"{model_path}: the model's input shape {shape} leaves channels, height or "
                             f"width open; cnnspec run needs them fixed") from None
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    return batch, tuple(chw)


def _classes(meta: dict, n_outputs: int) -> list[str] | None:
    try:
        classes = json.loads(meta["cnnspec.classes"])
    except (KeyError, ValueError):
        return None
    if isinstance(classes, list) and len(classes) == n_outputs and all(isinstance(c, str) for c in classes):
        return classes
    return None


def _ends_in_softmax(meta: dict) -> bool | None:
    """From the spec in the metadata: does the last computing layer produce a softmax? None: no spec."""
    try:
        spec = json.loads(meta["cnnspec.spec"])
        layers = list(spec["layers"])
    except (KeyError, ValueError, TypeError):
        return None
    for layer in reversed(layers):
        if isinstance(layer, str):
            op, args = layer, None
        elif isinstance(layer, dict):
            ops = [k for k in layer if k not in ("name", "in", "expect")]
            if len(ops) != 1:
                return None
            op, args = ops[0], layer[ops[0]]
        else:
            return None
        if op == "dropout":  # nothing at inference: look at the layer before
            continue
        return op == "softmax" or (isinstance(args, dict) and args.get("activation") == "softmax")
    return None


# ---------------------------------------------------------------- the inputs

def _load_npy(path: Path, chw):
    import numpy as np

    try:
        if path.stat().st_size > MAX_NPY_BYTES:
            raise InputError(f"{path}: larger than the {MAX_NPY_BYTES} bytes cnnspec run reads")
        array = np.load(path, allow_pickle=False, mmap_mode="r")
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: no such input file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not an input file") from None
    except (ValueError, OSError, EOFError) as exc:
        text = str(exc)
        if "pickle" in text or "Python objects" in text:
            reason = "it holds Python objects, which cnnspec never unpickles"
        else:
            reason = text.splitlines()[0][:120] if text else type(exc).__name__
        raise InputError(f"{path}: not a readable .npy array ({reason})") from None
    if not isinstance(array, np.ndarray):
        raise InputError(f"{path}: holds several arrays (an .npz?); pass one [N, C, H, W] array per .npy file")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise InputError(f"{path}: holds {array.dtype} values; cnnspec run needs real numbers (float32 preferred)")
    shape = tuple(array.shape)
    if shape == tuple(chw):
        array, indexed = array[None], False
    elif len(shape) == 4 and shape[1:] == tuple(chw):
        indexed = True
    else:
        raise InputError(f"{path}: array of shape {list(shape)} does not fit the model's input; it takes "
                         f"[N, {chw[0]}, {chw[1]}, {chw[2]}] or [{chw[0]}, {chw[1]}, {chw[2]}]")
    if array.shape[0] == 0:
        raise InputError(f"{path}: the array holds no samples (shape {list(shape)})")
    data = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(data).all():
        raise InputError(f"{path}: holds NaN or infinite values")
    samples = [Sample(str(path), i if indexed else None) for i in range(data.shape[0])]
    return data, samples


def _load_image(path: Path, chw):
    import numpy as np

    c, h, w = chw
    if c not in IMAGE_MODES:
        raise InputError(f"{path}: the model takes {c} channels, and images give 1 (grey) or 3 (RGB); "
                         f"pass a .npy array instead")
    return np.ascontiguousarray(load_image(path, c, h, w)[None]), [Sample(str(path), None)]


def load_inputs(paths, chw):
    """All samples from all files as one float32 [N, C, H, W] array, and where each came from."""
    import numpy as np

    arrays, samples = [], []
    for name in paths:
        path = Path(name)
        loader = _load_npy if path.suffix.lower() in NPY_SUFFIXES else _load_image
        data, found = loader(path, chw)
        arrays.append(data)
        samples.extend(found)
    return np.concatenate(arrays, axis=0), samples


# ---------------------------------------------------------------- running

def softmax(scores):
    import numpy as np

    shifted = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def _run_batches(session, data, batch, batch_size: int):
    import numpy as np

    name = session.get_inputs()[0].name
    step = batch or batch_size
    outputs = []
    for start in range(0, data.shape[0], step):
        chunk = data[start:start + step]
        real = chunk.shape[0]
        if batch and real < batch:  # a model with a fixed batch: pad the last chunk, drop the padding
            chunk = np.concatenate([chunk, np.zeros((batch - real,) + chunk.shape[1:], np.float32)])
        outputs.append(session.run(None, {name: chunk})[0][:real])
    return np.concatenate(outputs, axis=0)


def run_model(model_path, inputs: list[str], provider: str = "cpu", batch_size: int = 32, top: int = 5) -> dict:
    """Run ``model_path`` on every sample of ``inputs``; a JSON-ready result (see ``format_results``)."""
    import numpy as np

    from .onnxio import metadata

    if batch_size < 1:
        raise UsageError(f"--batch-size must be 1 or more, got {batch_size}")
    if top < 1:
        raise UsageError(f"--top must be 1 or more, got {top}")
    if not inputs:
        raise UsageError("no input files; pass --input FILE...")
    model_path = str(model_path)
    model, session = _session(model_path, provider)
    meta = metadata(model)
    batch, chw = _input_layout(model_path, session, meta)
    data, samples = load_inputs(inputs, chw)
    raw = _run_batches(session, data, batch, batch_size)
    result = {
        "model": model_path,
        "name": meta.get("cnnspec.name", model.graph.name),
        "provider": provider,
        "input_shape": list(chw),
        "output_shape": list(raw.shape[1:]),
    }
    if raw.ndim != 2:  # not class scores: summarise each sample's output
        result["probabilities"] = None
        result["results"] = [
            {"input": s.file, "index": s.index, "min": float(o.min()), "max": float(o.max()), "mean": float(o.mean())}
            for s, o in zip(samples, raw)]
        return result
    ends_in_softmax = _ends_in_softmax(meta)
    if ends_in_softmax is None:  # no cnnspec spec in the file: judge by the numbers
        ends_in_softmax = bool(np.all(raw >= 0) and np.allclose(raw.sum(axis=1), 1.0, atol=1e-4))
    probs = raw.astype(np.float64) if ends_in_softmax else softmax(raw.astype(np.float64))
    result["probabilities"] = "model" if ends_in_softmax else "softmax"
    classes = _classes(meta, raw.shape[1])
    k = min(top, raw.shape[1])
    entries = []
    for sample, p in zip(samples, probs):
        order = np.argsort(-p, kind="stable")[:k]
        entries.append({"input": sample.file, "index": sample.index, "top": [
            {"class": int(i), "label": classes[i] if classes else None, "probability": float(p[i])} for i in order]})
    result["results"] = entries
    return result


# ---------------------------------------------------------------- output

PROBABILITY_NOTES = {
    "model": "probabilities as the model outputs them (it ends in softmax)",
    "softmax": "probabilities: softmax applied to the model's outputs (it does not end in softmax)",
}


def format_results(result: dict) -> str:
    """The human-readable report: per sample, the top classes with labels and probabilities, aligned."""
    lines = [f"{result['model']} ({result['name']}) on {result['provider']}, input {result['input_shape']}, "
             f"output {result['output_shape']}"]
    if result["probabilities"] is None:
        width = max(len(_where(r)) for r in result["results"])
        for r in result["results"]:
            lines.append(f"{_where(r):<{width}}  min {r['min']:.6g}  max {r['max']:.6g}  mean {r['mean']:.6g}")
        return "\n".join(lines)
    lines.append(PROBABILITY_NOTES[result["probabilities"]])
    all_top = [t for r in result["results"] for t in r["top"]]
    index_width = max(len(str(t["class"])) for t in all_top)
    # labels that only repeat the class index ("0".."9" for digits) are shown once
    named = any(t["label"] and t["label"] != str(t["class"]) for t in all_top)
    label_width = max((len(t["label"]) for t in all_top if t["label"]), default=0) if named else 0
    for r in result["results"]:
        lines.append(_where(r))
        for rank, t in enumerate(r["top"], 1):
            label = f"  {t['label']:<{label_width}}" if label_width else ""
            lines.append(f"  {rank:>2}. {t['class']:>{index_width}}{label}  {t['probability']:.4f}")
    return "\n".join(lines)


def _where(entry: dict) -> str:
    return entry["input"] if entry["index"] is None else f"{entry['input']}[{entry['index']}]"


def to_json(result: dict) -> str:
    return json.dumps(result, indent=2, ensure_ascii=False)
