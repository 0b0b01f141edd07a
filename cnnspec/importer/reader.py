"""An ONNX model read for import, as hostile input: the file through the one ONNX boundary (size,
text, external data confined to the model's folder), then every tensor's size checked against its
bytes before numpy sees it, the graph's inputs resolved (a missing initializer is named), its order
made topological (a cycle is named), and ONNX's shape inference run with the batch fixed at 1.

Nothing in the file is executed: only the ``onnx`` package parses it, and no custom domain runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from ..errors import InputError

MAX_NODES = 500_000
MAX_TENSOR_ELEMENTS = 1 << 31          # one initializer: 8 GiB of float32 at most, and the file's size limits it further
MAX_SIDE = 1_000_000                   # the language's own limit on an input side
ONNX_DOMAINS = ("", "ai.onnx")


class Refusal(InputError):
    """The model holds something the language cannot express: names the node, its op type, its
    inputs' shapes and the nearest form the importer accepts."""

    exit_code = 1


@dataclass(frozen=True)
class ONode:
    """One ONNX node, its attributes read into Python values (tensors as numpy arrays)."""

    index: int
    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping = field(default_factory=lambda: MappingProxyType({}), hash=False, compare=False)
    proto: object = field(default=None, hash=False, compare=False, repr=False)
    scope: str = ""   # the module path an exporter recorded (torch.onnx's dynamo exporter: name_scopes)

    def attr(self, key: str, default=None):
        return self.attrs.get(key, default)

    @property
    def label(self) -> str:
        return f"node '{self.name or self.outputs[0]}' ({self.op})"


@dataclass
class Source:
    """The model as the importer sees it. ``shapes`` hold every known value's full shape at batch 1
    (None where ONNX could not infer it); ``constants`` every initializer as a numpy array."""

    path: str
    nodes: list
    constants: dict
    shapes: dict
    input: str
    input_shape: tuple
    outputs: tuple
    metadata: dict
    producer: str = ""
    aliases: dict = field(default_factory=dict)   # value -> the value it equals (filled by the patterns)
    opsets: tuple = ()
    ir_version: int = 8

    def shape(self, value: str):
        return self.shapes.get(value)

    def sample(self, value: str):
        """A value's shape without the batch, as a list (what ``expect`` holds), or None."""
        shape = self.shapes.get(value)
        return None if shape is None else list(shape[1:])

    def describe_inputs(self, node: ONode) -> str:
        """``x [1, 64, 56, 56], w [64, 64, 3, 3]``: what a refusal shows of a node's inputs."""
        parts = []
        for name in node.inputs:
            if not name:
                continue
            shape = self.constants[name].shape if name in self.constants else self.shapes.get(name)
            parts.append(f"{name} {list(shape) if shape is not None else '[?]'}")
        return ", ".join(parts) or "no inputs"


def refuse(source: Source, node: ONode, why: str, nearest: str) -> Refusal:
    return Refusal(f"{source.path}: {node.label} with inputs {source.describe_inputs(node)}: {why}; "
                   f"supported: {nearest}")


def read_source(path: str | Path) -> Source:
    """The model, checked, inferred, topologically ordered; an :class:`InputError` for anything else."""
    import onnx

    from ..onnxfile.boundary import metadata, read_model

    model = read_model(path)
    _load_confined_external_data(model, path)
    g = model.graph
    if len(g.node) > MAX_NODES:
        raise InputError(f"{path}: {len(g.node)} nodes is more than the {MAX_NODES} cnnspec imports")
    constants = {t.name: _tensor(t, path) for t in g.initializer}
    real_inputs = [v for v in g.input if v.name not in constants]
    if len(real_inputs) != 1:
        names = ", ".join(v.name for v in real_inputs) or "none"
        raise InputError(f"{path}: the model has {len(real_inputs)} inputs ({names}); cnnspec imports models "
                         f"with one image input [batch, C, H, W]")
    x = real_inputs[0]
    input_shape = _input_shape(x, path)
    nodes = [_node(k, n, path) for k, n in enumerate(g.node)]
    nodes = _topological(nodes, {x.name, *constants}, path)
    outputs = tuple(v.name for v in g.output)
    if not outputs:
        raise InputError(f"{path}: the graph has no outputs")
    produced = {o for n in nodes for o in n.outputs} | {x.name} | set(constants)
    for out in outputs:
        if out not in produced:
            raise InputError(f"{path}: graph output '{out}' is computed by no node")
    source = Source(path=str(path), nodes=nodes, constants=constants, shapes={}, input=x.name,
                    input_shape=input_shape, outputs=outputs, metadata=metadata(model),
                    producer=model.producer_name or "", opsets=tuple(model.opset_import),
                    ir_version=model.ir_version)
    reinfer_shapes(source)
    source.shapes[x.name] = (1, *input_shape)
    source.shapes.update({name: tuple(array.shape) for name, array in constants.items()})
    return source


