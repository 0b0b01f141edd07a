"""The spec graph as a list of Keras layer calls: one plan, read both by the model builder and by
the code generator, so ``model.keras`` and ``model_keras.py`` cannot drift apart.

Pure Python (no Keras import): a :class:`Step` names a layer class, its arguments and its inputs.
Keras runs channels-last, so the plan opens with a transpose from the contract's NCHW input and,
where an output is a feature map, closes with one back. Everything in between is NHWC. A spec with
several outputs makes a model that returns a list, in the spec's order.

Where a Keras default differs from the contract, the plan says so explicitly:
- flatten transposes to C-H-W first (Keras flattens H-W-C); reshape too, and a map result goes back
  to channels-last after it;
- explicit pool padding is a pad layer then a ``valid`` pool (-inf for max, counted zeros for avg);
  a ``ceil: true`` max pool (Keras has no ceil mode) pads -inf just as far as its last window reaches;
- a transposed convolution is a ``valid`` Conv2DTranspose then a Cropping2D of its ``padding`` (the
  contract's crop, of any symmetry, whose ``same`` split is TensorFlow's);
- zeropad2d with a ``value`` other than 0 is :class:`ConstantPadding2D` (ZeroPadding2D has no value);
- conv ``same`` with stride and dilation both above 1 (Keras refuses the pair) is explicit zero
  padding, a stride-1 dilated convolution and a subsampling layer, which is the same arithmetic;
- a fused activation Keras' ``activation=`` string cannot say exactly (``leaky_relu``: Keras' string
  default slope is 0.2) is its own layer after, with the registry's default arguments;
- grouped convolutions use :class:`GroupedConv2D` (Keras compiles them with XLA on CPU, which
  tf2onnx cannot export);
- a [C] vector that ``add`` or ``multiply`` broadcasts over a map is reshaped to [1, 1, C] first
  (NHWC: as [C] alone it would line up with the width).
"""
from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field

from cnnspec.errors import LoweringMissing
from cnnspec.graph.ir import INPUT, Graph, Node
from cnnspec.graph.ops import activation_defaults

TARGET = "keras"
# layer classes the plan may name; "cnnspec." ones live in cnnspec_keras.layers
CUSTOM_LAYERS = ("GroupedConv2D", "NegInfPadding2D", "ConstantPadding2D", "Subsample2D", "GELU", "Mish", "Scale")
# layers called on a list of inputs
MULTI_INPUT = ("Add", "Multiply", "Concatenate")


@dataclass(frozen=True)
class KerasActivation:
    """One activation in Keras: its own layer (``layer``, fixed ``kwargs``, and ``args``: the
    Keras argument each of the activation's arguments becomes), and ``fused``, the ``activation=``
    string of Conv2D/Dense where Keras' computes exactly the contract's function (None: the layer
    follows instead, with the registry's defaults)."""

    layer: str
    kwargs: tuple = ()
    args: dict = field(default_factory=dict)   # activation argument -> Keras keyword
    fused: str | None = None

    def layer_kwargs(self, attrs) -> dict:
        return {**dict(self.kwargs), **{keyword: _keras_value(attrs[arg]) for arg, keyword in self.args.items()}}


def _keras_value(value):
    """A number as a float (Keras' layers take floats), a word (gelu's 'tanh') as it is."""
    return value if isinstance(value, str) else float(value)


