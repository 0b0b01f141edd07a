"""Layer names from the graph: the weight a layer owns (``layer1.0.conv1.weight`` -> ``layer1.0.conv1``,
so the written weights keep the exporter's keys), else the node's name (cnnspec's own files name
nodes by layer; PyTorch's scope paths ``/layer1/layer1.0/relu/Relu`` read as ``layer1.0.relu``),
sanitised to the language's name pattern and made unique in order."""
from __future__ import annotations

import re

from .layers import Layer
from .reader import join_scopes

PATH_LIKE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")
OP_LIKE = re.compile(r"[A-Z][A-Za-z0-9]*(_[0-9]+)?\Z")   # 'Conv', 'Relu_1', 'BiasAdd': an op type, not a module
RESERVED = {"input"}
GENERATED = re.compile(r"(n[0-9]+|node_.*)(_[0-9]+)?\Z")  # the dynamo exporter's counters: n0, node_Conv_23


def _allowed_chars() -> re.Pattern:
    """The name pattern's characters: ``-`` too once the language allows it (its third edition)."""
    from ..spec import expansion

    dash = bool(expansion._NAME.match("a-b"))
    return re.compile(r"[^A-Za-z0-9_.\-]" if dash else r"[^A-Za-z0-9_.]")


def sanitize(text: str, bad: re.Pattern | None = None) -> str:
    """Any text as a name of the pattern ``[A-Za-z_][A-Za-z0-9_.-]*``: other characters become
    ``_``, empty components go, and a name that starts with a digit gets a ``layer_`` prefix."""
    bad = bad or _allowed_chars()
    text = bad.sub("_", text)
    text = ".".join(p for p in text.split(".") if p)
    if not text:
        return ""
    if not (text[0].isalpha() or text[0] == "_") or not text[0].isascii():
        text = "layer_" + text
    return "input_" if text in RESERVED else text


def from_weight(name: str | None, parts=("weight", "bias", "running_mean", "running_var")) -> str | None:
    """``layer1.0.conv1.weight`` -> ``layer1.0.conv1``; a parameter of another name is the layer's
    whole name (``features.1.0.layer_scale``, a scale layer); None for generated names
    (``onnx::Conv_31``)."""
    if not name or not PATH_LIKE.match(name) or "." not in name:
        return None
    for part in parts:   # a part of several components: ``sep.depthwise.weight`` -> ``sep``
        if "." in part and name.endswith(f".{part}"):
            return name[:-len(part) - 1]
    layer, last = name.rsplit(".", 1)
    return layer if last in parts else name


def scope_path(node_name: str) -> str:
    """PyTorch's scope path as a module name: ``/layer1/layer1.0/conv1/Conv`` -> ``layer1.0.conv1``
    (a component that already spells its parent's name replaces it; the op type at the end goes)."""
    parts = [p for p in node_name.split("/") if p]
    while len(parts) > 1 and OP_LIKE.match(parts[-1]):
        parts.pop()
    if len(parts) == 1 and "/" in node_name and OP_LIKE.match(parts[0]):
        return ""
    return join_scopes(parts)


def keras_scope(node_name: str) -> str:
    """tf2onnx names a Keras layer's nodes ``<model>/<layer>_1/<tf op>`` (TensorFlow's name scope
    adds ``_1``): the Keras layer's name, or '' for a node of no layer."""
    parts = node_name.split("/")
    if len(parts) < 3:
        return ""
    return re.sub(r"_1\Z", "", parts[1])


def _own_name(layer: Layer, producer: str = "") -> str:
    if producer == "tf2onnx":
        return keras_scope(layer.node.name or "") or scope_path(layer.node.name or "")
    """A node of the layer named without '/' is named as the layer (cnnspec's own writer); else the
    main node's scope path."""
    if layer.node.scope:
        return layer.node.scope
    for node in (layer.node, *layer.nodes)[::-1]:  # the node that makes the output first
        if node.name and "/" not in node.name and not OP_LIKE.match(node.name) and not node.name[:1].isdigit() \
                and not GENERATED.match(node.name):
            return node.name
    return scope_path(layer.node.name or "")


def assign_names(layers: list, producer: str = "") -> None:
    """Each layer's name: its weight's, else its node's; a node name that is a container of other
    layers' names (the scope a functional add runs in: ``layer1.0``) gets ``.<op>`` after it."""
    bad = _allowed_chars()
    raw = []
    for layer in layers:
        name = from_weight(layer.weight_name, tuple(layer.weights))
        if name:
            raw.append((sanitize(name, bad), True))
        elif not layer.hint:
            raw.append((sanitize(_own_name(layer, producer), bad), False))
        else:
            raw.append(("", False))
    containers = set()
    for name, _ in raw:
        parts = name.split(".")
        containers.update(".".join(parts[:k]) for k in range(1, len(parts)))
    taken: set = set()
    for layer, (name, from_weights) in zip(layers, raw):
        if name and not from_weights and name in containers:
            name = f"{name}.{layer.op}"
        if not name:
            base = raw_prefix(layer, layers) if layer.hint else ""
            name = f"{base}.{layer.hint}" if base else (layer.hint or layer.op)
        layer.name = _unique(name, taken)


def raw_prefix(layer: Layer, layers) -> str:
    """The scope of the layer that feeds one the importer added (a squeeze-and-excite gate's flatten)."""
    for other in layers:
        if other.output == layer.inputs[0] and other.name:
            return other.name.rsplit(".", 1)[0] if "." in other.name else ""
    return ""


def _unique(name: str, taken: set) -> str:
    out, k = name, 1
    while out in taken:
        out = f"{name}_{k}"
        k += 1
    taken.add(out)
    return out
