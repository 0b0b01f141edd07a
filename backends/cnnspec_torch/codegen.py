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
from dataclasses import dataclass
from typing import Callable

from cnnspec.errors import LoweringMissing
from cnnspec.graph.ops import activation_defaults, written_padding
from cnnspec.version import __version__

from . import layers

TARGET = "torch model.py"
# fused activations, as text around the layer's expression: the live module's calls, written out
ACTIVATION_CODE = {name: call.code("{}", activation_defaults(name)) for name, call in layers.ACTIVATION_CALLS.items()}
RESERVED_VARS = frozenset({"self", "torch", "nn", "F", "math", "Path", "load_file", "x"}) | frozenset(dir(builtins))
MATH, AVG_HELPER = "math", "avg_pool_excluding_padding"  # what a forward line may need at the top of the file
# helpers model.py copies from layers.py where a layer needs one (torch has no such module or function)
HELPERS = {AVG_HELPER: layers.avg_pool_excluding_padding, "fixed_affine": layers.fixed_affine,
           "LayerNorm2d": layers.LayerNorm2d, "Normalize": layers.Normalize, "Scale": layers.Scale}


def _size(pair) -> str:
    h, w = pair
    return str(h) if h == w else f"({h}, {w})"


def _kwargs(**items) -> str:
    return "".join(f", {k}={v}" for k, v in items.items() if v is not None)


def _symmetric_padding(pads) -> str | None:
    """nn layers pad symmetrically only: the padding argument where that suffices (else F.pad in forward)."""
    return _size((pads[0], pads[2])) if layers.symmetric(pads) and any(pads) else None


def _keep(node) -> str:
    """The slice that keeps a layer's output of its cropped input: ``[:, :, top:top+H, left:left+W]``."""
    top, _, left, _ = node.pads
    _, h, w = node.shape
    return f"[:, :, {top}:{top + h}, {left}:{left + w}]"


def _keepdim(node) -> str:
    """A global pool's ``keepdims``: the [N, C, 1, 1] map a 1x1 convolution reads (squeeze-and-excite)."""
    return ", keepdim=True" if node.attrs.get("keepdims") else ""


def _with_activation(node, expr: str) -> str:
    act = node.attrs["activation"]
    return ACTIVATION_CODE[act].format(expr) if act else expr


# ---- one entry per op: the nn layer declared in __init__ (if any) and the expression in forward ----

def _conv2d_constructor(node, graph) -> str:
    a = node.attrs
    c_in = graph.shape_of(node.inputs[0])[0]
    return (f"nn.Conv2d({c_in}, {a['filters']}, kernel_size={_size(a['kernel'])}"
            + _kwargs(stride=_size(a["stride"]) if a["stride"] != (1, 1) else None, padding=_symmetric_padding(node.pads),
                      dilation=_size(a["dilation"]) if a["dilation"] != (1, 1) else None,
                      groups=a["groups"] if a["groups"] != 1 else None,
                      bias=None if a["bias"] else False) + ")")


def _conv2d_call(node, ins, module) -> str:
    x = ins[0]
    inner = x if layers.symmetric(node.pads) else f"F.pad({x}, {layers.torch_pad(node.pads)})"
    return _with_activation(node, f"{module}({inner})")


def _conv2d_transpose_constructor(node, graph) -> str:
    a = node.attrs
    c_in = graph.shape_of(node.inputs[0])[0]
    return (f"nn.ConvTranspose2d({c_in}, {a['filters']}, kernel_size={_size(a['kernel'])}"
            + _kwargs(stride=_size(a["stride"]) if a["stride"] != (1, 1) else None,
                      padding=_symmetric_padding(node.pads),
                      output_padding=_size(a["output_padding"]) if any(a["output_padding"]) else None,
                      bias=None if a["bias"] else False) + ")")


def _conv2d_transpose_call(node, ins, module) -> str:
    # nn.ConvTranspose2d crops symmetrically only: an asymmetric crop is a slice of its uncropped output
    keep = "" if layers.symmetric(node.pads) else _keep(node)
    return _with_activation(node, f"{module}({ins[0]}){keep}")