# the keras target's activation table, one entry per activation in cnnspec.graph.ops.ACTIVATIONS
ACTIVATIONS = {
    "relu": KerasActivation("ReLU", fused="relu"),
    "relu6": KerasActivation("ReLU", (("max_value", 6.0),), fused="relu6"),
    "sigmoid": KerasActivation("Activation", (("activation", "sigmoid"),), fused="sigmoid"),
    "tanh": KerasActivation("Activation", (("activation", "tanh"),), fused="tanh"),
    "softmax": KerasActivation("Softmax", (("axis", -1),), fused="softmax"),  # channels in NHWC, features for vectors
    "leaky_relu": KerasActivation("LeakyReLU", args={"slope": "negative_slope"}),
    "silu": KerasActivation("Activation", (("activation", "silu"),), fused="silu"),
    # Keras 3's hard_sigmoid is relu6(x + 3) / 6, the contract's (Keras 2's was 0.2 x + 0.5)
    "hard_sigmoid": KerasActivation("Activation", (("activation", "hard_sigmoid"),), fused="hard_sigmoid"),
    "hard_swish": KerasActivation("Activation", (("activation", "hard_silu"),), fused="hard_silu"),
    # the 'gelu' string is the erf formula (approximate=False), the registry's default; the GELU layer takes both
    "gelu": KerasActivation("GELU", args={"approximate": "approximate"}, fused="gelu"),
    "elu": KerasActivation("ELU", args={"alpha": "alpha"}, fused="elu"),  # the string's alpha is 1.0, the default
    # not Keras' 'mish': TensorFlow fuses conv + add + its Softplus-Tanh-Mul into a kernel the CPU lacks
    "mish": KerasActivation("Mish"),
}


@dataclass(frozen=True)
class Step:
    var: str                 # the Python variable (and plan key) of this step's output
    layer: str               # Keras class name, e.g. "Conv2D" or a name in CUSTOM_LAYERS
    kwargs: tuple            # ((key, value), ...), in the order a person would write them
    inputs: tuple[str, ...]  # vars this step reads
    name: str                # the Keras layer name

    @property
    def custom(self) -> bool:
        return self.layer in CUSTOM_LAYERS


@dataclass(frozen=True)
class Plan:
    input_var: str
    input_shape: tuple
    steps: tuple[Step, ...]
    output_vars: tuple[str, ...]  # one per spec output, in order; several make the model return a list
    model_name: str

    @property
    def several_outputs(self) -> bool:
        return len(self.output_vars) > 1


class _Names:
    """Unique Keras layer names and Python identifiers; spec node names win over helper layers."""

    def __init__(self, graph: Graph):
        self.layers = {n.name for n in graph.nodes} | {INPUT}
        self.vars = {"model", "keras", "layers", "np", "tf", "ops", "path", "tensors"}

    def helper(self, base: str) -> str:
        name, k = base, 1
        while name in self.layers:
            k += 1
            name = f"{base}_{k}"
        self.layers.add(name)
        return name

    def var(self, layer_name: str) -> str:
        base = re.sub(r"\W", "_", layer_name)
        if base[0].isdigit() or keyword.iskeyword(base):
            base = "_" + base
        name, k = base, 1
        while name in self.vars:
            k += 1
            name = f"{base}_{k}"
        self.vars.add(name)
        return name


class _Builder:
    def __init__(self, graph: Graph, target: str = TARGET):
        self.graph = graph
        self.target = target  # named by LoweringMissing
        self.names = _Names(graph)
        self.steps: list[Step] = []

    def add(self, layer: str, inputs, name: str | None = None, helper: str | None = None, **kwargs) -> str:
        """Append a layer; ``name`` is a spec node's own name, ``helper`` a base for a helper layer's."""
        layer_name = name if name is not None else self.names.helper(helper)
        var = self.names.var(layer_name)
        inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs)
        self.steps.append(Step(var, layer, tuple(kwargs.items()), inputs, layer_name))
        return var


def _pads(node: Node):
    top, bottom, left, right = node.pads
    return ((top, bottom), (left, right))


def _fused_activation(b: _Builder, node: Node) -> KerasActivation | None:
    act = node.attrs.get("activation")
    if act is None:
        return None
    if act not in ACTIVATIONS:
        raise LoweringMissing(f"activation {act}", b.target, node.name)
    return ACTIVATIONS[act]


def _activation_kwargs(b: _Builder, node: Node) -> dict:
    entry = _fused_activation(b, node)
    return {"activation": entry.fused} if entry and entry.fused else {}


