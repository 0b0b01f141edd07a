"""quantize_model: fp32 cnnspec model + training images -> checked int8 file and a report, or a
refusal with nothing written.

The order is the promise: calibrate on training images only; measure on held-out images only (the
outputs, and every layer's SQNR, :mod:`.layers`); judge against ``max_drop`` before anything is
written; then write once, checked and atomically. ``cnnspec quantize`` calls :func:`quantize_source`;
``train --quantize int8`` calls :func:`quantize_model` with the arrays it already holds.
"""
from __future__ import annotations

from pathlib import Path

from ..backend.trainconfig import DEFAULT_QUANTIZE_MAX_DROP, DEFAULT_QUANTIZE_SAMPLES
from ..errors import InputError, QuantizationRefused, UsageError, plural
from . import calibration
from .calibration import Images
from .figures import EVAL_BATCH, held_out_figures, speed_ratios
from .layers import layer_errors, weakest
from .metadata import apply_metadata, quantization_record
from .model import ModelFace, read_face
from .recipes import RECIPES, choose_recipe
from .report import QuantizeReport

DEFAULT_SAMPLES = DEFAULT_QUANTIZE_SAMPLES  # shared with train --quantize (its settings live below)
DEFAULT_MAX_DROP = DEFAULT_QUANTIZE_MAX_DROP
DEFAULT_SPEED_SECONDS = 2.0
STEP_MEMORY = 1 << 30  # bytes of activations calibration or measuring may hold at once


def default_output(model_path: str | Path) -> Path:
    """model.onnx -> model.int8.onnx, beside it."""
    p = Path(model_path)
    return p.with_name(f"{p.stem}.int8.onnx")


def quantize_model(model_path, calibration_images, held_out_images, held_out_labels=None, *, output=None,
                   source: str = "arrays", judge: str | None = None, **options) -> QuantizeReport:
    """Quantise ``model_path`` (a cnnspec fp32 model) calibrated on ``calibration_images`` (training
    images, float32 [N, C, H, W] in [0, 1], of which ``samples`` are drawn as ``cnnspec quantize``
    draws them); figures on ``held_out_images`` (and their labels, if any), judged on the output
    ``judge`` names (a layer; default: the first). Options as :func:`quantize_face`."""
    import numpy as np

    face = read_face(str(model_path), judge)
    images = Images(np.asarray(calibration_images, np.float32), np.asarray(held_out_images, np.float32),
                    None if held_out_labels is None else np.asarray(held_out_labels),
                    "" if held_out_labels is not None else "no labels were given", source)
    return quantize_face(face, images, output=output, **options)


def quantize_source(model_path, source: str, *, output=None, judge: str | None = None, **options) -> QuantizeReport:
    """Quantise ``model_path`` on ``source`` as ``train --data`` reads it (or a folder of images);
    ``judge``: the output the figures judge (``--output NAME``; default: the first)."""
    face = read_face(str(model_path), judge)
    return quantize_face(face, calibration.load_images(source, face), output=output, **options)


def quantize_face(face: ModelFace, images: Images, *, output=None, samples: int = DEFAULT_SAMPLES,
                  max_drop: float = DEFAULT_MAX_DROP, force: bool = False, recipe: str | None = None,
                  speed_seconds: float = DEFAULT_SPEED_SECONDS, threads: int | None = None) -> QuantizeReport:
    from ..files.atomic import atomic_write_bytes, check_can_create_dir
    from ..onnxfile.boundary import check_model
    from ..runner.cpuinfo import int8_isa
    from ..runner.session import open_session

    out = Path(output) if output is not None else default_output(face.path)
    _check_request(face, images, out, samples, max_drop, recipe)
    check_can_create_dir(out.parent if str(out.parent) else ".")  # fail now, not after calibrating
    isa = int8_isa()
    chosen, reason = (RECIPES[recipe], RECIPES[recipe].why) if recipe else choose_recipe(isa)

    from .quantizer import quantize_static_model

    input_name = face.proto.graph.input[0].name
    calibration_set = calibration.pick(images.train, samples)
    _, fp32 = open_session(face.path, "cpu", threads)
    _require_runs(face, fp32, calibration_set[:1])  # a forged file fails here, in one line, not in the quantiser
    calibration_batch, eval_batch = _batches(face)
    quantized, folded = quantize_static_model(
        face.proto, calibration.make_reader(calibration_set, input_name, calibration_batch), chosen, face.path)
    int8 = _session(quantized, threads)
    held = held_out_figures(fp32, int8, images.held_out, images.held_out_labels, eval_batch, face.output)
    layers = layer_errors(face.proto, quantized, images.held_out, threads)
    guard, refused = _judge(held, max_drop)
    if refused and not force:
        where = f" (weakest layers: {weakest(layers)})" if layers else ""
        raise QuantizationRefused(f"{refused}{where}; nothing written (--force writes it anyway)", refused + where)
    speed = speed_ratios(fp32, int8, images.held_out, speed_seconds) if speed_seconds > 0 else {}
    record = quantization_record(chosen, images.source, len(calibration_set), folded, Path(face.path).name,
                                 {"images": held.images, "fp32_accuracy": held.fp32_accuracy,
                                  "int8_accuracy": held.int8_accuracy, "agreement": held.agreement,
                                  "max_output_difference": held.max_output_difference})
    apply_metadata(quantized, face.metadata, record, face.proto)
    blob = check_model(quantized)
    atomic_write_bytes(out, blob)
    return QuantizeReport(
        model=face.path, output=str(out), recipe=chosen.name, recipe_description=chosen.describe(),
        recipe_reason=reason, isa=isa, source=images.source, calibration_images=len(calibration_set),
        training_images=len(images.train), batchnorms_folded=folded, held_out=held, label_note=images.label_note,
        guard=guard, forced=bool(refused), speed=speed, fp32_bytes=Path(face.path).stat().st_size,
        int8_bytes=len(blob), layers=layers, judged_output=face.output_layer if face.several_outputs else None,
        model_outputs=face.all_outputs)


