"""Small PyTorch modules that compute exactly the contract's ops, one module per spec layer.

Each module subclasses the standard one where there is one (so trainers, ``isinstance`` checks
and optimisers see ordinary ``nn.Conv2d`` / ``nn.Linear`` / ``nn.BatchNorm2d``), adds only what
PyTorch lacks, and keeps every ONNX op of its layer inside its own forward:

* asymmetric padding (TensorFlow ``same`` with an odd total puts the extra pixel at the bottom
  and right): PyTorch's layers pad symmetrically only, so the input is padded explicitly first
  (zeros for conv, -inf for max pooling); on ONNX export the layer becomes ONE Conv/MaxPool/
  AveragePool node with asymmetric ``pads`` instead of a Pad chain;
* ``same`` average pooling excludes the padding from the count (as TensorFlow does); explicit
  padding counts the zeros (PyTorch's default);
* a transposed convolution crops its output (``padding``) symmetrically in PyTorch only, so an
  asymmetric crop (``same`` with an odd ``F - S``, or four sides) is a padding-free one, then a slice;
* ``ceil: true`` max pooling with asymmetric padding pads -inf just as far as the last window reaches,
  then pools in floor mode (the same numbers as ``ceil_mode``);
* a fused ``activation`` runs inside the layer's module, so the layer's output is the activated one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, partial

import torch
import torch.nn.functional as F
from torch import nn

from cnnspec.graph.ops import activation_defaults


@dataclass(frozen=True)
class FunctionCall:
    """A torch function applied to a layer's value: called by the live module and written out, as
    the same call with the same arguments, in ``model.py``. ``args`` name the activation's arguments
    (passed after x, values from the layer's attrs or the registry's defaults); ``kwargs`` are fixed."""

    function: str                # "F.relu", "torch.softmax": as model.py imports them
    args: tuple[str, ...] = ()
    kwargs: tuple = ()           # ((name, value), ...)
    keywords: tuple[str, ...] = ()  # activation arguments passed by keyword, same name (F.gelu's approximate)

    @cached_property
    def resolved(self):
        namespace, _, name = self.function.partition(".")
        return getattr({"F": F, "torch": torch}[namespace], name)

    def __call__(self, x, attrs):
        return self.resolved(x, *(attrs[a] for a in self.args), **{k: attrs[k] for k in self.keywords},
                             **dict(self.kwargs))

    def code(self, x: str, attrs) -> str:
        extra = ([repr(attrs[a]) for a in self.args] + [f"{k}={attrs[k]!r}" for k in self.keywords]
                 + [f"{k}={v!r}" for k, v in self.kwargs])
        return f"{self.function}({', '.join([x, *extra])})"


# the torch target's activation table, one entry per activation in cnnspec.graph.ops.ACTIVATIONS
ACTIVATION_CALLS = {
    "relu": FunctionCall("F.relu"),
    "relu6": FunctionCall("F.relu6"),
    "sigmoid": FunctionCall("torch.sigmoid"),
    "tanh": FunctionCall("torch.tanh"),
    "softmax": FunctionCall("torch.softmax", kwargs=(("dim", 1),)),  # channels for maps, features for vectors
    "leaky_relu": FunctionCall("F.leaky_relu", args=("slope",)),
    "silu": FunctionCall("F.silu"),
    "hard_sigmoid": FunctionCall("F.hardsigmoid"),  # min(max(x + 3, 0), 6) / 6
    "hard_swish": FunctionCall("F.hardswish"),
    "gelu": FunctionCall("F.gelu", keywords=("approximate",)),  # 'none' or 'tanh', as the contract names them
    "elu": FunctionCall("F.elu", args=("alpha",)),
    "mish": FunctionCall("F.mish"),
}

# fused activations (conv2d/dense ``activation``): name -> function of x, with the registry's defaults
ACTIVATION_FUNCTIONS = {name: partial(call, attrs=activation_defaults(name)) for name, call in ACTIVATION_CALLS.items()}


def torch_pad(pads) -> tuple[int, int, int, int]:
    """cnnspec's (top, bottom, left, right) as F.pad's (left, right, top, bottom)."""
    top, bottom, left, right = pads
    return (left, right, top, bottom)


def symmetric(pads) -> bool:
    top, bottom, left, right = pads
    return top == bottom and left == right


def onnx_pads(pads) -> list[int]:
    """cnnspec's (top, bottom, left, right) as ONNX's [top, left, bottom, right]."""
    top, bottom, left, right = pads
    return [top, left, bottom, right]


def crop(x, pads):
    """Removes (top, bottom, left, right) rows and columns of an [N, C, H, W] tensor."""
    top, bottom, left, right = pads
    return x[:, :, top:x.shape[2] - bottom, left:x.shape[3] - right]


def avg_pool_excluding_padding(x, kernel, stride, pads):
    """TensorFlow's ``same`` average pooling: zero-pad, sum each window, divide by the number of real
    (unpadded) pixels in it. ``pads`` is F.pad's (left, right, top, bottom)."""
    sums = F.avg_pool2d(F.pad(x, pads), kernel, stride, divisor_override=1)
    ones = torch.ones((1, 1) + tuple(x.shape[-2:]), dtype=x.dtype, device=x.device)
    counts = F.avg_pool2d(F.pad(ones, pads), kernel, stride, divisor_override=1)
    return sums / counts