def _load_confined_external_data(model, path) -> None:
    """External data the boundary has already confined to the model's folder is read from there;
    each file's size is checked by ``onnx`` against the offsets the tensor gives."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors, load_external_data_for_model

    if not any(t.data_location == onnx.TensorProto.EXTERNAL for t in _get_all_tensors(model)):
        return
    try:
        load_external_data_for_model(model, str(Path(path).resolve().parent))
    except (OSError, ValueError, RuntimeError, onnx.checker.ValidationError) as exc:
        raise InputError(f"{path}: cannot read its external data ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:120] if str(exc) else ''})") from None


def _tensor(t, path):
    """A tensor as numpy after its element count is checked against the bytes it carries: a
    declared [10^12] with eight bytes behind it is refused, not allocated."""
    from onnx import numpy_helper

    dims = list(t.dims)
    if any(d < 0 for d in dims):
        raise InputError(f"{path}: tensor '{t.name}' has a negative dimension {dims}")
    count = 1
    for d in dims:
        count *= d
        if count > MAX_TENSOR_ELEMENTS:
            raise InputError(f"{path}: tensor '{t.name}' declares {dims}, more than {MAX_TENSOR_ELEMENTS} "
                             f"elements; refused")
    try:
        array = numpy_helper.to_array(t)
    except (ValueError, TypeError, RuntimeError, KeyError, OverflowError, MemoryError) as exc:
        raise InputError(f"{path}: tensor '{t.name}' {dims} does not hold the data it declares "
                         f"({type(exc).__name__})") from None
    if array.size != count:
        raise InputError(f"{path}: tensor '{t.name}' declares {dims} but holds {array.size} values")
    return array


def _input_shape(value, path) -> tuple:
    t = value.type.tensor_type
    dims = list(t.shape.dim)
    if t.elem_type not in (1, 10, 11, 16) or len(dims) != 4:  # float, float16, double, bfloat16
        raise InputError(f"{path}: input '{value.name}' must be a float tensor [batch, C, H, W] "
                         f"(cnnspec imports image models), got {len(dims)} dimensions of type {t.elem_type}")
    sides = []
    for k, d in enumerate(dims[1:], 1):
        if not d.HasField("dim_value") or not 0 < d.dim_value <= MAX_SIDE:
            got = d.dim_param or (d.dim_value if d.HasField("dim_value") else "unknown")
            raise InputError(f"{path}: input '{value.name}' dimension {k} is {got!r}; cnnspec imports a fixed "
                             f"C, H and W (1 to {MAX_SIDE}): export the model with a fixed input size")
        sides.append(d.dim_value)
    return tuple(sides)


def _attribute(a, path):
    from onnx import AttributeProto, helper

    if a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
        return "<subgraph>"
    if a.type == AttributeProto.TENSOR:
        return _tensor(a.t, path)
    value = helper.get_attribute_value(a)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
    return value


def _node(k: int, n, path) -> ONode:
    if n.domain not in ONNX_DOMAINS:
        raise Refusal(f"{path}: node '{n.name or n.output[0]}' ({n.op_type}) is of the custom domain "
                      f"'{n.domain}'; supported: the standard ONNX operators (ai.onnx)")
    attrs = {a.name: _attribute(a, path) for a in n.attribute}
    return ONode(k, n.name, n.op_type, tuple(n.input), tuple(n.output), MappingProxyType(attrs), n, _scope(n))


def _scope(n) -> str:
    """torch.onnx's dynamo exporter records ``pkg.torch.onnx.name_scopes`` = ``['', 'layer1', '0',
    'conv1', 'conv2d']``: the module path, then the traced call's name (used where there is no module)."""
    import ast

    raw = next((p.value for p in n.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), "")
    if not raw or len(raw) > 10_000:
        return ""
    try:
        scopes = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return ""
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        return ""
    scopes = [s for s in scopes if s]
    if len(scopes) <= 1:
        return scopes[0] if scopes else ""
    return join_scopes(scopes[:-1])  # the module path; the last is the traced call


