"""Memory of inference and of one training step at a batch size, from the checked graph alone.

Every figure is float32 and comes with the assumption it rests on (:attr:`Part.assumption`), since
each framework keeps a little more or less. What the backward pass needs is taken from what PyTorch's
autograd saves per op (the :data:`SAVES` table, after its ``derivatives.yaml``), the default backend of
``cnnspec train``; ``tests/test_memory.py`` measures it against torch.
"""
from __future__ import annotations

from dataclasses import dataclass

from .ir import INPUT, Graph, Node
from .ops import ACTIVATIONS, OPS

FLOAT = 4  # bytes


@dataclass(frozen=True)
class Saves:
    """What autograd keeps of one op until the backward pass: its input (a padded copy where the padding
    is uneven, as the torch backend pads explicitly), its output, and ``extra`` bytes per output element
    (max pooling's int64 indices, dropout's mask:
    a float32 on the CPU, so 4 bytes are counted), and ``per_channel`` floats per channel whatever the batch. ``alias``: the output is a view of the input."""

    input: bool = False
    output: bool = False
    extra: int = 0
    alias: bool = False
    per_channel: int = 0  # floats per channel, whatever the batch
    partners: bool = False  # keeps an input only where another input needs its gradient (a product)
    per_position: int = 0  # floats per pixel (per sample for a vector) and sample: layernorm's mean and 1/std


NOTHING = Saves()
# an activation keeps its input unless listed here (relu, sigmoid, tanh and softmax differentiate from their result)
ACTIVATION_SAVES = {"relu": Saves(output=True), "sigmoid": Saves(output=True), "tanh": Saves(output=True),
                    "softmax": Saves(output=True)}

# op -> what it keeps; an op missing here is taken to keep its input (the common case, said in the assumption)
SAVES: dict[str, Saves] = {
    **{name: ACTIVATION_SAVES.get(name, Saves(input=True)) for name in ACTIVATIONS},
    "conv2d": Saves(input=True),
    "conv2d_transpose": Saves(input=True),
    "dense": Saves(input=True),
    "batchnorm": Saves(input=True, per_channel=2),  # and the batch's mean and inverse deviation
    "layernorm": Saves(input=True, per_position=2),  # on a map its input's channels-last copy
    "scale": Saves(input=True),
    "multiply": Saves(partners=True),
    "maxpool2d": Saves(input=True, extra=8),
    "global_maxpool2d": Saves(input=True, extra=8),
    "avgpool2d": Saves(input=True),
    "global_avgpool2d": NOTHING,
    "dropout": Saves(extra=4),
    "flatten": Saves(alias=True),
    "add": NOTHING,
    "concat": NOTHING,
    "normalize": NOTHING,
    "upsample2d": NOTHING,
    "zeropad2d": NOTHING,
    "crop2d": NOTHING,
}
DEFAULT_SAVES = Saves(input=True)

# PyTorch keeps a tensor's strides through nearly every op: after a layernorm on a map (channels last
# and back, as torchvision's LayerNorm2d does) the values that follow are channels-last in memory, and
# a flatten of them is a copy, not a view. These ops write a fresh [N, C, H, W]-ordered tensor whatever
# their input's strides (measured with torch; the rest follow their first input):
FRESH_LAYOUT = frozenset({"dense", "flatten", "global_avgpool2d", "global_maxpool2d", "softmax"})


@dataclass(frozen=True)
class Optimizer:
    name: str
    copies: int  # float32 copies of the trainable parameters it keeps
    state: str


# cnnspec train's optimizers; adam is its default
OPTIMIZERS = {
    "adam": Optimizer("adam", 2, "Adam: 2 copies of the parameters (exp_avg, exp_avg_sq)"),
    "sgd": Optimizer("sgd", 1, "SGD with momentum: 1 copy (momentum_buffer)"),
}
DEFAULT_OPTIMIZER = "adam"


@dataclass(frozen=True)
class Part:
    name: str
    bytes: int
    assumption: str

    def to_json(self) -> dict:
        return {"bytes": self.bytes, "assumption": self.assumption}


