"""Where int8 loses precision: every layer's output in the int8 model against the same layer in the
fp32 model, on a few held-out images, as a signal-to-quantisation-noise ratio (SQNR, in dB: 10
log10 of the fp32 signal's energy over the energy of the difference; about 6 dB per bit, so 8-bit
values that use their whole range give about 40 dB, and a layer under ~20 dB is where accuracy goes).

ONNX Runtime's own tool for this comparison (``qdq_loss_debug``) is no longer maintained; this one
reads cnnspec's names: a layer's value in the QDQ model is the dequantised copy of its fp32 name
(``NAME_DequantizeLinear_Output``), or the name itself where the layer stays in float (the final
scores). Layers folded into the one after them (a conv into its batchnorm, a batchnorm and ReLU
into the conv) have no int8 value of their own; they are measured in the layer that absorbed them.

Both models run with every compared value made a graph output, so ONNX Runtime keeps them (and does
not fuse across them): the int8 side is then the QDQ arithmetic in float, which is what the int8
kernels compute, up to their own rounding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

DQ_SUFFIX = "_DequantizeLinear_Output"
# ops that move values without changing them: their SQNR is their input's, listed once is enough
VIEW_OPS = frozenset({"Flatten", "Reshape", "Identity", "Squeeze", "Unsqueeze"})
MAX_IMAGES = 8
MAX_BYTES = 256 << 20  # every compared value for every image, per model: fewer images where more


@dataclass(frozen=True)
class LayerError:
    name: str
    sqnr_db: float  # inf where int8 matches fp32 exactly
    max_abs_difference: float

    def to_json(self) -> dict:
        return {"name": self.name, "sqnr_db": None if math.isinf(self.sqnr_db) else round(self.sqnr_db, 2),
                "max_abs_difference": self.max_abs_difference}


def compared_values(fp32, int8) -> list[tuple[str, str]]:
    """(fp32 value, its int8 counterpart) for every layer output that both models hold, in the
    fp32 model's order; a view (flatten, reshape) only where it is the graph's output."""
    int8_values = {o for n in int8.graph.node for o in n.output}
    pairs = []
    for node in fp32.graph.node:
        if node.op_type in VIEW_OPS and not any(o.name in node.output for o in fp32.graph.output):
            continue
        for name in node.output:
            if name + DQ_SUFFIX in int8_values:
                pairs.append((name, name + DQ_SUFFIX))
            elif name in int8_values and _float_in(int8, name):
                pairs.append((name, name))
    return pairs


def _float_in(model, name: str) -> bool:
    """A value no QuantizeLinear produced (QuantizeLinear's outputs are integers)."""
    return not any(n.op_type == "QuantizeLinear" and name in n.output for n in model.graph.node)


def image_budget(fp32, names: list[str]) -> int:
    """How many images fit MAX_BYTES with every compared value kept (from the shapes in the fp32
    model's value_info; one image where they are unknown and large)."""
    sizes = {v.name: v for v in list(fp32.graph.value_info) + list(fp32.graph.output)}
    per_image = 0
    for name in names:
        dims = [d.dim_value for d in sizes[name].type.tensor_type.shape.dim[1:]] if name in sizes else []
        per_image += 4 * math.prod(d for d in dims if d > 0) if dims else 4 << 20
    return max(1, min(MAX_IMAGES, MAX_BYTES // max(1, per_image)))


def layer_errors(fp32, int8, images, threads: int | None = None) -> tuple[LayerError, ...]:
    """The SQNR of every compared layer on the first images of ``images`` (held-out), worst first."""
    import numpy as np

    pairs = compared_values(fp32, int8)
    if not pairs:
        return ()
    x = np.ascontiguousarray(images[:image_budget(fp32, [a for a, _ in pairs])])
    a = _run_with_outputs(fp32, [p[0] for p in pairs], x, threads)
    b = _run_with_outputs(int8, [p[1] for p in pairs], x, threads)
    out = []
    for (name, _), ref, got in zip(pairs, a, b):
        ref, diff = ref.astype(np.float64), got.astype(np.float64) - ref
        noise, signal = float(np.sum(diff * diff)), float(np.sum(ref * ref))
        sqnr = math.inf if noise == 0 else (10 * math.log10(signal / noise) if signal > 0 else -math.inf)
        out.append(LayerError(name, sqnr, float(np.max(np.abs(diff))) if diff.size else 0.0))
    return tuple(sorted(out, key=lambda e: e.sqnr_db))


def _run_with_outputs(model, names: list[str], x, threads: int | None) -> list:
    import onnx
    import onnxruntime as ort

    from ..runner.options import session_options

    probe = onnx.ModelProto.FromString(model.SerializeToString())
    present = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
                              for n in dict.fromkeys(names) if n not in present)
    session = ort.InferenceSession(probe.SerializeToString(), sess_options=session_options(threads),
                                   providers=["CPUExecutionProvider"])
    return session.run(names, {session.get_inputs()[0].name: x})


def weakest(errors: tuple[LayerError, ...], count: int = 3) -> str:
    """'a 12.3 dB, b 18.0 dB, ...': the layers where int8 loses most, for a report line."""
    return ", ".join(f"{e.name} {e.sqnr_db:.1f} dB" for e in errors[:count])
