"""The model side of ``cnnspec run``: an ONNX Runtime session on exactly the asked-for provider,
and the input layout the model takes.

Models are read only through :func:`cnnspec.onnxfile.boundary.read_model`, which refuses files that are not
models or whose external data reaches outside their folder. A missing CUDA provider is
``BackendUnavailable``, never a silent fall-back to the CPU. The input shape, from the graph or
from the metadata, is checked (three whole numbers, 1 to MAX_DIM each) before anything is sized
by it; whatever ONNX Runtime raises, loading or running, is one line naming the model, and its
own log stays off stderr.
"""
from __future__ import annotations

from ..errors import BackendUnavailable, InputError, UsageError
from .metadata import INPUT_SHAPE_KEY, read_json
from .options import session_options

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
MAX_DIM = 1_000_000  # a spec's own bound on a size: more never came from cnnspec
ORT_QUIET = 4  # ONNX Runtime's log: fatal only; its errors reach the user as our one line


def open_session(model_path: str, provider: str, threads: int | None = None):
    """(the parsed model, an ONNX Runtime session on exactly the asked-for provider)."""
    import onnxruntime as ort

    from ..onnxfile.boundary import read_model

    if provider not in PROVIDERS:
        raise UsageError(f"unknown provider '{provider}'; choose one of {', '.join(PROVIDERS)}")
    wanted = PROVIDERS[provider]
    available = ort.get_available_providers()
    if wanted not in available:
        raise BackendUnavailable(
            f"--provider {provider}: this onnxruntime {ort.__version__} has no {wanted} (it has "
            f"{', '.join(available)}); install onnxruntime-gpu with a matching CUDA, or use --provider cpu")
    model = read_model(model_path)
    ort.set_default_logger_severity(ORT_QUIET)
    options = session_options(threads)  # the measured settings: cnnspec/runner/options.py
    options.log_severity_level = ORT_QUIET  # its coloured lines would interleave with ours
    chain = [wanted] if wanted == "CPUExecutionProvider" else [wanted, "CPUExecutionProvider"]
    try:
        # by path, so external data (already checked to stay inside the model's folder) is found
        session = ort.InferenceSession(str(model_path), sess_options=options, providers=chain)
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        raise InputError(f"{model_path}: ONNX Runtime cannot load this model ({_first_line(exc)})") from None
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
    if not all(_is_dim(d) for d in chw):
        declared = read_json(meta, INPUT_SHAPE_KEY)
        if declared is None and not all(isinstance(d, int) for d in chw):
            raise InputError(f"{model_path}: the model's input shape {shape} leaves channels, height or "
                             f"width open, and its metadata holds no usable {INPUT_SHAPE_KEY}; cnnspec run "
                             f"needs them fixed")
        chw = declared if declared is not None else chw
        _check_dims(model_path, chw, f"the {INPUT_SHAPE_KEY} in its metadata" if declared is not None else
                    "its input shape")
    batch = shape[0] if _is_dim(shape[0]) else None
    return batch, tuple(chw)


def _is_dim(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_DIM


def _check_dims(model_path: str, dims, source: str) -> None:
    """Channels, height, width as three whole numbers 1 to MAX_DIM, or one line saying which is not."""
    if not isinstance(dims, list) or len(dims) != 3:
        raise InputError(f"{model_path}: {source} is {_short(dims)}; cnnspec run needs [channels, height, width]")
    if not all(_is_dim(d) for d in dims):
        raise InputError(f"{model_path}: {source} is {_short(dims)}; each size must be a whole number from 1 "
                         f"to {MAX_DIM:,}")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def run_batches(session, data, batch, batch_size: int, model_path: str = "the model", output: str | None = None):
    """The model's raw output for every sample (its first output, or the ONNX output named ``output``),
    ``batch_size`` at a time (or the model's fixed batch); whatever ONNX Runtime raises (an
    allocation it cannot make, a node that fails) is one line."""
    wanted = output if output is not None else session.get_outputs()[0].name
    return run_batches_all(session, data, batch, batch_size, model_path, [wanted])[0]


def run_batches_all(session, data, batch, batch_size: int, model_path: str = "the model", outputs=None) -> list:
    """Every output named in ``outputs`` (ONNX names; None: all, in order), one array each."""
    import numpy as np

    name = session.get_inputs()[0].name
    names = list(outputs) if outputs is not None else [o.name for o in session.get_outputs()]
    step = batch or batch_size
    results = [[] for _ in names]
    for start in range(0, data.shape[0], step):
        chunk = data[start:start + step]
        real = chunk.shape[0]
        if batch and real < batch:  # a model with a fixed batch: pad the last chunk, drop the padding
            chunk = np.concatenate([chunk, np.zeros((batch - real,) + chunk.shape[1:], np.float32)])
        try:
            values = session.run(names, {name: chunk})
        except Exception as exc:  # onnxruntime's pybind types (Fail, RuntimeException, ...)
            raise InputError(f"{model_path}: ONNX Runtime failed while running it ({_first_line(exc)})") from None
        for held, value in zip(results, values):
            held.append(value[:real])
    return [np.concatenate(held, axis=0) for held in results]