@dataclass(frozen=True)
class Estimate:
    """One mode's parts and how they add up: ``always`` are held throughout; of ``phases`` (alternatives,
    each a tuple of parts) only the largest is held at the peak."""

    mode: str
    always: tuple[Part, ...]
    phases: tuple[tuple[Part, ...], ...] = ()
    rule: str = ""

    @property
    def parts(self) -> tuple[Part, ...]:
        return self.always + tuple(p for phase in self.phases for p in phase)

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.always) + max([sum(p.bytes for p in ph) for ph in self.phases] or [0])

    def to_json(self) -> dict:
        doc = {"bytes": self.bytes, **{p.name: p.to_json() for p in self.parts}}
        return {**doc, "rule": self.rule} if self.rule else doc


@dataclass(frozen=True)
class Memory:
    batch: int
    inference: Estimate
    training: Estimate
    optimizer: str

    def to_json(self) -> dict:
        return {"batch": self.batch, "dtype": "float32", "optimizer": self.optimizer,
                "inference": self.inference.to_json(), "training": self.training.to_json()}


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def weight_numel(graph: Graph) -> int:
    """Every weight part of the neutral layout, running statistics included (they are memory, not parameters)."""
    total = 0
    for n in graph.nodes:
        op = OPS.get(n.op)
        if op is not None and op.has_weights:
            shapes = [graph.shape_of(i) for i in n.inputs]
            total += sum(_numel(s) for s in op.weight_shapes(n.attrs, shapes, n.shape).values())
    return total


def _uneven(node: Node) -> bool:
    if not node.pads:
        return False
    top, bottom, left, right = node.pads
    return top != bottom or left != right


def _padded_numel(node: Node, shape) -> int:
    top, bottom, left, right = node.pads
    return shape[0] * (shape[1] + top + bottom) * (shape[2] + left + right)