def _topological(nodes: list, known: set, path) -> list:
    """Kahn's order (the file's where it is already topological). An input nothing produces is a
    missing initializer; nodes left over wait on each other: a cycle."""
    producer = {}
    for n in nodes:
        for o in n.outputs:
            if o and o in producer:
                raise InputError(f"{path}: value '{o}' is produced twice ({producer[o].label} and {n.label})")
            if o:
                producer[o] = n
    for n in nodes:
        for i in n.inputs:
            if i and i not in known and i not in producer:
                raise InputError(f"{path}: {n.label} reads '{i}', which no node, initializer or input provides "
                                 f"(a missing initializer?)")
    waiting = {n.index: sum(1 for i in n.inputs if i in producer) for n in nodes}
    users: dict = {}
    for n in nodes:
        for i in n.inputs:
            if i in producer:
                users.setdefault(i, []).append(n)
    import heapq

    by_index = {n.index: n for n in nodes}
    ready = [k for k, w in waiting.items() if w == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        n = by_index[heapq.heappop(ready)]
        order.append(n)
        for o in n.outputs:
            for user in users.get(o, ()):
                waiting[user.index] -= sum(1 for i in user.inputs if i == o)
                if waiting[user.index] == 0:
                    heapq.heappush(ready, user.index)
    if len(order) != len(nodes):
        stuck = next(n for n in nodes if waiting[n.index] > 0)
        raise InputError(f"{path}: the graph has a cycle: {stuck.label} waits on its own output")
    return order


SMALL_CONSTANT = 4096  # constants up to this size go into a re-inference with their values (shapes, pads)


def reinfer_shapes(source: Source) -> None:
    """ONNX's shape inference at batch 1 over the graph as it is now (again after folding: a Pad or
    Reshape whose amounts were a shape subgraph gets its output shape then). Large constants
    (weights) go in as typed inputs without their values, so a 500 MB model is not copied."""
    import onnx
    from onnx import helper, numpy_helper

    used = {i for n in source.nodes for i in n.inputs if i in source.constants}
    inits, typed = [], []
    for name in sorted(used):
        array = source.constants[name]
        if array.size <= SMALL_CONSTANT:
            inits.append(numpy_helper.from_array(array, name))
        else:
            typed.append(helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(array.dtype), list(array.shape)))
    x = helper.make_tensor_value_info(source.input, onnx.TensorProto.FLOAT, [1, *source.input_shape])
    outs = [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in source.outputs]
    graph = helper.make_graph([n.proto for n in source.nodes], "reinfer", [x, *typed], outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=list(source.opsets))
    model.ir_version = source.ir_version
    found = _infer_shapes(model, source.path)
    source.shapes.update({k: v for k, v in found.items() if v is not None or k not in source.shapes})


def _infer_shapes(model, path) -> dict:
    """ONNX's shape inference: every value's full shape, None where a dimension stays unknown. The
    batch is fixed at 1 so shape subgraphs fold to numbers (every op the language has is
    batch-independent)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True).graph
    except (onnx.shape_inference.InferenceError, RuntimeError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: ONNX shape inference fails: {str(exc).splitlines()[0][:200]}") from None
    shapes = {}
    for v in (*inferred.value_info, *inferred.output):
        t = v.type.tensor_type
        if not t.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        shapes[v.name] = None if None in dims else tuple(dims)
    return shapes


def join_scopes(parts) -> str:
    """PyTorch's scope components as one module path: a Sequential's child is spelled with its
    parent's name before it (``layer1``, ``layer1.0``; ``downsample``, ``downsample.0``), so it
    replaces that component instead of following it."""
    comps: list = []
    for part in parts:
        if comps and part.startswith(comps[-1] + "."):
            comps[-1] = part
        else:
            comps.append(part)
    return ".".join(comps)