# ---- ONNX export of asymmetric padding: one node with asymmetric pads (eager never uses these) ----

class _AsymmetricConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, pads, stride, dilation, groups):
        return F.conv2d(F.pad(x, torch_pad(pads)), weight, bias, stride, 0, dilation, groups)

    @staticmethod
    def symbolic(g, x, weight, bias, pads, stride, dilation, groups):
        from torch.onnx import symbolic_helper

        inputs = [x, weight] if bias is None or symbolic_helper._is_none(bias) else [x, weight, bias]
        kernel = symbolic_helper._get_tensor_sizes(weight)[2:]
        return g.op("Conv", *inputs, kernel_shape_i=list(kernel), pads_i=onnx_pads(pads),
                    strides_i=list(stride), dilations_i=list(dilation), group_i=groups)


class _AsymmetricMaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, kernel, stride, pads):
        return F.max_pool2d(F.pad(x, torch_pad(pads), value=-math.inf), kernel, stride)

    @staticmethod
    def symbolic(g, x, kernel, stride, pads):
        return g.op("MaxPool", x, kernel_shape_i=list(kernel), pads_i=onnx_pads(pads), strides_i=list(stride))


class _AsymmetricAvgPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, kernel, stride, pads, count_padding):
        if count_padding:
            return F.avg_pool2d(F.pad(x, torch_pad(pads)), kernel, stride)
        return avg_pool_excluding_padding(x, kernel, stride, torch_pad(pads))

    @staticmethod
    def symbolic(g, x, kernel, stride, pads, count_padding):
        return g.op("AveragePool", x, kernel_shape_i=list(kernel), pads_i=onnx_pads(pads),
                    strides_i=list(stride), count_include_pad_i=int(count_padding))


def _exporting() -> bool:
    return torch.onnx.is_in_onnx_export()


class _FusedActivation:
    """Mixin: applies ``self.activation`` (a name from ACTIVATION_FUNCTIONS, or None) after the layer."""

    def activate(self, y):
        return ACTIVATION_FUNCTIONS[self.activation](y) if self.activation else y


class Conv2d(_FusedActivation, nn.Conv2d):
    """nn.Conv2d with resolved (top, bottom, left, right) padding of any symmetry and a fused activation."""

    def __init__(self, in_channels, out_channels, kernel, stride, pads, dilation, groups, bias, activation=None):
        even = symmetric(pads)
        super().__init__(in_channels, out_channels, tuple(kernel), tuple(stride),
                         padding=(pads[0], pads[2]) if even else 0, dilation=tuple(dilation),
                         groups=groups, bias=bias)
        self.pads = tuple(pads)
        self.pre_pad = None if even else torch_pad(pads)
        self.activation = activation

    def forward(self, x):
        if self.pre_pad is None:
            y = super().forward(x)
        elif _exporting():
            y = _AsymmetricConv.apply(x, self.weight, self.bias, self.pads, self.stride, self.dilation, self.groups)
        else:
            y = super().forward(F.pad(x, self.pre_pad))
        return self.activate(y)

    def extra_repr(self):
        text = super().extra_repr()
        if self.pre_pad is not None:
            text += f", pads(top, bottom, left, right)={self.pads}"
        return text + (f", activation={self.activation}" if self.activation else "")


