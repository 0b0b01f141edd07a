"""Writes the standalone ``model.py`` of ``cnnspec build --backend torch``.

The file is what a person would write by hand: standard ``nn`` layers named after the spec's layers,
a plain ``forward`` with one line per layer, and ``load_model()`` that reads ``weights.safetensors``
beside it, needing only torch and safetensors. It computes the same ops in the same order as the
compiled module, so both give the same numbers. Dotted layer names become ``nn.ModuleDict``
containers, so its state_dict keys are the neutral weight keys too.
"""
from __future__ import annotations

import builtins
import inspect
import keyword
import re
import textwrap

from cnnspec import __version__

from . import layers

ACTIVATION_CODE = {
    "relu": "F.relu({})",
    "relu6": "F.relu6({})",
    "sigmoid": "torch.sigmoid({})",
    "tanh": "torch.tanh({})",
    "softmax": "torch.softmax({}, dim=1)",
    "leaky_relu": "F.leaky_relu({}, 0.01)",
}
MODULE_OPS = frozenset({"conv2d", "dense", "batchnorm", "dropout", "maxpool2d", "avgpool2d"})
RESERVED_VARS = frozenset({"self", "torch", "nn", "F", "math", "Path", "load_file", "x"}) | frozenset(dir(builtins))


def _size(pair) -> str:
    h, w = pair
    return str(h) if h == w else f"({h}, {w})"


def _kwargs(**items) -> str:
    return "".join(f", {k}={v}" for k, v in items.items() if v is not None)


def _asymmetric_avg(node) -> bool:
    return node.op == "avgpool2d" and not layers.symmetric(node.pads)


def _constructor(node, graph) -> str | None:
    """The ``nn`` layer a person would declare for this spec layer (None: done inline in forward)."""
    a = node.attrs
    if node.op == "conv2d":
        c_in = graph.shape_of(node.inputs[0])[0]
        pads = node.pads
        padding = _size((pads[0], pads[2])) if layers.symmetric(pads) and any(pads) else None
        return (f"nn.Conv2d({c_in}, {a['filters']}, kernel_size={_size(a['kernel'])}"
                + _kwargs(stride=_size(a["stride"]) if a["stride"] != (1, 1) else None, padding=padding,
                          dilation=_size(a["dilation"]) if a["dilation"] != (1, 1) else None,
                          groups=a["groups"] if a["groups"] != 1 else None,
                          bias=None if a["bias"] else False) + ")")
    if node.op == "dense":
        (n_in,) = graph.shape_of(node.inputs[0])
        return f"nn.Linear({n_in}, {a['units']}" + _kwargs(bias=None if a["bias"] else False) + ")"
    if node.op == "batchnorm":
        kind = "nn.BatchNorm2d" if len(node.shape) == 3 else "nn.BatchNorm1d"
        return (f"{kind}({node.shape[0]}" + _kwargs(eps=None if a["eps"] == 1e-5 else repr(a["eps"]),
                                                    momentum=None if a["momentum"] == 0.1 else repr(a["momentum"]))
                + ")")
    if node.op == "dropout":
        return f"nn.Dropout({a['rate']!r})"
    if node.op in ("maxpool2d", "avgpool2d"):
        if _asymmetric_avg(node):
            return None  # avg_pool_excluding_padding() in forward
        pads = node.pads
        padding = _size((pads[0], pads[2])) if layers.symmetric(pads) and any(pads) else None
        stride = None if a["stride"] == a["kernel"] else _size(a["stride"])
        kind = "nn.MaxPool2d" if node.op == "maxpool2d" else "nn.AvgPool2d"
        exclude = node.op == "avgpool2d" and padding is not None and a["padding"] == "same"
        return (f"{kind}({_size(a['kernel'])}" + _kwargs(stride=stride, padding=padding)
                + (", count_include_pad=False" if exclude else "") + ")")
    return None


class _Names:
    """Python expressions that reach each layer module from ``self``, and the statements creating them."""

    def __init__(self, graph):
        import torch
        from torch import nn

        from .model import LAYER_BUILDERS

        self.kinds = {}      # dotted path -> "layer" | "container"
        self.samples = {}    # dotted path -> an instance, to spot names that clash with its attributes
        self.exprs = {"": "self"}
        self.lines: list[str] = []
        self._nn = nn
        self._root = nn.Module()
        self.constructors = {}
        for node in graph.nodes:
            ctor = _constructor(node, graph)
            if ctor is not None:
                self.constructors[node.name] = ctor
                with torch.device("meta"):  # only its attribute names are needed: allocate nothing
                    self.samples[node.name] = LAYER_BUILDERS[node.op](node, graph)
        for name in self.constructors:
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                self._declare(".".join(parts[:depth]))

    def _segment(self, parent: str, part: str) -> str:
        if self.kinds.get(parent) == "container":
            clash = hasattr(self._nn.ModuleDict(), part)
            return f"._modules[{part!r}]" if clash else f"[{part!r}]"
        sample = self.samples[parent] if parent else self._root
        if part.isidentifier() and not keyword.iskeyword(part) and not hasattr(sample, part):
            return f".{part}"
        return f"._modules[{part!r}]"

    def _declare(self, path: str) -> None:
        if path in self.kinds:
            return
        parent, _, part = path.rpartition(".")
        expr = self.exprs[parent] + self._segment(parent, part)
        self.exprs[path] = expr
        if path in self.constructors:
            self.kinds[path] = "layer"
            self.lines.append(f"{expr} = {self.constructors[path]}")
        else:
            self.kinds[path] = "container"
            self.lines.append(f"{expr} = nn.ModuleDict()")


