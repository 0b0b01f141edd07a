"""A checked graph as an ``nn.Module`` whose state_dict keys are the contract's neutral weight keys.

Layer names with dots (``layer1.0.conv1``) become nested modules, exactly as torchvision nests
them, so a torchvision-style checkpoint whose names match loads as it is. The forward walks the
graph in spec order; each layer's module holds every op of that layer.
"""
from __future__ import annotations

import torch
from torch import nn

from cnnspec.errors import LoweringMissing, UsageError
from cnnspec.graph.ops import written_padding

from . import layers

TARGET = "torch"


def _fused(node):
    """The layer's ``activation``, refused at build time (not in forward) where torch has no entry."""
    act = node.attrs["activation"]
    if act is not None and act not in layers.ACTIVATION_FUNCTIONS:
        raise LoweringMissing(f"activation {act}", TARGET, node.name)
    return act


def _conv2d(node, graph):
    a = node.attrs
    c_in = graph.shape_of(node.inputs[0])[0]
    return layers.Conv2d(c_in, a["filters"], a["kernel"], a["stride"], node.pads, a["dilation"], a["groups"],
                         a["bias"], _fused(node))


def _conv2d_transpose(node, graph):
    a = node.attrs
    c_in = graph.shape_of(node.inputs[0])[0]
    return layers.ConvTranspose2d(c_in, a["filters"], a["kernel"], a["stride"], node.pads, a["output_padding"],
                                  a["bias"], _fused(node))


def _dense(node, graph):
    a = node.attrs
    (n_in,) = graph.shape_of(node.inputs[0])
    return layers.Linear(n_in, a["units"], a["bias"], _fused(node))


def _maxpool(node, graph):
    a = node.attrs
    return layers.MaxPool2d(a["kernel"], a["stride"], node.pads, written_padding(a) if a["ceil"] else None)


def _avgpool(node, graph):
    # `same` excludes its padding from the average; explicit padding counts its zeros
    return layers.AvgPool2d(node.attrs["kernel"], node.attrs["stride"], node.pads,
                            count_padding=node.attrs["padding"] != "same")


def _zeropad2d(node, graph):
    value = node.attrs["value"]
    pads = layers.torch_pad(node.pads)
    return nn.ZeroPad2d(pads) if value == 0 else nn.ConstantPad2d(pads, float(value))


def _upsample2d(node, graph):
    a = node.attrs
    bilinear = a["mode"] == "bilinear"
    return nn.Upsample(scale_factor=tuple(float(s) for s in a["scale"]), mode=a["mode"],
                       align_corners=False if bilinear else None)


def _batchnorm(node, graph):
    a = node.attrs
    cls = layers.BatchNorm2d if len(node.shape) == 3 else layers.BatchNorm1d
    return cls(node.shape[0], a["eps"], a["momentum"], a["scale"], a["center"])


def _layernorm(node, graph):
    cls = layers.LayerNorm2d if len(node.shape) == 3 else nn.LayerNorm
    return cls(node.shape[0], eps=node.attrs["eps"])


def _activation(name):
    return lambda node, graph: layers.Activation(name, node.attrs)


# the torch target's lowering table: op -> (node, graph) -> the layer's module
LAYER_BUILDERS = {
    **{name: _activation(name) for name in layers.ACTIVATION_CALLS},  # those without an nn module of their own
    "conv2d": _conv2d,
    "conv2d_transpose": _conv2d_transpose,
    "dense": _dense,
    "maxpool2d": _maxpool,
    "avgpool2d": _avgpool,
    "zeropad2d": _zeropad2d,
    "crop2d": lambda node, graph: layers.Crop2d(node.pads),
    "upsample2d": _upsample2d,
    "global_avgpool2d": lambda node, graph: layers.GlobalAvgPool2d(bool(node.attrs.get("keepdims"))),
    "global_maxpool2d": lambda node, graph: layers.GlobalMaxPool2d(bool(node.attrs.get("keepdims"))),
    "batchnorm": _batchnorm,
    "layernorm": _layernorm,
    "normalize": lambda node, graph: layers.Normalize(node.shape[0], node.attrs["mean"], node.attrs["std"]),
    "dropout": lambda node, graph: nn.Dropout(node.attrs["rate"]),
    "flatten": lambda node, graph: nn.Flatten(),
    "relu": lambda node, graph: nn.ReLU(),
    "relu6": lambda node, graph: nn.ReLU6(),
    "sigmoid": lambda node, graph: nn.Sigmoid(),
    "tanh": lambda node, graph: nn.Tanh(),
    "softmax": lambda node, graph: layers.Softmax(),
    "leaky_relu": lambda node, graph: nn.LeakyReLU(node.attrs["slope"]),
    "silu": lambda node, graph: nn.SiLU(),
    "hard_sigmoid": lambda node, graph: nn.Hardsigmoid(),
    "hard_swish": lambda node, graph: nn.Hardswish(),
    "gelu": lambda node, graph: nn.GELU(approximate=node.attrs["approximate"]),
    "elu": lambda node, graph: nn.ELU(node.attrs["alpha"]),
    "mish": lambda node, graph: nn.Mish(),
    "add": lambda node, graph: layers.Add(),
    "multiply": lambda node, graph: layers.Multiply(),
    "scale": lambda node, graph: layers.Scale(node.shape[0], node.attrs["init"]),
    "concat": lambda node, graph: layers.Concat(),
}