def _dense_constructor(node, graph) -> str:
    (n_in,) = graph.shape_of(node.inputs[0])
    return f"nn.Linear({n_in}, {node.attrs['units']}" + _kwargs(bias=None if node.attrs["bias"] else False) + ")"


def _fixed_affine(node) -> bool:
    return not (node.attrs["scale"] and node.attrs["center"])


def _batchnorm_constructor(node, graph) -> str:
    a = node.attrs
    kind = "nn.BatchNorm2d" if len(node.shape) == 3 else "nn.BatchNorm1d"
    layer = (f"{kind}({node.shape[0]}" + _kwargs(eps=None if a["eps"] == 1e-5 else repr(a["eps"]),
                                                 momentum=None if a["momentum"] == 0.1 else repr(a["momentum"])) + ")")
    if not _fixed_affine(node):
        return layer
    return f"fixed_affine({layer}" + _kwargs(scale=None if a["scale"] else False,
                                             center=None if a["center"] else False) + ")"


def _layernorm_constructor(node, graph) -> str:
    kind = "LayerNorm2d" if len(node.shape) == 3 else "nn.LayerNorm"
    eps = node.attrs["eps"]
    return f"{kind}({node.shape[0]}" + _kwargs(eps=None if eps == 1e-5 else repr(eps)) + ")"


def _normalize_constructor(node, graph) -> str:
    a = node.attrs
    return f"Normalize({node.shape[0]}, mean={a['mean']!r}, std={a['std']!r})"


def _pool_constructor(kind: str, node, pads, ceil: bool = False) -> str:
    a = node.attrs
    padding = _symmetric_padding(pads)
    stride = None if a["stride"] == a["kernel"] else _size(a["stride"])
    exclude = kind == "nn.AvgPool2d" and padding is not None and a["padding"] == "same"
    return (f"{kind}({_size(a['kernel'])}" + _kwargs(stride=stride, padding=padding)
            + (", count_include_pad=False" if exclude else "") + (", ceil_mode=True" if ceil else "") + ")")


def _maxpool_pads(node) -> tuple[tuple, bool]:
    """The padding model.py's max pool applies, and whether PyTorch's ``ceil_mode`` does the rest
    (symmetric written padding); else ``node.pads``, which reach the last window, before a floor pool."""
    native = layers.ceil_mode_padding(written_padding(node.attrs) if node.attrs["ceil"] else None)
    return (native or node.pads), native is not None


def _maxpool_constructor(node, graph) -> str:
    pads, ceil = _maxpool_pads(node)
    return _pool_constructor("nn.MaxPool2d", node, pads, ceil)


def _maxpool_call(node, ins, module) -> str:
    pads, _ = _maxpool_pads(node)
    if layers.symmetric(pads):
        return f"{module}({ins[0]})"
    return f"{module}(F.pad({ins[0]}, {layers.torch_pad(pads)}, value=-math.inf))"


def _avg_helper(node) -> bool:
    """`same` with an odd total: no nn layer excludes asymmetric padding from the count."""
    return not layers.symmetric(node.pads) and node.attrs["padding"] == "same"


def _avgpool_constructor(node, graph) -> str | None:
    return None if _avg_helper(node) else _pool_constructor("nn.AvgPool2d", node, node.pads)


def _avgpool_call(node, ins, module) -> str:
    a = node.attrs
    if _avg_helper(node):
        return f"{AVG_HELPER}({ins[0]}, {tuple(a['kernel'])}, {tuple(a['stride'])}, {layers.torch_pad(node.pads)})"
    if layers.symmetric(node.pads):
        return f"{module}({ins[0]})"
    return f"{module}(F.pad({ins[0]}, {layers.torch_pad(node.pads)}))"  # explicit: the zeros count


def _zeropad2d_constructor(node, graph) -> str:
    value = node.attrs["value"]
    pads = layers.torch_pad(node.pads)
    return f"nn.ZeroPad2d({pads})" if value == 0 else f"nn.ConstantPad2d({pads}, {float(value)!r})"