def _variables(graph) -> dict[str, str]:
    """One Python variable per layer output (``x`` throughout for a plain chain of layers)."""
    if graph.is_sequential():
        return {"input": "x", **{n.name: "x" for n in graph.nodes}}
    out, used = {"input": "x"}, set(RESERVED_VARS)
    for node in graph.nodes:
        var = re.sub(r"\W", "_", node.name)
        if var[0].isdigit() or keyword.iskeyword(var):
            var = "_" + var
        base, k = var, 2
        while var in used:
            var, k = f"{base}_{k}", k + 1
        used.add(var)
        out[node.name] = var
    return out


def _call(node, ins: list[str], module_expr: str | None) -> str:
    """The expression computing one layer from its input expressions."""
    a, x = node.attrs, ins[0] if ins else None
    op = node.op
    if op == "conv2d":
        inner = x if layers.symmetric(node.pads) else f"F.pad({x}, {layers.torch_pad(node.pads)})"
        expr = f"{module_expr}({inner})"
        return ACTIVATION_CODE[a["activation"]].format(expr) if a["activation"] else expr
    if op == "dense":
        expr = f"{module_expr}({x})"
        return ACTIVATION_CODE[a["activation"]].format(expr) if a["activation"] else expr
    if op == "maxpool2d" and not layers.symmetric(node.pads):
        return f"{module_expr}(F.pad({x}, {layers.torch_pad(node.pads)}, value=-math.inf))"
    if _asymmetric_avg(node):
        return (f"avg_pool_excluding_padding({x}, {tuple(a['kernel'])}, {tuple(a['stride'])}, "
                f"{layers.torch_pad(node.pads)})")
    if module_expr is not None:
        return f"{module_expr}({x})"
    inline = {
        "global_avgpool2d": lambda: f"{x}.mean(dim=(2, 3))",
        "flatten": lambda: f"torch.flatten({x}, 1)",
        "leaky_relu": lambda: f"F.leaky_relu({x}, {a['slope']!r})",
        "add": lambda: " + ".join(ins),
        "concat": lambda: f"torch.cat([{', '.join(ins)}], dim=1)",
    }
    if op in inline:
        return inline[op]()
    return ACTIVATION_CODE[op].format(x)


def _class_name(spec_name: str) -> str:
    words = [w for w in re.split(r"[^0-9A-Za-z]+", spec_name) if w]
    name = "".join(w[:1].upper() + w[1:] for w in words) or "Model"
    return name if name[0].isalpha() else "Net" + name


def _comment(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        out += ["# " + part for part in textwrap.wrap(line, 96)] or ["#"]
    return out


def _shape(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def generate_model_py(graph) -> str:
    names = _Names(graph)
    variables = _variables(graph)
    cls = _class_name(graph.name)
    needs_avg_helper = any(_asymmetric_avg(n) for n in graph.nodes)
    needs_math = any(n.op == "maxpool2d" and not layers.symmetric(n.pads) for n in graph.nodes)
    out = [
        f'"""{cls}: a PyTorch module for the cnnspec spec of the same name, written by cnnspec {__version__}.',
        "",
        "Needs only torch and safetensors. Standard layers, named as in the spec. Where TensorFlow-style",
        "'same' padding puts an extra pixel at the bottom and right, forward pads explicitly (F.pad).",
        "",
        "    model = load_model()  # reads weights.safetensors beside this file",
        "    with torch.no_grad():",
        "        scores = model(batch)  # float32 [N, C, H, W] as in INPUT_SHAPE",
        '"""',
    ]
    if graph.description:
        out += _comment(graph.description)
    if needs_math:
        out += ["import math"]
    out += [
        "from pathlib import Path",
        "",
        "import torch",
        "import torch.nn.functional as F",
        "from safetensors.torch import load_file",
        "from torch import nn",
        "",
        f"SPEC_NAME = {graph.name!r}",
        f"INPUT_SHAPE = {tuple(graph.input_shape)!r}  # channels, height, width",
        f"CLASSES = {list(graph.classes) if graph.classes else None!r}",
        "",
    ]
    if needs_avg_helper:
        out += ["", inspect.getsource(layers.avg_pool_excluding_padding).rstrip(), ""]
    out += ["", f"class {cls}(nn.Module):", "    def __init__(self):", "        super().__init__()"]
    out += ["        " + line for line in names.lines]
    out += ["", "    def forward(self, x):"]
    for node in graph.nodes:
        ins = [variables[i] for i in node.inputs]
        expr = _call(node, ins, names.exprs.get(node.name))
        out.append(f"        {variables[node.name]} = {expr}  # {node.name}: {_shape(node.shape)}")
    out.append(f"        return {variables[graph.output.name]}")
    out += [
        "",
        "",
        'def load_model(weights=Path(__file__).with_name("weights.safetensors"), device="cpu"):',
        f'    """A {cls} in inference mode with the weights from a safetensors file."""',
        f"    model = {cls}()",
        "    missing, unexpected = model.load_state_dict(load_file(str(weights)), strict=False)",
        "    # batchnorm's step counter is not a weight, so the file does not hold it",
        '    missing = [key for key in missing if not key.endswith("num_batches_tracked")]',
        "    if missing or unexpected:",
        '        raise ValueError(f"{weights}: does not fit {SPEC_NAME}: "',
        '                         f"missing {missing[:3]}, unexpected {unexpected[:3]}")',
        "    return model.to(device).eval()",
        "",
        "",
        'if __name__ == "__main__":',
        "    model = load_model()",
        "    print(model)",
        "    with torch.no_grad():",
        "        print(\"output shape:\", list(model(torch.zeros((1,) + INPUT_SHAPE)).shape))",
        "",
    ]
    return "\n".join(out)