def _activation_after(b: _Builder, node: Node, var: str) -> str:
    """The layer after, for a fused activation that Keras' ``activation=`` string cannot say."""
    entry = _fused_activation(b, node)
    if entry is None or entry.fused:
        return var
    act = node.attrs["activation"]
    return b.add(entry.layer, var, helper=f"{node.name}_{act}", **entry.layer_kwargs(activation_defaults(act)))


def _strided_conv(b: _Builder, node: Node, ins, layer: str, **extra):
    """A convolution layer (``Conv2D``, ``GroupedConv2D``, ``SeparableConv2D``) with the contract's
    padding, stride, dilation, bias and activation. TensorFlow refuses a stride with a dilation, so
    that pair runs at stride 1 and subsamples after (the activation, element-wise, commutes)."""
    a = node.attrs
    strides, dilation = tuple(a["stride"]), tuple(a["dilation"])
    split_stride = max(strides) > 1 and max(dilation) > 1
    x = ins[0]
    if a["padding"] == "same" and not split_stride:
        padding = "same"  # TensorFlow's own split: the contract's
    else:
        padding = "valid"
        if any(node.pads):
            x = b.add("ZeroPadding2D", x, helper=f"{node.name}_pad", padding=_pads(node))
    kwargs = dict(filters=a["filters"], kernel_size=tuple(a["kernel"]),
                  strides=(1, 1) if split_stride else strides, padding=padding)
    if max(dilation) > 1:
        kwargs["dilation_rate"] = dilation
    kwargs.update(extra)
    if not a["bias"]:
        kwargs["use_bias"] = False
    kwargs.update(_activation_kwargs(b, node))  # element-wise (softmax per pixel): commutes with subsampling
    x = b.add(layer, x, name=node.name, **kwargs)
    if split_stride:
        x = b.add("Subsample2D", x, helper=f"{node.name}_stride", strides=strides)
    return _activation_after(b, node, x)


def plan_conv2d(b: _Builder, node: Node, ins):
    groups = node.attrs["groups"]
    return _strided_conv(b, node, ins, "GroupedConv2D" if groups > 1 else "Conv2D",
                         **({"groups": groups} if groups > 1 else {}))


def plan_separable_conv2d(b: _Builder, node: Node, ins):
    """One SeparableConv2D, so Keras' own weights load (the 1x1 after the depthwise commutes with
    subsampling too)."""
    multiplier = node.attrs["depth_multiplier"]
    return _strided_conv(b, node, ins, "SeparableConv2D",
                         **({"depth_multiplier": multiplier} if multiplier != 1 else {}))


def plan_conv2d_transpose(b: _Builder, node: Node, ins):
    a = node.attrs
    # output_padding always: without it Keras makes W1*S where the kernel is smaller than the stride,
    # not the contract's (W1 - 1)*S + F
    kwargs = dict(filters=a["filters"], kernel_size=tuple(a["kernel"]), strides=tuple(a["stride"]), padding="valid",
                  output_padding=tuple(a["output_padding"]))
    if not a["bias"]:
        kwargs["use_bias"] = False
    kwargs.update(_activation_kwargs(b, node))  # element-wise: commutes with the crop
    x = b.add("Conv2DTranspose", ins[0], name=node.name, **kwargs)
    if any(node.pads):
        x = b.add("Cropping2D", x, helper=f"{node.name}_crop", cropping=_pads(node))
    return _activation_after(b, node, x)


def _plan_pool(keras_layer: str, pad_layer: str):
    def plan(b: _Builder, node: Node, ins):
        a = node.attrs
        x = ins[0]
        if a["padding"] == "same":
            padding = "same"  # TF: max pads -inf, avg excludes padding -- the contract's `same`
        else:
            padding = "valid"
            if any(node.pads):  # explicit: max pads -inf, avg pads zeros that count
                x = b.add(pad_layer, x, helper=f"{node.name}_pad", padding=_pads(node))
        return b.add(keras_layer, x, name=node.name, pool_size=tuple(a["kernel"]),
                     strides=tuple(a["stride"]), padding=padding)
    return plan