class Reshape(nn.Module):
    """The values of each sample in channel, row, column order, read into ``shape`` (without the batch)."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self):
        return f"shape={list(self.shape)}"


class SeparableConv2d(nn.Module):
    """Keras' SeparableConv2D as two convolutions named ``depthwise`` (groups = input channels, no bias)
    and ``pointwise`` (1x1, with the bias and the fused activation): their state_dict keys are the
    contract's ``depthwise.weight``, ``pointwise.weight``, ``pointwise.bias``."""

    def __init__(self, in_channels, out_channels, kernel, stride, pads, dilation, depth_multiplier, bias,
                 activation=None):
        super().__init__()
        middle = in_channels * depth_multiplier
        self.depthwise = Conv2d(in_channels, middle, kernel, stride, pads, dilation, in_channels, False)
        self.pointwise = Conv2d(middle, out_channels, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, bias, activation)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class ConvTranspose2d(_FusedActivation, nn.ConvTranspose2d):
    """nn.ConvTranspose2d with a (top, bottom, left, right) crop of any symmetry and a fused activation."""

    def __init__(self, in_channels, out_channels, kernel, stride, pads, output_padding, bias, activation=None):
        even = symmetric(pads)
        super().__init__(in_channels, out_channels, tuple(kernel), tuple(stride),
                         padding=(pads[0], pads[2]) if even else 0, output_padding=tuple(output_padding),
                         bias=bias)
        self.pads = tuple(pads)
        self.post_crop = None if even else self.pads
        self.activation = activation

    def forward(self, x):
        y = super().forward(x)
        return self.activate(y if self.post_crop is None else crop(y, self.post_crop))

    def extra_repr(self):
        text = super().extra_repr()
        if self.post_crop is not None:
            text += f", crop(top, bottom, left, right)={self.pads}"
        return text + (f", activation={self.activation}" if self.activation else "")


class Linear(_FusedActivation, nn.Linear):
    def __init__(self, in_features, out_features, bias, activation=None):
        super().__init__(in_features, out_features, bias=bias)
        self.activation = activation

    def forward(self, x):
        return self.activate(super().forward(x))

    def extra_repr(self):
        return super().extra_repr() + (f", activation={self.activation}" if self.activation else "")


def ceil_mode_padding(ceil_pads) -> tuple | None:
    """PyTorch's ``ceil_mode`` computes a ceil-mode pool where its written padding is symmetric: that
    padding, else None (then ``pads``, which reach the last window, go before a floor-mode pool)."""
    return tuple(ceil_pads) if ceil_pads is not None and symmetric(ceil_pads) else None


class MaxPool2d(nn.MaxPool2d):
    """Max pooling; every padded position is -inf (PyTorch's implicit padding, or an explicit -inf pad).
    ``ceil_pads``: for ``ceil: true``, the padding as written (``pads`` reach the last window)."""

    def __init__(self, kernel, stride, pads, ceil_pads=None):
        native = ceil_mode_padding(ceil_pads)
        pads = tuple(native or pads)
        even = symmetric(pads)
        super().__init__(tuple(kernel), tuple(stride), padding=(pads[0], pads[2]) if even else 0,
                         ceil_mode=native is not None)
        self.pads = pads
        self.pre_pad = None if even else torch_pad(pads)

    def forward(self, x):
        if self.pre_pad is None:
            return super().forward(x)
        if _exporting():
            return _AsymmetricMaxPool.apply(x, self.kernel_size, self.stride, self.pads)
        return super().forward(F.pad(x, self.pre_pad, value=-math.inf))


class AvgPool2d(nn.AvgPool2d):
    """Average pooling. ``same`` excludes the padding from the count; explicit padding counts its zeros
    (asymmetric explicit padding: zeros padded first, then a padding-free pool)."""

    def __init__(self, kernel, stride, pads, count_padding: bool):
        even = symmetric(pads)
        super().__init__(tuple(kernel), tuple(stride), padding=(pads[0], pads[2]) if even else 0,
                         count_include_pad=count_padding)
        self.pads = tuple(pads)
        self.pre_pad = None if even else torch_pad(pads)

    def forward(self, x):
        if self.pre_pad is None:
            return super().forward(x)
        if _exporting():
            return _AsymmetricAvgPool.apply(x, self.kernel_size, self.stride, self.pads, self.count_include_pad)
        if self.count_include_pad:
            return super().forward(F.pad(x, self.pre_pad))  # padding=0 here: the zeros are real pixels now
        return avg_pool_excluding_padding(x, self.kernel_size, self.stride, self.pre_pad)


class Crop2d(nn.Module):
    """Removes (top, bottom, left, right) rows and columns."""

    def __init__(self, crops):
        super().__init__()
        self.crops = tuple(crops)

    def forward(self, x):
        return crop(x, self.crops)

    def extra_repr(self):
        return f"crop(top, bottom, left, right)={self.crops}"


class GlobalAvgPool2d(nn.Module):
    """Mean over height and width: [N, C, H, W] -> [N, C] ([N, C, 1, 1] with ``keepdim``)."""

    def __init__(self, keepdim: bool = False):
        super().__init__()
        self.keepdim = keepdim

    def forward(self, x):
        return x.mean(dim=(2, 3), keepdim=self.keepdim)