def _check_request(face, images, out: Path, samples: int, max_drop: float, recipe: str | None) -> None:
    if samples < 1:
        raise UsageError(f"--samples must be 1 or more, got {samples}")
    if not max_drop >= 0:  # NaN too
        raise UsageError(f"--max-drop must be 0 or more points, got {max_drop}")
    if recipe is not None and recipe not in RECIPES:
        raise UsageError(f"unknown recipe '{recipe}'; choose one of {', '.join(RECIPES)}")
    if out.exists() and out.resolve() == Path(face.path).resolve():
        raise UsageError(f"{out}: is the model being quantised; give another -o")
    if len(images.train) == 0 or len(images.held_out) == 0:
        raise UsageError(f"{images.source}: needs training images to calibrate on and held-out images to measure")
    if tuple(images.train.shape[1:]) != face.chw or tuple(images.held_out.shape[1:]) != face.chw:
        raise UsageError(f"{images.source}: images are {list(images.train.shape[1:])} but the model takes "
                         f"{list(face.chw)}")


def _batches(face) -> tuple[int, int]:
    """(calibration batch, evaluation batch) that keep the memory of each step within
    :data:`STEP_MEMORY`. onnxruntime's calibrator keeps every intermediate value of a batch alive
    (its ReduceMin/ReduceMax nodes run at the graph's end): ResNet-50 holds 144 MB an image that
    way, and its default batch of 32 took 8 GB. Measuring needs only the forward pass's peak, for
    the two sessions at once (each keeps its arena). One image that cannot fit is refused first."""
    from ..graph.resources import require_fits
    from ..runner.footprint import FLOAT32, batch_within, every_value_elements, peak_elements

    every, peak = FLOAT32 * every_value_elements(face.proto), FLOAT32 * peak_elements(face.proto)
    require_fits(every, f"{face.path}: calibrating it keeps every intermediate value of an image alive, which would",
                 error=UsageError)
    return (batch_within(every, STEP_MEMORY, calibration.CALIBRATION_BATCH),
            batch_within(2 * peak, STEP_MEMORY, EVAL_BATCH))


def _require_runs(face, session, image) -> None:
    """The fp32 model runs on one of its calibration images, with finite outputs, or the file is
    refused: ONNX Runtime loads a file whose graph does not fit its weights and fails only when it
    runs, and weights of NaN or infinity would give NaN scales."""
    import numpy as np

    from ..runner.session import _first_line

    try:
        outputs = session.run(None, {session.get_inputs()[0].name: image})
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        raise InputError(f"{face.path}: ONNX Runtime cannot run this model ({_first_line(exc)})") from None
    if not all(np.all(np.isfinite(o)) for o in outputs):
        raise InputError(f"{face.path}: its output on a calibration image is not finite (NaN or infinity); "
                         f"int8 ranges cannot be set from it")


def _judge(held, max_drop: float) -> tuple[str, str]:
    """(how the guard judged, the refusal's reason or ""). With labels, the accuracy drop; without,
    the top-1 disagreement, which bounds any drop the labels could have shown."""
    if held.fp32_accuracy is not None:
        drop = held.drop_points
        line = (f"int8 accuracy {100 * held.int8_accuracy:.2f}% vs fp32 {100 * held.fp32_accuracy:.2f}% on "
                f"{plural(held.images, 'held-out image')} ({0.0 - drop + 0.0:+.2f} points)")
    else:
        drop = 100.0 * (1.0 - held.agreement)
        what = (f"of the pixels of {plural(held.images, 'held-out image')}" if held.per_pixel
                else f"of {plural(held.images, 'held-out image')}")
        line = (f"int8 and fp32 disagree on {drop:.2f}% {what} (no labels: the disagreement bounds the "
                f"accuracy drop)")
    if drop > max_drop:
        return f"{line}, more than --max-drop {max_drop:g}", f"{line}, more than --max-drop {max_drop:g}"
    return f"{line}, within --max-drop {max_drop:g}", ""


def _session(model, threads: int | None):
    import onnxruntime as ort

    from ..runner.options import session_options

    return ort.InferenceSession(model.SerializeToString(), sess_options=session_options(threads),
                                providers=["CPUExecutionProvider"])