def plan_zeropad2d(b: _Builder, node: Node, ins):
    value = float(node.attrs["value"])
    if value == 0:
        return b.add("ZeroPadding2D", ins[0], name=node.name, padding=_pads(node))
    return b.add("ConstantPadding2D", ins[0], name=node.name, padding=_pads(node), value=value)


def plan_batchnorm(b: _Builder, node: Node, ins):
    a = node.attrs
    fixed = {key: False for key in ("scale", "center") if not a[key]}  # Keras' own names and meaning
    # Keras' momentum weighs the old statistics; the contract's (PyTorch's) weighs the new batch
    return b.add("BatchNormalization", ins[0], name=node.name, axis=-1, epsilon=float(a["eps"]),
                 momentum=float(1.0 - a["momentum"]), **fixed)


def plan_layernorm(b: _Builder, node: Node, ins):
    # channels-last: the last axis is the channels at each pixel (ConvNeXt's LayerNorm2d), or the features
    return b.add("LayerNormalization", ins[0], name=node.name, axis=-1, epsilon=float(node.attrs["eps"]))


def plan_normalize(b: _Builder, node: Node, ins):
    """Keras' Normalization divides by sqrt(variance): std squared goes in, one value per channel."""
    channels = node.shape[0]
    per_channel = {key: list(v) if isinstance(v, tuple) else [float(v)] * channels
                   for key, v in ((k, node.attrs[k]) for k in ("mean", "std"))}
    return b.add("Normalization", ins[0], name=node.name, axis=-1, mean=per_channel["mean"],
                 variance=[s * s for s in per_channel["std"]])


def _plan_broadcast(layer: str):
    """Add or Multiply. A [C] input beside [C, H, W] maps becomes [1, 1, C] first, which broadcasts
    over NHWC's height and width."""
    def plan(b: _Builder, node: Node, ins):
        if len(node.shape) == 3:
            ins = [b.add("Reshape", x, helper=f"{node.name}_in{k}_as_map", target_shape=(1, 1, node.shape[0]))
                   if len(b.graph.shape_of(src)) == 1 else x for k, (src, x) in enumerate(zip(node.inputs, ins))]
        return b.add(layer, ins, name=node.name)
    return plan


def plan_flatten(b: _Builder, node: Node, ins):
    x = ins[0]
    if len(b.graph.shape_of(node.inputs[0])) == 3:  # NHWC -> NCHW, so the order is channel, row, column
        x = b.add("Permute", x, helper=f"{node.name}_to_chw", dims=(3, 1, 2))
    return b.add("Flatten", x, name=node.name)


def plan_reshape(b: _Builder, node: Node, ins):
    """The contract's channels-first meaning: a map goes to NCHW first, the values are read into the
    new shape there, and a map result goes back to NHWC."""
    x = ins[0]
    if len(b.graph.shape_of(node.inputs[0])) == 3:
        x = b.add("Permute", x, helper=f"{node.name}_to_chw", dims=(3, 1, 2))
    if len(node.shape) != 3:
        return b.add("Reshape", x, name=node.name, target_shape=tuple(node.shape))
    x = b.add("Reshape", x, helper=f"{node.name}_chw", target_shape=tuple(node.shape))
    return b.add("Permute", x, name=node.name, dims=(2, 3, 1))


def plan_dense(b: _Builder, node: Node, ins):
    a = node.attrs
    kwargs = dict(units=a["units"])
    if not a["bias"]:
        kwargs["use_bias"] = False
    kwargs.update(_activation_kwargs(b, node))
    return _activation_after(b, node, b.add("Dense", ins[0], name=node.name, **kwargs))