def _upsample2d_constructor(node, graph) -> str:
    a = node.attrs
    linear = ", align_corners=False" if a["mode"] == "bilinear" else ""
    return f"nn.Upsample(scale_factor={_size(a['scale'])}, mode={a['mode']!r}{linear})"


def _module_call(node, ins, module) -> str:
    return f"{module}({ins[0]})"


def _no_constructor(node, graph) -> None:
    return None


def _needs_nothing(node) -> tuple:
    return ()


@dataclass(frozen=True)
class Code:
    """How ``model.py`` writes one op. ``call(node, input expressions, module expression)`` is the
    forward expression; ``constructor(node, graph)`` the ``nn`` layer declared in ``__init__`` (None:
    computed inline); ``needs(node)`` what the layer uses from the file's top (MATH, a name in HELPERS)."""

    call: Callable
    constructor: Callable = _no_constructor
    needs: Callable = _needs_nothing
    broadcast: bool = False  # [N, C] inputs of a map-shaped layer are read as [N, C, 1, 1]


def _activation_code(name: str) -> Code:
    return Code(lambda node, ins, module: layers.ACTIVATION_CALLS[name].code(ins[0], node.attrs))


# the torch model.py target's lowering table
CODE = {
    **{name: _activation_code(name) for name in layers.ACTIVATION_CALLS},
    "conv2d": Code(_conv2d_call, _conv2d_constructor),
    "conv2d_transpose": Code(_conv2d_transpose_call, _conv2d_transpose_constructor),
    "dense": Code(lambda node, ins, module: _with_activation(node, f"{module}({ins[0]})"), _dense_constructor),
    "batchnorm": Code(_module_call, _batchnorm_constructor,
                      lambda node: ("fixed_affine",) if _fixed_affine(node) else ()),
    "layernorm": Code(_module_call, _layernorm_constructor,
                      lambda node: ("LayerNorm2d",) if len(node.shape) == 3 else ()),
    "normalize": Code(_module_call, _normalize_constructor, lambda node: ("Normalize",)),
    "dropout": Code(_module_call, lambda node, graph: f"nn.Dropout({node.attrs['rate']!r})"),
    "maxpool2d": Code(_maxpool_call, _maxpool_constructor,
                      lambda node: () if layers.symmetric(_maxpool_pads(node)[0]) else (MATH,)),
    "avgpool2d": Code(_avgpool_call, _avgpool_constructor, lambda node: (AVG_HELPER,) if _avg_helper(node) else ()),
    "zeropad2d": Code(_module_call, _zeropad2d_constructor),
    "crop2d": Code(lambda node, ins, module: f"{ins[0]}{_keep(node)}"),
    "upsample2d": Code(_module_call, _upsample2d_constructor),
    "global_avgpool2d": Code(lambda node, ins, module: f"{ins[0]}.mean(dim=(2, 3){_keepdim(node)})"),
    "global_maxpool2d": Code(lambda node, ins, module: f"{ins[0]}.amax(dim=(2, 3){_keepdim(node)})"),
    "flatten": Code(lambda node, ins, module: f"torch.flatten({ins[0]}, 1)"),
    "add": Code(lambda node, ins, module: " + ".join(ins), broadcast=True),
    "multiply": Code(lambda node, ins, module: " * ".join(ins), broadcast=True),
    "scale": Code(_module_call, lambda node, graph: f"Scale({node.shape[0]}, init={node.attrs['init']!r})",
                  lambda node: ("Scale",)),
    "concat": Code(lambda node, ins, module: f"torch.cat([{', '.join(ins)}], dim=1)"),
}


def code_for(op: str, layer: str | None = None) -> Code:
    """The table's entry for ``op``; a missing one is :class:`LoweringMissing` naming op and target."""
    try:
        return CODE[op]
    except KeyError:
        raise LoweringMissing(op, TARGET, layer) from None


