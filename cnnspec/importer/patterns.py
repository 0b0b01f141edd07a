"""The pattern table: ONNX op type -> a matcher that turns the node (and the chain an exporter
makes of one op: ``x * sigmoid(x)``, Erf-GELU, ``Transpose -> LayerNormalization -> Transpose``)
into layers of the language. The inverse of :data:`cnnspec.onnxfile.lowering.LOWERINGS`.

The matchers live by family in :mod:`.match_weighted`, :mod:`.match_spatial` and
:mod:`.match_elementwise`, over :class:`.matcher.Matcher`. A matcher emits the layers it made
(usually one) and marks the nodes it used; a node no matcher
takes is a :class:`~.reader.Refusal` naming it, its op type, its inputs' shapes and the nearest
supported form. Identity, Dropout, a float Cast and transposes that cancel are aliases: their output
is their input.
"""
from __future__ import annotations

import math
from typing import Callable

from .match_elementwise import (_activation, _binary, _const_sub, _refuse_sub, match_clip, match_div, match_gelu,
                                match_hard_sigmoid, match_mul, match_pow, match_softmax, match_softplus)
from .match_spatial import (_global, match_alias, match_avgpool, match_concat, match_maxpool, match_pad,
                            match_reduce, match_reshape, match_reshape_op, match_resize, match_slice, match_unsqueeze)
from .match_repeat import UPSAMPLING, match_repeat_upsample
from .match_weighted import (match_batchnorm, match_conv, match_conv_transpose, match_gemm, match_layernorm,
                             match_matmul, match_separable, match_transpose)
from .matcher import Matcher, _clean, _refuse_part, first_of
from .reader import Source


MATCHERS: dict[str, Callable] = {
    "Conv": first_of(match_separable, match_conv),   # our writer's separable_conv2d: depthwise + 1x1
    "ConvTranspose": match_conv_transpose,
    "Gemm": match_gemm,
    "MatMul": match_matmul,
    "BatchNormalization": match_batchnorm,
    "LayerNormalization": match_layernorm,
    "Transpose": match_transpose,
    "MaxPool": match_maxpool,
    "AveragePool": match_avgpool,
    "GlobalAveragePool": _global("global_avgpool2d"),
    "GlobalMaxPool": _global("global_maxpool2d"),
    "ReduceMean": match_reduce,
    "ReduceMax": match_reduce,
    "Flatten": match_reshape,
    "Reshape": first_of(match_reshape_op, match_reshape),   # reshape; else a flatten, alias or view
    "Squeeze": match_reshape,
    "Unsqueeze": first_of(match_repeat_upsample, match_unsqueeze),   # tf2onnx's UpSampling2D starts here
    "Tile": lambda m, node: _refuse_part(m, node, UPSAMPLING),
    "Identity": match_alias,
    "Dropout": match_alias,
    "Cast": match_alias,
    "Relu": _activation("relu"),
    "Sigmoid": _activation("sigmoid", then_times_x="silu"),
    "Tanh": _activation("tanh"),
    "HardSwish": _activation("hard_swish"),
    "HardSigmoid": match_hard_sigmoid,
    "LeakyRelu": _activation("leaky_relu", lambda n: {} if math.isclose(n.attr("alpha", 0.01), 0.01, rel_tol=1e-5)
                             else {"slope": _clean(n.attr("alpha", 0.01))}),
    "Elu": _activation("elu", lambda n: {} if n.attr("alpha", 1.0) == 1.0 else {"alpha": _clean(n.attr("alpha"))}),
    "Mish": _activation("mish"),
    "Gelu": match_gelu,
    "Clip": match_clip,
    "Softmax": match_softmax,
    "Softplus": match_softplus,
    "Pow": match_pow,
    "Sqrt": lambda m, node: _refuse_part(m, node, "the layernorm decomposition: ReduceMean, Sub, Pow 2, ReduceMean, "
                                                  "Add eps, Sqrt, Div"),
    "Erf": lambda m, node: _refuse_part(m, node, "the erf GELU: x / sqrt(2) -> Erf -> + 1 -> * x -> * 0.5"),
    "Div": match_div,
    "Add": _binary("add"),
    "Mul": match_mul,
    "Sub": lambda m, node: _const_sub(m, node, 1) if m.const(node.inputs[1]) is not None else _refuse_sub(m, node),
    "Concat": match_concat,
    "Resize": match_resize,
    "Pad": match_pad,
    "Slice": match_slice,
}


SUPPORTED = ("Conv (and cnnspec's separable pair), ConvTranspose, Gemm/MatMul, BatchNormalization, "
             "LayerNormalization, the pools, the activations, Add/Mul/Concat, Reshape, Resize, Pad, Slice "
             "(see README 'Bringing a model in')")


DYNAMIC = {"NonZero", "Unique", "NonMaxSuppression", "TopK", "Compress"}
# the nearest supported form for operators the language has no op for


NEAREST = {
    **{op: "static shapes: export the model with a fixed input size and without data-dependent indexing"
       for op in DYNAMIC},
    "LSTM": "convolutional layers only: the language has no recurrent op (Conv, pools, Gemm)",
    "GRU": "convolutional layers only: the language has no recurrent op (Conv, pools, Gemm)",
    "RNN": "convolutional layers only: the language has no recurrent op (Conv, pools, Gemm)",
    "Loop": "a graph without control flow: unroll the loop before exporting",
    "If": "a graph without control flow: export with the branch taken",
    "Scan": "a graph without control flow: unroll it before exporting",
    "Shape": "static shapes: export with a fixed input size so shape computations fold to constants",
    "Attention": "convolutional layers, dense layers and element-wise ops",
    "InstanceNormalization": "BatchNormalization or LayerNormalization",
    "PRelu": "LeakyRelu with one fixed slope (leaky_relu); the language has no learned slope",
    "ReduceSum": "ReduceMean or ReduceMax over [2, 3] (a global pool)",
    "Split": "Slice of height and width (crop2d); the language does not split channels",
    "Gather": "static shapes and no indexing of data: export with a fixed input size",
    "DepthToSpace": "Resize by an integer scale (upsample2d) or ConvTranspose",
    "SpaceToDepth": "a strided Conv",
    "GroupNormalization": "BatchNormalization or LayerNormalization",
    "ReduceMean": "ReduceMean over axes [2, 3] (a global pool) or LayerNormalization",
}


def _unknown(node) -> tuple[str, str]:
    why = ("makes a shape that depends on the data (a dynamic shape no constant folding resolves)"
           if node.op in DYNAMIC else "is an operator the language has no op for")
    return why, NEAREST.get(node.op, SUPPORTED)


def match_layers(source: Source) -> list:
    """The layers, in the graph's order; the values that equal others (Identity, Dropout, a cancelled
    Transpose pair) are left in ``source.aliases``."""
    matcher = Matcher(source)
    layers = matcher.run(MATCHERS, _unknown)
    source.aliases = matcher.alias
    return layers