class GlobalMaxPool2d(nn.Module):
    """Maximum over height and width: [N, C, H, W] -> [N, C] ([N, C, 1, 1] with ``keepdim``)."""

    def __init__(self, keepdim: bool = False):
        super().__init__()
        self.keepdim = keepdim

    def forward(self, x):
        return x.amax(dim=(2, 3), keepdim=self.keepdim)


def fixed_affine(norm, scale=True, center=True):
    """Keras' ``scale=False`` / ``center=False`` on a PyTorch batchnorm, whose ``affine`` switches both
    together: the part that is not learned becomes a constant buffer (1 or 0), outside parameters()
    and state_dict, so it is neither trained nor expected in a weights file."""
    for part, learned, value in (("weight", scale, 1.0), ("bias", center, 0.0)):
        if not learned:
            delattr(norm, part)
            norm.register_buffer(part, torch.full((norm.num_features,), value), persistent=False)
    return norm


class _NeutralKeysBatchNorm:
    """The contract's weights hold weight, bias, running_mean and running_var only: the step counter
    (unused, since momentum is always a number) is kept out of state_dict, and ignored when a
    torchvision checkpoint brings one."""

    def _hide_counter(self):
        self.register_buffer("num_batches_tracked", self.num_batches_tracked, persistent=False)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        counter = prefix + "num_batches_tracked"
        if counter in unexpected_keys:
            unexpected_keys.remove(counter)


class BatchNorm2d(_NeutralKeysBatchNorm, nn.BatchNorm2d):
    def __init__(self, channels, eps, momentum, scale=True, center=True):
        super().__init__(channels, eps=eps, momentum=momentum)
        self._hide_counter()
        fixed_affine(self, scale, center)


class BatchNorm1d(_NeutralKeysBatchNorm, nn.BatchNorm1d):
    def __init__(self, features, eps, momentum, scale=True, center=True):
        super().__init__(features, eps=eps, momentum=momentum)
        self._hide_counter()
        fixed_affine(self, scale, center)


class LayerNorm2d(nn.LayerNorm):
    """Layer normalisation over the channels at each pixel of [N, C, H, W] (ConvNeXt's LayerNorm2d):
    nn.LayerNorm normalises the last axis, so the channels go last and back."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Normalize(nn.Module):
    """(x - mean) / std per channel of [N, C, H, W] or feature of [N, C]. The statistics are constants of
    the model (buffers outside state_dict), not weights: a model that expects them takes [0, 1] pixels."""

    def __init__(self, channels, mean=0.0, std=1.0):
        super().__init__()
        for name, value in (("mean", mean), ("std", std)):
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32).expand(channels).clone(),
                                 persistent=False)

    def forward(self, x):
        shape = (-1,) + (1,) * (x.dim() - 2)  # channels first: [C, 1, 1] for maps
        return (x - self.mean.view(shape)) / self.std.view(shape)


class Scale(nn.Module):
    """A learned multiplier per channel of [N, C, H, W] or feature of [N, C] (ConvNeXt's layer scale)."""

    def __init__(self, channels, init=1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(init)))

    def forward(self, x):
        return x * self.weight.view((-1,) + (1,) * (x.dim() - 2))


def as_maps(xs):
    """[N, C] vectors beside [N, C, H, W] maps as [N, C, 1, 1], so they broadcast over height and width
    (left alone, [N, C] would line up with [H, W])."""
    if all(x.dim() == xs[0].dim() for x in xs):
        return xs
    return [x[:, :, None, None] if x.dim() == 2 else x for x in xs]


class Add(nn.Module):
    def forward(self, *xs):
        xs = as_maps(xs)
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Multiply(nn.Module):
    """Element-wise product, left to right; a [N, C] gate scales each channel of a [N, C, H, W] map."""

    def forward(self, *xs):
        xs = as_maps(xs)
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class Concat(nn.Module):
    """Join along channels ([N, C, H, W]) or features ([N, F]): dimension 1 either way."""

    def forward(self, *xs):
        return torch.cat(xs, dim=1)


class Softmax(nn.Softmax):
    def __init__(self):
        super().__init__(dim=1)


class Activation(nn.Module):
    """An activation op without a dedicated ``nn`` module: its :class:`FunctionCall` and arguments."""

    def __init__(self, name: str, attrs):
        super().__init__()
        self.name, self.attrs = name, dict(attrs)

    def forward(self, x):
        return ACTIVATION_CALLS[self.name](x, self.attrs)

    def extra_repr(self):
        return ", ".join([self.name] + [f"{k}={v!r}" for k, v in self.attrs.items()])
