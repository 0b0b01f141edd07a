"""The model side of ``cnnspec run``: an ONNX Runtime session on exactly the asked-for provider,
and the input layout the model takes.

Models are read only through :func:`cnnspec.onnxio.read_model`, which refuses files that are not
models or whose external data reaches outside their folder. A missing CUDA provider is
``BackendUnavailable``, never a silent fall-back to the CPU.
"""
from __future__ import annotations

from ..errors import BackendUnavailable, InputError, UsageError
from .metadata import INPUT_SHAPE_KEY, read_json
from .options import session_options

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def open_session(model_path: str, provider: str, threads: int | None = None):
    """(the parsed model, an ONNX Runtime session on exactly the asked-for provider)."""
    import onnxruntime as ort

    from ..onnxio import read_model

    if provider not in PROVIDERS:
        raise UsageError(f"unknown provider '{provider}'; choose one of {', '.join(PROVIDERS)}")
    wanted = PROVIDERS[provider]
    available = ort.get_available_providers()
    if wanted not in available:
        raise BackendUnavailable(
            f"--provider {provider}: this onnxruntime {ort.__version__} has no {wanted} (it has "
            f"{', '.join(available)}); install onnxruntime-gpu with a matching CUDA, or use --provider cpu")
    model = read_model(model_path)
    options = session_options(threads)  # the measured settings: cnnspec/runner/options.py
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


def input_layout(model_path: str, session, meta: dict) -> tuple[object, tuple[int, int, int]]:
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
            chw = [int(v) for v in read_json(meta, INPUT_SHAPE_KEY)]
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"{model_path}: the model's input shape {shape} leaves channels, height or "
                             f"width open; cnnspec run needs them fixed") from None
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    return batch, tuple(chw)


def run_batches(session, data, batch, batch_size: int):
    """The model's raw outputs for every sample, ``batch_size`` at a time (or the model's fixed batch)."""
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
