"""The import as one function: ONNX file in, checked spec text and neutral weights out.

Read (hostile input) -> fold constants -> match patterns -> fuse our own writer's activations ->
drop what reaches no output -> name -> fold blocks (unless flat) -> write the text -> compile it
with the spec front end and compare every layer's shape with ONNX's and every weight's shape with
the spec's. Nothing is written here: the command writes both files only when all of this passed.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import CnnspecError, InputError
from .reader import Refusal

SPEC_NAME = re.compile(r"[^A-Za-z0-9_.\-]")


@dataclass(frozen=True)
class Imported:
    text: str
    weights: dict
    graph: object
    layers: int
    blocks: tuple
    source: object


def import_onnx(path: str | Path, name: str | None = None, flat: bool = False) -> Imported:
    from .blocks import fold_blocks
    from .constfold import fold_constants
    from .naming import assign_names
    from .patterns import match_layers
    from .reader import read_source, reinfer_shapes

    source = read_source(path)
    fold_constants(source)
    if any(source.shape(o) is None for n in source.nodes for o in n.outputs if o):
        reinfer_shapes(source)
        fold_constants(source)
    layers = match_layers(source)
    layers = fuse_activations(layers, source)
    outputs = [_resolve_output(source, layers, out) for out in source.outputs]
    layers = _reachable(layers, outputs)
    assign_names(layers, source.producer)
    by_output = {l.output: l for l in layers}
    output_names = []
    for value in outputs:
        if by_output[value].name not in output_names:
            output_names.append(by_output[value].name)
    flat_entries = _flat_entries(layers, source)
    header = {
        "cnnspec": 1,
        "name": _spec_name(name, source, path),
        "description": f"imported by cnnspec import from {Path(path).name}"
                       + (f" (made by {source.producer})" if source.producer else ""),
        "input": list(source.input_shape),
        "classes": _classes(source, layers[-1] if layers else None),
        "outputs": output_names if len(output_names) > 1 or output_names[-1] != layers[-1].name else None,
    }
    from .writer import spec_text

    weights = {f"{l.name}.{part}": _float32(array) for l in layers for part, array in l.weights.items()}
    if not flat:
        entries, blocks = fold_blocks(layers, flat_entries, source, output_names)
        if blocks:
            text = spec_text(header, blocks, entries)
            try:
                graph = verify(text, weights, layers, source, str(path))
            except CnnspecError as exc:  # a folding this module got wrong: the flat spec is still right
                import sys

                print(f"cnnspec: warning: {path}: the folded spec did not check ({exc}); writing it flat",
                      file=sys.stderr)
            else:
                return Imported(text, weights, graph, len(layers), tuple(blocks), source)
    text = spec_text(header, {}, flat_entries)
    graph = verify(text, weights, layers, source, str(path))
    return Imported(text, weights, graph, len(layers), (), source)


def _float32(array):
    import numpy as np

    return np.ascontiguousarray(array, dtype=np.float32)


def fuse_activations(layers: list, source) -> list:
    """cnnspec's own writer lowers ``activation: relu`` on a conv2d as the Conv and a node named
    ``<layer>/relu`` (tf2onnx, a Keras layer's activation in its scope): read back as the fused
    argument, so the spec round-trips as written."""
    from ..graph.ops import ACTIVATIONS

    readers: dict = {}
    for l in layers:
        for v in l.inputs:
            readers[v] = readers.get(v, 0) + 1
    by_output = {l.output: l for l in layers}
    dropped = set()
    for act in layers:
        if act.op not in ACTIVATIONS or act.args or len(act.inputs) != 1:
            continue
        before = by_output.get(act.inputs[0])
        if before is None or before.op not in ("conv2d", "conv2d_transpose", "dense", "separable_conv2d") \
                or before.args.get("activation") or readers.get(before.output) != 1 \
                or before.output in source.outputs:
            continue
        if not _same_layer(before.node.name, act.node.name, source.producer):
            continue
        before.args["activation"] = act.op
        del by_output[before.output]
        before.output = act.output
        by_output[before.output] = before
        before.nodes = before.nodes + act.nodes
        dropped.add(id(act))
    return [l for l in layers if id(l) not in dropped]


def _same_layer(conv: str, act: str, producer: str) -> bool:
    """The activation node belongs to the convolution's layer: cnnspec names it ``<layer>/<act>``,
    tf2onnx puts a Keras layer's fused activation in the layer's name scope."""
    if act.startswith(f"{conv}/"):
        return True
    if producer == "tf2onnx":
        from .naming import keras_scope

        return bool(keras_scope(conv)) and keras_scope(conv) == keras_scope(act)
    return False


def _resolve_output(source, layers, value: str) -> str:
    produced = {l.output for l in layers}
    seen = value
    aliases = source.aliases
    while seen not in produced and seen in aliases:
        seen = aliases[seen]
    if seen not in produced:
        raise Refusal(f"{source.path}: output '{value}' is computed by no layer (it is the input or a constant); "
                      f"supported: outputs computed by the graph's nodes")
    return seen


def _reachable(layers: list, outputs: list) -> list:
    """Layers some output depends on, in order: a branch that reaches no output is left out."""
    by_output = {l.output: l for l in layers}
    needed, stack = set(), list(outputs)
    while stack:
        v = stack.pop()
        layer = by_output.get(v)
        if layer is None or id(layer) in needed:
            continue
        needed.add(id(layer))
        stack.extend(layer.inputs)
    return [l for l in layers if id(l) in needed]


def _flat_entries(layers: list, source) -> list:
    """Every layer as a top-level entry: op and arguments, name, ``in`` where it does not read the
    layer before it, ``expect`` where the map's size changes (a stage) and on the last layer."""
    names = {source.input: "input", **{l.output: l.name for l in layers}}
    entries, previous, prev_hw = [], "input", tuple(source.input_shape[1:])
    for k, layer in enumerate(layers):
        entry = layer.spec_entry()
        entry["name"] = layer.name
        ins = [names[v] for v in layer.inputs]
        if ins != [previous]:
            entry["in"] = ins[0] if len(ins) == 1 else ins
        shape = source.sample(layer.output)
        hw = tuple(shape[1:]) if shape and len(shape) == 3 else None
        if shape is not None and ((hw is not None and hw != prev_hw) or k == len(layers) - 1):
            entry["expect"] = shape
        if hw is not None:
            prev_hw = hw
        entries.append(entry)
        previous = layer.name
    return entries


def _spec_name(name, source, path) -> str:
    text = name or source.metadata.get("cnnspec.name") or Path(path).stem
    return SPEC_NAME.sub("_", text)[:200] or "imported"


def _classes(source, last):
    raw = source.metadata.get("cnnspec.classes") or source.metadata.get("classes")
    if not raw:
        return None
    try:
        classes = json.loads(raw)
    except ValueError:
        classes = [c.strip() for c in raw.split(",")]
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        return None
    shape = source.sample(last.output) if last is not None else None
    return classes if shape == [len(classes)] else None


def verify(text: str, weights: dict, layers: list, source, path: str):
    """The written spec compiled by the front end, as ``cnnspec check`` will: every layer's shape
    equal to the one ONNX inferred, every weight's key and shape the spec's. A difference is our bug,
    said as one line (and nothing is written)."""
    from ..errors import SpecError
    from ..spec.compiler import compile_checked
    from ..spec.loader import parse_yaml
    from ..weights.neutral import expected_weights

    try:
        graph = compile_checked(parse_yaml(text, "<imported spec>"))
    except SpecError as exc:
        raise CnnspecError(f"{path}: the imported spec does not check ({exc.diagnostics[0].render()}); "
                           f"please report it") from None
    names = [n.name for n in graph.nodes]
    if sorted(names) != sorted(l.name for l in layers):
        missing = sorted(set(l.name for l in layers) - set(names))
        raise CnnspecError(f"{path}: the imported spec expands to other layer names than the model's "
                           f"(first missing: {missing[0] if missing else '-'}); please report it")
    for layer in layers:
        want = source.sample(layer.output)
        got = graph.node(layer.name).shape
        if want is not None and tuple(want) != tuple(got or ()):
            raise CnnspecError(f"{path}: layer '{layer.name}' ({layer.op}) comes out {list(got or ())} in the spec "
                               f"but {want} in the ONNX model; please report it")
    expected = expected_weights(graph)
    for key, shape in expected.items():
        if key not in weights or tuple(weights[key].shape) != tuple(shape):
            have = list(weights[key].shape) if key in weights else "nothing"
            raise CnnspecError(f"{path}: weight '{key}' should be {list(shape)} but the import has {have}; "
                               f"please report it")
    extra = sorted(set(weights) - set(expected))
    if extra:
        raise CnnspecError(f"{path}: the import made weights the spec has no place for ({extra[0]}); please report it")
    return graph


__all__ = ["Imported", "import_onnx", "InputError", "Refusal"]