class _Values:
    """Sizes of the graph's values (floats per sample), views resolved to the tensor they share."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.root = {INPUT: INPUT}
        self.numel = {INPUT: _numel(graph.input_shape)}
        channels_last = set()  # values whose memory is not in [N, C, H, W] order (see FRESH_LAYOUT)
        for n in graph.nodes:
            follows = n.op not in FRESH_LAYOUT and n.inputs[0] in channels_last
            if _strided_map(n.shape) and (n.op == "layernorm" or follows):
                channels_last.add(n.name)
            alias = SAVES.get(n.op, DEFAULT_SAVES).alias and n.inputs[0] not in channels_last
            self.root[n.name] = self.root[n.inputs[0]] if alias else n.name
            if not alias:
                self.numel[n.name] = _numel(n.shape)


def _strided_map(shape) -> bool:
    """Whether a [C, H, W] value can be laid out other than [N, C, H, W]: with one channel or one pixel
    both orders are the same bytes, and PyTorch calls either contiguous."""
    return len(shape) == 3 and shape[0] > 1 and shape[1] * shape[2] > 1


@dataclass(frozen=True)
class Kept:
    """What the forward pass leaves for the backward: float32 values and other bytes per sample, and
    bytes that do not grow with the batch (batchnorm's saved mean and inverse deviation)."""

    floats: int
    extra: int
    fixed: int

    def bytes(self, batch: int) -> int:
        return batch * (FLOAT * self.floats + self.extra) + self.fixed


def _needs_grad(graph: Graph) -> set[str]:
    """Values autograd tracks: those after a layer with trainable weights. Before the first such layer
    nothing needs a gradient, so those ops keep nothing."""
    tracked = set()
    for n in graph.nodes:
        if n.params or any(i in tracked for i in n.inputs):
            tracked.add(n.name)
    return tracked


def kept_for_backward(graph: Graph) -> Kept:
    """What autograd keeps from the forward pass to the backward (each tensor once, views resolved)."""
    values = _Values(graph)
    tracked = _needs_grad(graph)
    kept, floats, extra, fixed = set(), 0, 0, 0
    if graph.output.name in tracked:  # the loss keeps its log-softmax of the output it judges (the first)
        floats += _numel(graph.output.shape)
    for n in graph.nodes:
        if n.name not in tracked:
            continue
        saves = SAVES.get(n.op, DEFAULT_SAVES)
        out = _numel(n.shape)
        if saves.input:
            for i in n.inputs:
                if _uneven(n):
                    floats += _padded_numel(n, graph.shape_of(i))
                else:
                    kept.add(values.root[i])
        if saves.partners:  # d(a*b)/da is b: each factor is kept for the other's gradient
            for k, i in enumerate(n.inputs):
                if any(j in tracked for m, j in enumerate(n.inputs) if m != k):
                    kept.add(values.root[i])
        if saves.output:
            kept.add(values.root[n.name])
        extra += saves.extra * out
        fixed += FLOAT * saves.per_channel * n.shape[0]
        positions = _numel(n.shape[1:]) if len(n.shape) == 3 else 1
        floats += saves.per_position * positions
        act = n.attrs.get("activation")
        if act:  # a fused activation: after the op, on a tensor of the output's size
            if ACTIVATION_SAVES.get(act, Saves(input=True)).output:
                kept.add(values.root[n.name])
            else:
                floats += out  # the pre-activation value, a tensor of its own
    return Kept(floats + sum(values.numel[v] for v in kept), extra, fixed)


def peak_live(graph: Graph) -> int:
    """Floats per sample live at once in an inference forward pass that frees each value after its last
    reader (as the torch backend's module does), with each step's temporaries (a padded copy, a
    pre-activation value) counted while it runs."""
    values = _Values(graph)
    last_use = {}
    for k, n in enumerate(graph.nodes):
        for i in n.inputs:
            last_use[values.root[i]] = k
    for name in graph.output_names:  # every output lives to the end
        last_use[values.root[name]] = len(graph.nodes)
    live = values.numel[INPUT]
    peak = live
    for k, n in enumerate(graph.nodes):
        new = values.numel.get(n.name, 0)
        temp = (_padded_numel(n, graph.shape_of(n.inputs[0])) if _uneven(n) else 0)
        temp += _numel(n.shape) if n.attrs.get("activation") else 0
        peak = max(peak, live + new + temp)
        live += new
        for v in {values.root[i] for i in n.inputs}:
            if last_use.get(v) == k:
                live -= values.numel[v]
    return peak


def largest_output(graph: Graph) -> int:
    return max([_numel(graph.input_shape)] + [_numel(n.shape) for n in graph.nodes])


def largest_weight(graph: Graph) -> int:
    """Floats of the largest trainable weight tensor."""
    largest = 0
    for n in graph.nodes:
        op = OPS.get(n.op)
        if op is not None and op.has_weights and n.params:
            shapes = [graph.shape_of(i) for i in n.inputs]
            largest = max([largest] + [_numel(s) for part, s in op.weight_shapes(n.attrs, shapes, n.shape).items()
                                       if not part.startswith("running_")])
    return largest


def estimate(graph: Graph, batch: int, optimizer: str = DEFAULT_OPTIMIZER) -> Memory:
    """Inference and one training step at ``batch``; the graph must be fully checked (every shape known)."""
    opt = OPTIMIZERS[optimizer]
    weights = Part("weights", FLOAT * weight_numel(graph),
                   "every weight, batchnorm's running statistics included")
    activations = Part("activations", FLOAT * batch * peak_live(graph),
                       "the most layer outputs alive at once, each freed after its last reader")
    kept = Part("activations_kept", kept_for_backward(graph).bytes(batch),
                "what PyTorch's autograd saves: the input of conv, dense, batchnorm, pools; "
                "the output of relu, sigmoid, tanh, softmax; max pooling's indices, dropout's mask; "
                "the loss's log-softmax of the output; nothing before the first layer with weights")
    gradients = Part("gradients", FLOAT * graph.params, "one per trainable parameter")
    state = Part("optimizer_state", FLOAT * opt.copies * graph.params, f"{opt.state}, cnnspec train's default")
    backward = Part("backward_workspace", FLOAT * batch * 2 * largest_output(graph),
                    "the gradients into and out of the largest layer, alive together")
    step = Part("step_workspace", FLOAT * max(graph.params, 2 * largest_weight(graph)),
                "the optimizer step's temporaries: a copy of the parameters (torch's foreach "
                "path, on CUDA) or two of the largest weight (tensor by tensor, on the CPU)")
    return Memory(batch, Estimate("inference", (weights, activations)),
                  Estimate("training", (weights, gradients, state), ((kept, backward), (step,)),
                           "weights + gradients + optimizer_state + max(activations_kept + "
                           "backward_workspace, step_workspace)"), optimizer)