def builder(op: str, layer: str | None = None):
    """The table's entry for ``op``; a missing one is :class:`LoweringMissing` naming op and target."""
    try:
        return LAYER_BUILDERS[op]
    except KeyError:
        raise LoweringMissing(op, TARGET, layer) from None


class _Mark(torch.autograd.Function):
    """Only during ONNX export: tags a layer's output value with the layer's name (removed afterwards)."""

    @staticmethod
    def forward(ctx, x, name):
        return x

    @staticmethod
    def symbolic(g, x, name):
        out = g.op("cnnspec::Mark", x, layer_s=name)
        out.setType(x.type())
        return out


class SpecModule(nn.Module):
    """The compiled spec. ``forward`` takes float32 [N, C, H, W] and returns the output layer's
    value, or a tuple of the output layers' values in the spec's order where it lists several."""

    def __init__(self, graph):
        super().__init__()
        self.spec_name = graph.name
        self.input_shape = tuple(graph.input_shape)
        self.classes = tuple(graph.classes) if graph.classes else None
        self.mark_outputs = False  # set by the exporter only
        self._outputs = tuple(graph.output_names)
        self.output_names = self._outputs
        self._steps = []
        built = {}
        for node in graph.nodes:
            built[node.name] = builder(node.op, node.name)(node, graph)
        # in spec order, but a layer before its children, so `layer1` (a layer) can also hold `layer1.conv`
        installed = set()
        for name in built:
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                prefix = ".".join(parts[:depth])
                if prefix in built and prefix not in installed:
                    self._install(prefix, built[prefix])
                    installed.add(prefix)
        last_use = {}
        for i, node in enumerate(graph.nodes):
            for src in node.inputs:
                last_use[src] = i
        # (name, module, inputs, values no longer needed after this step)
        self._steps.extend(
            (node.name, built[node.name], tuple(node.inputs),
             tuple(sorted({s for s in node.inputs if last_use[s] == i and s not in self._outputs})))
            for i, node in enumerate(graph.nodes))

    def _install(self, dotted: str, module: nn.Module) -> None:
        """Register under a dotted path, creating plain containers for missing parents.

        Writes ``_modules`` directly so that any valid layer name works, even one that equals an
        attribute of nn.Module (``eval``, ``forward``); attribute access is never used to find layers.
        """
        parent = self
        *path, leaf = dotted.split(".")
        for part in path:
            if part in vars(parent):
                raise UsageError(f"layer name '{dotted}': PyTorch modules keep their own '{part}' there; rename it")
            if part not in parent._modules:
                parent._modules[part] = nn.Module()
            parent = parent._modules[part]
        if leaf in parent._parameters or leaf in parent._buffers:
            raise UsageError(f"layer name '{dotted}' clashes with the weight '{dotted}' of another layer; rename it")
        if leaf in vars(parent):  # e.g. `training`, which nn.Module.train() assigns
            raise UsageError(f"layer name '{dotted}': PyTorch modules keep their own '{leaf}' there; rename it")
        if leaf in parent._modules:  # a container made for children of this name: keep its children
            for child_name, child in parent._modules[leaf]._modules.items():
                module._modules[child_name] = child
        parent._modules[leaf] = module

    def layer(self, name: str) -> nn.Module:
        """The module of the spec layer ``name`` (dotted names welcome)."""
        for step_name, module, _, _ in self._steps:
            if step_name == name:
                return module
        raise KeyError(name)

    def forward(self, x):
        values = {"input": x}
        for name, module, inputs, release in self._steps:
            y = module(*[values[src] for src in inputs])
            if self.mark_outputs:
                y = _Mark.apply(y, name)
            values[name] = y
            for dead in release:
                del values[dead]
        if len(self._outputs) == 1:
            return values[self._outputs[0]]
        return tuple(values[name] for name in self._outputs)

    def extra_repr(self):
        return f"spec={self.spec_name!r}, input_shape={list(self.input_shape)}"


def build_module(graph, seed: int | None = 0) -> SpecModule:
    """The module with PyTorch's default initialisation drawn from ``seed``; the global RNG is untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0 if seed is None else int(seed))
        module = SpecModule(graph)
    return module.eval()