def _simple(layer: str, **fixed):
    def plan(b: _Builder, node: Node, ins):
        return b.add(layer, ins, name=node.name, **fixed)
    return plan


def _plan_global_pool(layer: str):
    """``keepdims``: Keras' own switch, [N, 1, 1, C] channels-last (the spec's [C, 1, 1])."""
    def plan(b: _Builder, node: Node, ins):
        if node.attrs.get("keepdims"):
            return b.add(layer, ins, name=node.name, keepdims=True)
        return b.add(layer, ins, name=node.name)
    return plan


def _plan_activation(name: str):
    def plan(b: _Builder, node: Node, ins):
        entry = ACTIVATIONS[name]
        return b.add(entry.layer, ins[0], name=node.name, **entry.layer_kwargs(node.attrs))
    return plan


def plan_dropout(b: _Builder, node: Node, ins):
    return b.add("Dropout", ins[0], name=node.name, rate=float(node.attrs["rate"]))


# the keras target's lowering table: op -> (builder, node, input vars) -> output var
PLANNERS = {
    **{name: _plan_activation(name) for name in ACTIVATIONS},
    "conv2d": plan_conv2d,
    "separable_conv2d": plan_separable_conv2d,
    "conv2d_transpose": plan_conv2d_transpose,
    "maxpool2d": _plan_pool("MaxPooling2D", "NegInfPadding2D"),
    "avgpool2d": _plan_pool("AveragePooling2D", "ZeroPadding2D"),
    "zeropad2d": plan_zeropad2d,
    "crop2d": lambda b, node, ins: b.add("Cropping2D", ins[0], name=node.name, cropping=_pads(node)),
    "upsample2d": lambda b, node, ins: b.add("UpSampling2D", ins[0], name=node.name, size=tuple(node.attrs["scale"]),
                                             interpolation=node.attrs["mode"]),
    "global_avgpool2d": _plan_global_pool("GlobalAveragePooling2D"),
    "global_maxpool2d": _plan_global_pool("GlobalMaxPooling2D"),
    "batchnorm": plan_batchnorm,
    "layernorm": plan_layernorm,
    "normalize": plan_normalize,
    "dropout": plan_dropout,
    "flatten": plan_flatten,
    "reshape": plan_reshape,
    "dense": plan_dense,
    "add": _plan_broadcast("Add"),
    "multiply": _plan_broadcast("Multiply"),
    "scale": lambda b, node, ins: b.add("Scale", ins[0], name=node.name, init=float(node.attrs["init"])),
    "concat": _simple("Concatenate", axis=-1),  # channels in NHWC
}


def model_name(graph: Graph) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", graph.name) or "cnnspec"


def planner(op: str, layer: str | None = None, target: str = TARGET):
    """The table's entry for ``op``; a missing one is :class:`LoweringMissing` naming op and target."""
    try:
        return PLANNERS[op]
    except KeyError:
        raise LoweringMissing(op, target, layer) from None


def make_plan(graph: Graph, target: str = TARGET) -> Plan:
    """Every node in order, channels-last inside, NCHW at the edges. ``target`` names what the plan
    is for in a :class:`LoweringMissing` (the live model, or ``model_keras.py``)."""
    b = _Builder(graph, target)
    input_var = b.names.var("inputs")
    outs = {INPUT: b.add("Permute", input_var, helper="to_channels_last", dims=(2, 3, 1))}
    for node in graph.nodes:
        outs[node.name] = planner(node.op, node.name, target)(b, node, [outs[i] for i in node.inputs])
    several = graph.several_outputs
    returned = []
    for node in graph.output_nodes:
        out = outs[node.name]
        if len(node.shape) == 3:
            out = b.add("Permute", out, helper=f"{node.name}_to_channels_first" if several else "to_channels_first",
                        dims=(3, 1, 2))
        returned.append(out)
    return Plan(input_var, tuple(graph.input_shape), tuple(b.steps), tuple(returned), model_name(graph))