def _check_lowerings(graph) -> None:
    """Every op and fused activation has an entry here, before the live layers are sampled for names
    (which would name the live target instead)."""
    for node in graph.nodes:
        code_for(node.op, node.name)
        act = node.attrs.get("activation")
        if act is not None and act not in ACTIVATION_CODE:
            raise LoweringMissing(f"activation {act}", TARGET, node.name)


class _Names:
    """Python expressions that reach each layer module from ``self``, and the statements creating them."""

    def __init__(self, graph):
        import torch
        from torch import nn

        from .model import builder

        self.kinds = {}      # dotted path -> "layer" | "container"
        self.samples = {}    # dotted path -> an instance, to spot names that clash with its attributes
        self.exprs = {"": "self"}
        self.lines: list[str] = []
        self._nn = nn
        self._root = nn.Module()
        self.constructors = {}
        for node in graph.nodes:
            ctor = code_for(node.op, node.name).constructor(node, graph)
            if ctor is not None:
                self.constructors[node.name] = ctor
                with torch.device("meta"):  # only its attribute names are needed: allocate nothing
                    self.samples[node.name] = builder(node.op, node.name)(node, graph)
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
    if graph.is_sequential() and graph.output_names == (graph.nodes[-1].name,):
        return {"input": "x", **{n.name: "x" for n in graph.nodes}}
    out, used = {"input": "x"}, set(RESERVED_VARS) | set(HELPERS)
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


def _class_name(spec_name: str) -> str:
    words = [w for w in re.split(r"[^0-9A-Za-z]+", spec_name) if w]
    name = "".join(w[:1].upper() + w[1:] for w in words) or "Model"
    name = name if name[0].isalpha() else "Net" + name
    return name + "Net" if name in HELPERS else name  # a spec named 'scale' must not hide the helper Scale


def _inputs(node, graph, variables, code: Code) -> list[str]:
    """The input expressions; a broadcasting layer reads a [N, C] gate as [N, C, 1, 1] beside maps."""
    ins = [variables[i] for i in node.inputs]
    if code.broadcast and len(node.shape) == 3:
        ins = [f"{v}[:, :, None, None]" if len(graph.shape_of(i)) == 1 else v for i, v in zip(node.inputs, ins)]
    return ins


def _comment(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        out += ["# " + part for part in textwrap.wrap(line, 96)] or ["#"]
    return out


def _shape(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def generate_model_py(graph) -> str:
    _check_lowerings(graph)
    names = _Names(graph)
    variables = _variables(graph)
    cls = _class_name(graph.name)
    needs = {need for node in graph.nodes for need in code_for(node.op, node.name).needs(node)}
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
    if MATH in needs:
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
        *([f"OUTPUTS = {list(graph.output_names)!r}  # forward returns these layers' values, in this order"]
          if graph.several_outputs else []),
        "",
    ]
    for helper, source in HELPERS.items():
        if helper in needs:
            out += ["", inspect.getsource(source).rstrip(), ""]
    out += ["", f"class {cls}(nn.Module):", "    def __init__(self):", "        super().__init__()"]
    out += ["        " + line for line in names.lines]
    out += ["", "    def forward(self, x):"]
    for node in graph.nodes:
        code = code_for(node.op, node.name)
        expr = code.call(node, _inputs(node, graph, variables, code), names.exprs.get(node.name))
        out.append(f"        {variables[node.name]} = {expr}  # {node.name}: {_shape(node.shape)}")
    returned = [variables[name] for name in graph.output_names]
    out.append(f"        return {returned[0]}" if len(returned) == 1 else
               f"        return {', '.join(returned)}  # {', '.join(graph.output_names)}")
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
        *(["        print(\"output shape:\", list(model(torch.zeros((1,) + INPUT_SHAPE)).shape))"]
          if not graph.several_outputs else
          ["        outputs = model(torch.zeros((1,) + INPUT_SHAPE))",
           "        for name, y in zip(OUTPUTS, outputs):",
           "            print(f\"output {name} shape:\", list(y.shape))"]),
        "",
    ]
    return "\n".join(out)
