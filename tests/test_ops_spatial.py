"""The spatial ops of the contract's second edition: four-sided padding, ``maxpool2d`` ``ceil``,
``conv2d_transpose``, ``zeropad2d``, ``crop2d`` and ``upsample2d``.

Table-driven shapes, params and MACs; located errors that show the arithmetic; the output-size rules
against the real PyTorch and Keras layers on random sizes (Hypothesis); each op's numbers against
``torch.nn.functional`` or a numpy formula in the torch and Keras eager models and in the core's ONNX
file; the generated ``model.py`` and ``model_keras.py``; the Keras weight layout of the transposed
convolution and ``cnnspec convert`` both ways.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from check_cases import assert_first_error
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import cnnspec
from cnnspec.graph.ops import OPS, ShapeProblem
from cnnspec.graph.shapes import output_size, transpose_output_size
from cnnspec.weights.neutral import expected_weights

RTOL = 1e-5


def graph_of(input_shape, layers, name="spatial"):
    return cnnspec.loads(json.dumps({"cnnspec": 1, "name": name, "input": list(input_shape), "layers": layers})).graph


def rule(op: str, args: dict, shape) -> tuple | None:
    """cnnspec's output shape for one layer, or None where its shape rule refuses it."""
    try:
        return OPS[op].infer(OPS[op].normalize(args), [tuple(shape)]).shape
    except ShapeProblem:
        return None


# ---------------------------------------------------------------- the shared output-size functions

CEIL_TABLE = [
    # size, kernel, stride, padding -> out, reach of the bottom/right padding, arithmetic
    (112, 3, 2, 0, 56, 1, "ceil((112 - 3 + 2*0)/2) + 1 = 56"),     # GoogLeNet's stem: floor gives 55
    (6, 2, 2, 0, 3, 0, "(6 - 2 + 2*0)/2 + 1 = 3"),                 # exact: as floor mode
    (7, 2, 2, 0, 4, 1, "ceil((7 - 2 + 2*0)/2) + 1 = 4"),
    (5, 2, 2, 1, 3, 0, "ceil((5 - 2 + 2*1)/2) + 1 - 1 = 3"),       # the 4th window would start past the input
    (2, 1, 2, 0, 1, 0, "ceil((2 - 1 + 2*0)/2) + 1 - 1 = 1"),
    (8, 3, 2, (1, 0), 4, 0, "(8 - 3 + 1 + 0)/2 + 1 = 4"),
    (2, 3, 2, 0, 1, 1, "ceil((2 - 3 + 2*0)/2) + 1 = 1"),           # PyTorch agrees: one window, partly outside
    (1, 3, 2, 0, 0, 0, "(1 - 3 + 2*0)/2 + 1 = 0"),
]


@pytest.mark.parametrize("size, k, s, p, out, reach, text", CEIL_TABLE)
def test_ceil_output_size(size, k, s, p, out, reach, text):
    side = output_size(size, k, s, p, ceil=True)
    assert (side.size, side.arithmetic) == (out, text)
    if out >= 1:
        assert side.window_pad_after == reach
        # a floor-mode pool over padding that reaches that far has the same windows
        assert output_size(size, k, s, (side.pad_before, side.window_pad_after)).size == out


TRANSPOSE_TABLE = [
    # size, kernel, stride, padding, output_padding -> out, crop before, crop after, arithmetic
    (4, 2, 2, 0, 0, 8, 0, 0, "(4 - 1)*2 - 2*0 + 2 = 8"),
    (5, 3, 2, 1, 1, 10, 1, 1, "(5 - 1)*2 - 2*1 + 3 + 1 = 10"),
    (5, 3, 2, "same", 0, 10, 0, 1, "5*2 = 10"),                    # F - S = 1: the odd pixel at the bottom
    (5, 4, 2, "same", 0, 10, 1, 1, "5*2 = 10"),
    (5, 7, 2, "same", 0, 10, 2, 3, "5*2 = 10"),
    (4, 1, 2, "valid", 0, 7, 0, 0, "(4 - 1)*2 - 2*0 + 1 = 7"),     # kernel below the stride: (W1-1)*S + F
    (4, 3, 1, (1, 0), 0, 5, 1, 0, "(4 - 1)*1 - (1 + 0) + 3 = 5"),
    (2, 1, 1, 3, 0, -4, 3, 3, "(2 - 1)*1 - 2*3 + 1 = -4"),
]


@pytest.mark.parametrize("size, k, s, p, extra, out, before, after, text", TRANSPOSE_TABLE)
def test_transpose_output_size(size, k, s, p, extra, out, before, after, text):
    side = transpose_output_size(size, k, s, p, extra)
    assert (side.size, side.pad_before, side.pad_after, side.arithmetic) == (out, before, after, text)


def test_four_sided_arithmetic_names_each_side():
    assert output_size(8, 3, 1, (1, 2)).arithmetic == "(8 - 3 + 1 + 2)/1 + 1 = 9"
    assert output_size(8, 3, 2, (2, 2), 2).arithmetic == "floor((8 + 2*2 - 2*(3-1) - 1)/2) + 1 = 4"


# ---------------------------------------------------------------- shapes, params, MACs

SHAPES = [
    # id, input, layer, output, params, MACs
    ("conv-four-sided", [3, 8, 8], {"conv2d": {"filters": 4, "kernel": 3, "padding": [1, 0, 2, 1]}},
     [4, 7, 9], 112, 6804),
    ("conv-pair-stays-symmetric", [3, 8, 8], {"conv2d": {"filters": 4, "kernel": 3, "padding": [1, 0]}},
     [4, 8, 6], 112, 4 * 8 * 6 * 27),
    ("max-four-sided", [2, 7, 5], {"maxpool2d": {"kernel": 3, "stride": 2, "padding": [1, 0, 0, 1]}}, [2, 3, 2], 0, 0),
    ("avg-four-sided", [1, 5, 5], {"avgpool2d": {"kernel": 2, "padding": [1, 0, 1, 0]}}, [1, 3, 3], 0, 0),
    ("ceil-googlenet-stem", [64, 112, 112], {"maxpool2d": {"kernel": 3, "stride": 2, "ceil": True}},
     [64, 56, 56], 0, 0),
    ("ceil-exact-is-floor", [1, 6, 6], {"maxpool2d": {"kernel": 2, "ceil": True}}, [1, 3, 3], 0, 0),
    ("ceil-odd", [1, 7, 5], {"maxpool2d": {"kernel": 2, "ceil": True}}, [1, 4, 3], 0, 0),
    ("ceil-drops-last-window", [1, 5, 5], {"maxpool2d": {"kernel": 2, "padding": 1, "ceil": True}}, [1, 3, 3], 0, 0),
    ("ceil-valid", [1, 7, 7], {"maxpool2d": {"kernel": 3, "stride": 2, "padding": "valid", "ceil": True}},
     [1, 3, 3], 0, 0),
    ("transpose-unet-up", [8, 4, 4], {"conv2d_transpose": {"filters": 16, "kernel": 2, "stride": 2}},
     [16, 8, 8], 8 * 16 * 4 + 16, 8 * 4 * 4 * 16 * 2 * 2),
    ("transpose-padding-output-padding", [3, 5, 5],
     {"conv2d_transpose": {"filters": 2, "kernel": 3, "stride": 2, "padding": 1, "output_padding": 1}},
     [2, 10, 10], 3 * 2 * 9 + 2, 3 * 25 * 2 * 9),
    ("transpose-same", [3, 5, 4],
     {"conv2d_transpose": {"filters": 2, "kernel": 3, "stride": [2, 3], "padding": "same", "bias": False}},
     [2, 10, 12], 54, 3 * 20 * 2 * 9),
    ("transpose-four-sided", [1, 4, 4], {"conv2d_transpose": {"filters": 1, "kernel": 3, "padding": [1, 0, 0, 2]}},
     [1, 5, 4], 10, 16 * 9),
    ("transpose-kernel-below-stride", [1, 4, 4], {"conv2d_transpose": {"filters": 1, "kernel": 1, "stride": 2}},
     [1, 7, 7], 2, 16),
    ("transpose-valid-pair", [2, 3, 3],
     {"conv2d_transpose": {"filters": 1, "kernel": [1, 3], "stride": [1, 2], "padding": "valid",
                           "output_padding": [0, 1]}}, [1, 3, 8], 7, 2 * 9 * 3),
    ("zeropad-size", [2, 3, 3], {"zeropad2d": 1}, [2, 5, 5], 0, 0),
    ("zeropad-pair", [2, 3, 3], {"zeropad2d": [1, 2]}, [2, 5, 7], 0, 0),
    ("zeropad-four", [2, 3, 3], {"zeropad2d": {"padding": [1, 2, 3, 4], "value": -1.5}}, [2, 6, 10], 0, 0),
    ("crop-size", [2, 8, 8], {"crop2d": 1}, [2, 6, 6], 0, 0),
    ("crop-pair", [2, 8, 8], {"crop2d": [1, 2]}, [2, 6, 4], 0, 0),
    ("crop-four-keeps-one", [2, 8, 8], {"crop2d": [1, 2, 3, 4]}, [2, 5, 1], 0, 0),
    ("upsample-size", [2, 3, 4], {"upsample2d": 2}, [2, 6, 8], 0, 0),
    ("upsample-pair-bilinear", [2, 3, 4], {"upsample2d": {"scale": [2, 3], "mode": "bilinear"}}, [2, 6, 12], 0, 0),
    ("upsample-one", [2, 3, 4], {"upsample2d": 1}, [2, 3, 4], 0, 0),
]


@pytest.mark.parametrize("case, input_shape, layer, out, params, macs", SHAPES, ids=[c[0] for c in SHAPES])
def test_shape_params_and_macs(case, input_shape, layer, out, params, macs):
    node = graph_of(input_shape, [layer]).nodes[0]
    assert (list(node.shape), node.params, node.macs) == (out, params, macs)


def test_transposed_weights_are_pytorchs_layout():
    graph = graph_of([3, 5, 5], [{"conv2d_transpose": {"filters": 2, "kernel": [3, 1]}, "name": "up"}])
    assert expected_weights(graph) == {"up.weight": (3, 2, 3, 1), "up.bias": (2,)}


# ---------------------------------------------------------------- located errors

HEAD = "cnnspec: 1\nname: t\ninput: [1, 8, 8]\nlayers:\n"
ERRORS = [
    ("crop-more-than-the-map", "  - crop2d: [5, 4, 0, 0]\n",
     "5:5: crop2d_1: cropping must leave at least one pixel of its 8x8 input: cropping 5 + 4 rows from 8 leaves -1"),
    ("crop-all-columns", "  - crop2d: [0, 4]\n",
     "5:5: crop2d_1: cropping must leave at least one pixel of its 8x8 input: cropping 4 + 4 columns from 8 leaves 0"),
    ("crop-negative", "  - crop2d: [1, -1]\n",
     "5:13: crop2d_1: 'cropping' must be zero or more, a pair [height, width] or four numbers [top, bottom, left, "
     "right], got [1, -1]"),
    ("crop-needs-cropping", "  - crop2d\n", "5:5: crop2d_1 needs 'cropping'"),
    ("zeropad-same", "  - zeropad2d: same\n",
     "5:16: zeropad2d_1: 'padding' must be zero or more, a pair [height, width] or four numbers [top, bottom, left, "
     "right], got 'same'"),
    ("zeropad-value", "  - zeropad2d: {padding: 1, value: low}\n", "5:36: zeropad2d_1: 'value' must be a number, got 'low'"),
    ("zeropad-vector", "  - flatten\n  - zeropad2d: 1\n",
     "6:5: zeropad2d_1: needs a [C, H, W] input but gets [64]; a 1-D vector has no height and width "
     "(was there a 'flatten' too early?)"),
    ("upsample-vector", "  - flatten\n  - upsample2d: 2\n",
     "6:5: upsample2d_1: needs a [C, H, W] input but gets [64]; a 1-D vector has no height and width "
     "(was there a 'flatten' too early?)"),
    ("upsample-zero", "  - upsample2d: 0\n",
     "5:17: upsample2d_1: 'scale' must be a positive integer or a pair [height, width], got 0"),
    ("upsample-mode", "  - upsample2d: {scale: 2, mode: bicubic}\n",
     "5:34: upsample2d_1: 'mode' must be one of 'nearest', 'bilinear', got 'bicubic'"),
    ("transpose-same-kernel-below-stride", "  - conv2d_transpose: {filters: 2, kernel: 1, stride: 2, padding: same}\n",
     "5:5: conv2d_transpose_1: padding 'same' needs a kernel at least as large as the stride, got kernel 1 with "
     "stride 2 (height): it would crop F - S = 1 - 2 = -1"),
    ("transpose-output-padding-stride", "  - conv2d_transpose: {filters: 2, kernel: 3, stride: [1, 2], "
     "output_padding: [0, 2]}\n",
     "5:5: conv2d_transpose_1: output_padding must be less than the stride on each side, got 2 with stride 2 (width)"),
    ("transpose-output-padding-same", "  - conv2d_transpose: {filters: 2, kernel: 3, stride: 2, padding: same, "
     "output_padding: 1}\n",
     "5:5: conv2d_transpose_1: output_padding does not go with padding 'same', which makes W1*S; "
     "got output_padding [1, 1]"),
    ("transpose-crops-everything", "  - conv2d_transpose: {filters: 2, kernel: 1, padding: 4}\n",
     "5:5: conv2d_transpose_1: padding crops all the transposed convolution makes of its 8x8 input: "
     "(8 - 1)*1 - 2*4 + 1 = 0"),
    ("transpose-four-sided-crops-everything", "  - conv2d_transpose: {filters: 2, kernel: 2, padding: [0, 0, 5, 4]}\n",
     "5:5: conv2d_transpose_1: padding crops all the transposed convolution makes of its 8x8 input: "
     "(8 - 1)*1 - (5 + 4) + 2 = 0"),
    ("transpose-needs-kernel", "  - conv2d_transpose: 8\n", "5:23: conv2d_transpose_1 needs 'kernel'"),
    ("transpose-vector", "  - flatten\n  - conv2d_transpose: {filters: 2, kernel: 2}\n",
     "6:5: conv2d_transpose_1: needs a [C, H, W] input but gets [64]; a 1-D vector has no height and width "
     "(was there a 'flatten' too early?)"),
    ("ceil-with-same", "  - maxpool2d: {kernel: 3, padding: same, ceil: true}\n",
     "5:5: maxpool2d_1: 'ceil: true' needs explicit or 'valid' padding, got 'same' (which already rounds up: "
     "W2 = ceil(W1/S))"),
    ("ceil-on-avgpool", "  - avgpool2d: {kernel: 2, ceil: true}\n",
     "5:28: avgpool2d_1 has no argument 'ceil' (it takes: kernel, stride, padding)"),
    ("ceil-window-too-big", "  - maxpool2d: {kernel: 8, stride: 2}\n  - maxpool2d: {kernel: 3, stride: 2, ceil: true}\n",
     "6:5: maxpool2d_2: pool window 3 does not fit its 1x1 input: (1 - 3 + 2*0)/2 + 1 = 0"),
    ("pool-padding-one-side", "  - maxpool2d: {kernel: 2, padding: [0, 2, 0, 0]}\n",
     "5:5: maxpool2d_1: padding 2 is more than half the kernel 2 (bottom); a window would see only padding"),
    ("conv-four-sided-does-not-fit", "  - conv2d: {filters: 1, kernel: [1, 10], padding: [0, 0, 1, 0]}\n",
     "5:5: conv2d_1: kernel 1x10 does not fit its 8x8 input: (8 - 10 + 1 + 0)/1 + 1 = 0"),
    ("padding-five-numbers", "  - conv2d: {filters: 1, kernel: 3, padding: [1, 1, 1, 1, 1]}\n",
     "5:46: conv2d_1: 'padding' must be zero or more, a pair [height, width], four numbers [top, bottom, left, "
     "right], 'same' or 'valid', got [1, 1, 1, 1, 1]"),
]


@pytest.mark.parametrize("case, body, expected", ERRORS, ids=[c[0] for c in ERRORS])
def test_each_mistake_is_located_and_explained(tmp_path, case, body, expected):
    assert_first_error(tmp_path, case, HEAD + body, expected)


# ---------------------------------------------------------------- the rules against the real layers

SIZES = st.integers(1, 24)
FRAMEWORK = settings(max_examples=40, deadline=None)


@pytest.mark.torch
class TestAgainstTorch:
    """cnnspec's shape rule gives the PyTorch layer's output shape, and refuses exactly where PyTorch
    fails or makes an empty map."""

    @staticmethod
    def _agree(layer, x, expected):
        torch = pytest.importorskip("torch")
        try:
            with torch.no_grad():
                got = tuple(layer(x).shape[1:])
        except RuntimeError:
            got = None
        assert (None if got is None or min(got) < 1 else got) == expected

    @FRAMEWORK
    @given(SIZES, SIZES, st.integers(1, 6), st.integers(1, 6), st.integers(1, 4), st.integers(1, 4),
           st.integers(0, 3), st.integers(0, 3), st.data())
    def test_conv_transpose(self, h, w, kh, kw, sh, sw, ph, pw, data):
        torch = pytest.importorskip("torch")
        extra = (data.draw(st.integers(0, sh - 1)), data.draw(st.integers(0, sw - 1)))
        args = {"filters": 2, "kernel": [kh, kw], "stride": [sh, sw], "padding": [ph, pw], "output_padding": list(extra)}
        layer = torch.nn.ConvTranspose2d(1, 2, (kh, kw), (sh, sw), (ph, pw), extra)
        self._agree(layer, torch.zeros(1, 1, h, w), rule("conv2d_transpose", args, (1, h, w)))

    @FRAMEWORK
    @given(SIZES, SIZES, st.integers(1, 6), st.integers(1, 4), st.data())
    def test_ceil_max_pool(self, h, w, k, s, data):
        torch = pytest.importorskip("torch")
        p = data.draw(st.integers(0, k // 2))
        layer = torch.nn.MaxPool2d(k, s, p, ceil_mode=True)
        self._agree(layer, torch.zeros(1, 1, h, w),
                    rule("maxpool2d", {"kernel": k, "stride": s, "padding": p, "ceil": True}, (1, h, w)))

    @FRAMEWORK
    @given(SIZES, SIZES, st.lists(st.integers(0, 5), min_size=4, max_size=4))
    def test_zero_padding(self, h, w, sides):
        torch = pytest.importorskip("torch")
        top, bottom, left, right = sides
        layer = torch.nn.ZeroPad2d((left, right, top, bottom))
        self._agree(layer, torch.zeros(1, 1, h, w), rule("zeropad2d", {"padding": sides}, (1, h, w)))

    @FRAMEWORK
    @given(SIZES, SIZES, st.lists(st.integers(0, 12), min_size=4, max_size=4))
    def test_cropping(self, h, w, sides):
        """PyTorch crops with negative padding; it refuses an empty result, as cnnspec does."""
        torch = pytest.importorskip("torch")
        top, bottom, left, right = sides
        layer = torch.nn.ZeroPad2d((-left, -right, -top, -bottom))
        self._agree(layer, torch.zeros(1, 1, h, w), rule("crop2d", {"cropping": sides}, (1, h, w)))

    @FRAMEWORK
    @given(SIZES, SIZES, st.integers(1, 4), st.integers(1, 4), st.sampled_from(["nearest", "bilinear"]))
    def test_upsampling(self, h, w, sh, sw, mode):
        torch = pytest.importorskip("torch")
        layer = torch.nn.Upsample(scale_factor=(float(sh), float(sw)), mode=mode)
        self._agree(layer, torch.zeros(1, 1, h, w),
                    rule("upsample2d", {"scale": [sh, sw], "mode": mode}, (1, h, w)))


@pytest.mark.keras
@pytest.mark.xdist_group("keras")
class TestAgainstKeras:
    """The same against Keras' layers (Keras has no ceil-mode pool: its lowering is tested by numbers)."""

    @staticmethod
    def _output(layer, h, w):
        return tuple(np.asarray(layer(np.zeros((1, h, w, 1), "float32"))).shape[1:])

    @FRAMEWORK
    @given(SIZES, SIZES, st.integers(1, 5), st.integers(1, 5), st.integers(1, 3), st.integers(1, 3), st.data())
    def test_conv_transpose(self, h, w, kh, kw, sh, sw, data):
        keras = pytest.importorskip("keras")
        if data.draw(st.booleans()):  # 'same': W1*S, for a kernel at least the stride
            assume(kh >= sh and kw >= sw)
            layer = keras.layers.Conv2DTranspose(2, (kh, kw), strides=(sh, sw), padding="same")
            args = {"filters": 2, "kernel": [kh, kw], "stride": [sh, sw], "padding": "same"}
        else:
            extra = (data.draw(st.integers(0, sh - 1)), data.draw(st.integers(0, sw - 1)))
            layer = keras.layers.Conv2DTranspose(2, (kh, kw), strides=(sh, sw), padding="valid", output_padding=extra)
            args = {"filters": 2, "kernel": [kh, kw], "stride": [sh, sw], "output_padding": list(extra)}
        c, h2, w2 = rule("conv2d_transpose", args, (1, h, w))
        assert self._output(layer, h, w) == (h2, w2, c)

    @FRAMEWORK
    @given(SIZES, SIZES, st.lists(st.integers(0, 5), min_size=4, max_size=4))
    def test_zero_padding(self, h, w, sides):
        keras = pytest.importorskip("keras")
        top, bottom, left, right = sides
        layer = keras.layers.ZeroPadding2D(((top, bottom), (left, right)))
        c, h2, w2 = rule("zeropad2d", {"padding": sides}, (1, h, w))
        assert self._output(layer, h, w) == (h2, w2, c)

    @FRAMEWORK
    @given(SIZES, SIZES, st.lists(st.integers(0, 12), min_size=4, max_size=4))
    def test_cropping(self, h, w, sides):
        keras = pytest.importorskip("keras")
        top, bottom, left, right = sides
        expected = rule("crop2d", {"cropping": sides}, (1, h, w))
        layer = keras.layers.Cropping2D(((top, bottom), (left, right)))
        if expected is None:
            with pytest.raises(ValueError):
                self._output(layer, h, w)
        else:
            c, h2, w2 = expected
            assert self._output(layer, h, w) == (h2, w2, c)

    @FRAMEWORK
    @given(SIZES, SIZES, st.integers(1, 4), st.integers(1, 4), st.sampled_from(["nearest", "bilinear"]))
    def test_upsampling(self, h, w, sh, sw, mode):
        keras = pytest.importorskip("keras")
        layer = keras.layers.UpSampling2D((sh, sw), interpolation=mode)
        c, h2, w2 = rule("upsample2d", {"scale": [sh, sw], "mode": mode}, (1, h, w))
        assert self._output(layer, h, w) == (h2, w2, c)


# ---------------------------------------------------------------- numbers: three targets, one reference

def _torch_f():
    torch = pytest.importorskip("torch")
    return torch, torch.nn.functional


def _t(x):
    torch, _ = _torch_f()
    return torch.from_numpy(np.ascontiguousarray(x))


def _max_windows(x, kernel, stride, pads, out_hw):
    """Max pooling by its definition: window (i, j) starts at i*S - top, j*S - left and takes the
    maximum of the input pixels it covers; padding is never a candidate."""
    (kh, kw), (sh, sw), (top, _, left, _), (oh, ow) = kernel, stride, pads, out_hw
    n, c, h, w = x.shape
    y = np.empty((n, c, oh, ow), np.float32)
    for i in range(oh):
        r0 = i * sh - top
        rows = slice(max(r0, 0), min(r0 + kh, h))
        for j in range(ow):
            c0 = j * sw - left
            y[:, :, i, j] = x[:, :, rows, max(c0, 0):min(c0 + kw, w)].max(axis=(2, 3))
    return y


def _bilinear_matrix(n_in, scale):
    """Half-pixel centres, clamped at the borders: output o samples source (o + 0.5)/scale - 0.5."""
    a = np.zeros((n_in * scale, n_in))
    for o in range(n_in * scale):
        src = max((o + 0.5) / scale - 0.5, 0.0)
        i0 = min(int(math.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        a[o, i0] += 1 - (src - i0)
        a[o, i1] += src - i0
    return a


def _conv_transpose_ref(x, w, b, stride, crops, extra=(0, 0)):
    """PyTorch's full transposed convolution (no padding), then the crop (top, bottom, left, right)."""
    _, F = _torch_f()
    full = F.conv_transpose2d(_t(x), _t(w), None if b is None else _t(b), stride, 0, extra).numpy()
    top, bottom, left, right = crops
    return full[:, :, top:full.shape[2] - bottom, left:full.shape[3] - right]


def _ref_conv_four_sided(x, wts):
    _, F = _torch_f()
    return F.conv2d(F.pad(_t(x), (2, 1, 1, 0)), _t(wts["x.weight"]), _t(wts["x.bias"]), stride=(2, 1)).numpy()


def _ref_avg_four_sided(x, wts):
    _, F = _torch_f()
    return F.avg_pool2d(F.pad(_t(x), (0, 1, 1, 0)), 3, 2).numpy()  # explicit zeros count in the average


def _ref_max_four_sided(x, wts):
    _, F = _torch_f()
    return F.max_pool2d(F.pad(_t(x), (1, 0, 0, 1), value=-math.inf), 2, 2).numpy()


def _ref_ceil_symmetric(x, wts):
    _, F = _torch_f()
    return F.max_pool2d(_t(x), 3, 2, 1, ceil_mode=True).numpy()


NUMBERS = {
    # id: (input shape, layers (the tested one named x), reference(x, weights) -> y)
    "conv2d-four-sided": ([2, 6, 7], [{"conv2d": {"filters": 3, "kernel": 3, "stride": [2, 1],
                                                  "padding": [1, 0, 2, 1]}, "name": "x"}], _ref_conv_four_sided),
    "maxpool-four-sided": ([2, 5, 6], [{"maxpool2d": {"kernel": 2, "padding": [0, 1, 1, 0]}, "name": "x"}],
                           _ref_max_four_sided),
    "avgpool-four-sided-counts-zeros": ([2, 6, 5], [{"avgpool2d": {"kernel": 3, "stride": 2, "padding": [1, 0, 0, 1]},
                                                     "name": "x"}], _ref_avg_four_sided),
    "maxpool-ceil": ([2, 8, 7], [{"maxpool2d": {"kernel": 3, "stride": 2, "padding": 1, "ceil": True}, "name": "x"}],
                     _ref_ceil_symmetric),
    "maxpool-ceil-four-sided": ([2, 7, 6], [{"maxpool2d": {"kernel": 3, "stride": 2, "padding": [1, 0, 0, 1],
                                                           "ceil": True}, "name": "x"}],
                                lambda x, wts: _max_windows(x, (3, 3), (2, 2), (1, 0, 0, 1), (4, 3))),
    "maxpool-ceil-drops-last-window": ([1, 5, 5], [{"maxpool2d": {"kernel": 2, "padding": 1, "ceil": True},
                                                    "name": "x"}],
                                       lambda x, wts: _max_windows(x, (2, 2), (2, 2), (1, 1, 1, 1), (3, 3))),
    "transpose-same-odd-crop": ([2, 4, 5], [{"conv2d_transpose": {"filters": 3, "kernel": 3, "stride": 2,
                                                                  "padding": "same", "activation": "relu"}, "name": "x"}],
                                lambda x, w: np.maximum(_conv_transpose_ref(x, w["x.weight"], w["x.bias"], 2,
                                                                            (0, 1, 0, 1)), 0)),
    "transpose-padding-output-padding": ([2, 4, 3], [{"conv2d_transpose": {"filters": 2, "kernel": [3, 2],
                                                                           "stride": [2, 3], "padding": 1,
                                                                           "output_padding": [1, 2]}, "name": "x"}],
                                         lambda x, w: _torch_f()[1].conv_transpose2d(
                                             _t(x), _t(w["x.weight"]), _t(w["x.bias"]), (2, 3), 1, (1, 2)).numpy()),
    "transpose-four-sided": ([2, 4, 4], [{"conv2d_transpose": {"filters": 2, "kernel": 3, "stride": 2,
                                                               "padding": [2, 0, 1, 3], "output_padding": 1,
                                                               "bias": False}, "name": "x"}],
                             lambda x, w: _conv_transpose_ref(x, w["x.weight"], None, 2, (2, 0, 1, 3), (1, 1))),
    "transpose-kernel-below-stride": ([1, 3, 4], [{"conv2d_transpose": {"filters": 2, "kernel": 1, "stride": 2},
                                                   "name": "x"}],
                                      lambda x, w: _conv_transpose_ref(x, w["x.weight"], w["x.bias"], 2, (0, 0, 0, 0))),
    "zeropad2d-value": ([2, 3, 4], [{"zeropad2d": {"padding": [1, 0, 2, 3], "value": -2.5}, "name": "x"}],
                        lambda x, w: np.pad(x, ((0, 0), (0, 0), (1, 0), (2, 3)), constant_values=-2.5)),
    "zeropad2d-zeros": ([2, 3, 4], [{"zeropad2d": [1, 2], "name": "x"}],
                        lambda x, w: np.pad(x, ((0, 0), (0, 0), (1, 1), (2, 2)))),
    "crop2d": ([2, 6, 7], [{"crop2d": [1, 2, 0, 3], "name": "x"}], lambda x, w: x[:, :, 1:4, 0:4]),
    "upsample2d-nearest": ([2, 3, 4], [{"upsample2d": [2, 3], "name": "x"}],
                           lambda x, w: np.repeat(np.repeat(x, 2, axis=2), 3, axis=3)),
    "upsample2d-bilinear": ([2, 3, 5], [{"upsample2d": {"scale": [3, 2], "mode": "bilinear"}, "name": "x"}],
                            lambda x, w: np.einsum("oh,nchw,pw->ncop", _bilinear_matrix(3, 3), x.astype(np.float64),
                                                   _bilinear_matrix(5, 2)).astype(np.float32)),
}


def _random_weights(graph, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(0, 0.5, s).astype(np.float32) for k, s in expected_weights(graph).items()}


def _assert_close(got, expected, what):
    assert got.shape == expected.shape, (what, got.shape, expected.shape)
    scale = max(1.0, float(np.abs(expected).max()))
    err = float(np.abs(got - expected).max())
    assert err <= RTOL * scale, f"{what}: max abs error {err:.3g}"


@pytest.mark.torch
@pytest.mark.keras
@pytest.mark.xdist_group("keras")
@pytest.mark.parametrize("case", sorted(NUMBERS))
def test_numbers_in_every_target_match_the_reference(case):
    """torch eager, Keras eager and the core's ONNX file (ONNX Runtime) against torch.nn.functional
    or numpy, at batch 3, with negative inputs so that a padding that wins a max shows."""
    pytest.importorskip("torch")
    pytest.importorskip("keras")
    ort = pytest.importorskip("onnxruntime")
    from cnnspec_keras import KerasBackend
    from cnnspec_torch import TorchBackend

    from cnnspec.onnxfile.writer import model_bytes

    shape, layers, reference = NUMBERS[case]
    graph = graph_of(shape, layers)
    weights = _random_weights(graph)
    x = np.random.default_rng(1).standard_normal((3, *shape)).astype(np.float32) - 0.5
    expected = reference(x, weights)
    assert expected.shape == (3, *graph.output_shape)
    torch_backend, keras_backend = TorchBackend(), KerasBackend()
    session = ort.InferenceSession(model_bytes(graph, weights), providers=["CPUExecutionProvider"])
    results = {
        "torch": torch_backend.predict(torch_backend.compile(graph, weights=weights), x),
        "keras": keras_backend.predict(keras_backend.compile(graph, weights=weights), x),
        "onnx": session.run(None, {"input": x})[0],
    }
    for target, got in results.items():
        _assert_close(got, expected, f"{case}: {target}")


# ---------------------------------------------------------------- generated files, layouts, convert

GENERATED = [
    {"conv2d": {"filters": 4, "kernel": 3, "padding": [1, 0, 1, 0], "activation": "relu"}, "name": "enc.conv"},
    {"maxpool2d": {"kernel": 3, "stride": 2, "ceil": True}, "name": "enc.pool"},
    {"maxpool2d": {"kernel": 2, "padding": [1, 0, 0, 1], "ceil": True}, "name": "pool4"},
    {"conv2d_transpose": {"filters": 3, "kernel": 3, "stride": 2, "padding": "same", "activation": "leaky_relu"},
     "name": "up.conv", "in": "enc.pool"},
    {"conv2d_transpose": {"filters": 2, "kernel": 2, "stride": 2, "padding": 1, "output_padding": 1}, "name": "up2"},
    {"zeropad2d": {"padding": [1, 0, 0, 1], "value": -1.0}, "name": "pad", "in": "up.conv"},
    {"zeropad2d": 1, "name": "pad0"},
    {"crop2d": [1, 2, 0, 1], "name": "crop"},
    {"upsample2d": {"scale": 2, "mode": "bilinear"}, "name": "up.bilinear"},
    {"upsample2d": [1, 2], "name": "up.nearest", "in": "enc.conv"},
    {"avgpool2d": {"kernel": 2, "padding": [0, 1, 1, 0]}, "name": "avg"},
    # every branch reaches the output (Keras drops layers that do not)
    *[{"global_avgpool2d": None, "name": f"g.{i}", "in": branch}
      for i, branch in enumerate(["pool4", "up2", "up.bilinear", "avg"])],
    {"concat": None, "in": ["g.0", "g.1", "g.2", "g.3"]},
]


@pytest.fixture(scope="module")
def generated_graph():
    return graph_of([2, 9, 8], GENERATED, name="spatial-generated")


def test_generated_model_py_gives_the_eager_numbers(generated_graph, tmp_path):
    torch = pytest.importorskip("torch")
    import importlib.util

    from cnnspec_torch import TorchBackend

    backend = TorchBackend()
    backend.build(generated_graph, tmp_path, seed=4)
    text = (tmp_path / "model.py").read_text()
    assert "ceil_mode=True" in text and "nn.ConvTranspose2d(" in text and "nn.ConstantPad2d(" in text
    assert "nn.Upsample(scale_factor=2, mode='bilinear', align_corners=False)" in text
    spec = importlib.util.spec_from_file_location("spatial_generated_model", tmp_path / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x = np.random.default_rng(2).standard_normal((3, *generated_graph.input_shape)).astype(np.float32)
    with torch.no_grad():
        got = module.load_model()(torch.from_numpy(x)).numpy()
    _assert_close(got, backend.predict(backend.compile(generated_graph, seed=4), x), "model.py")


@pytest.mark.keras
@pytest.mark.xdist_group("keras")
def test_keras_files_load_safely_and_run_alone(generated_graph, tmp_path):
    keras = pytest.importorskip("keras")
    from cnnspec_keras import KerasBackend

    backend = KerasBackend()
    weights = _random_weights(generated_graph, 3)
    backend.build(generated_graph, tmp_path, weights=weights)
    x = np.random.default_rng(2).standard_normal((2, *generated_graph.input_shape)).astype(np.float32)
    expected = backend.predict(backend.compile(generated_graph, weights=weights), x)
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)  # ConstantPadding2D serialises
    _assert_close(np.asarray(loaded(x, training=False)), expected, "model.keras")
    assert "class ConstantPadding2D" in (tmp_path / "model_keras.py").read_text()
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run([sys.executable, str(tmp_path / "model_keras.py"), str(tmp_path / "x.npy"),
                           str(tmp_path / "y.npy")], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _assert_close(np.load(tmp_path / "y.npy"), expected, "model_keras.py")


@pytest.mark.keras
@pytest.mark.xdist_group("keras")
def test_transposed_kernel_layout_is_what_conv2d_transpose_holds(tmp_path):
    """Keras' Conv2DTranspose kernel is [kh, kw, filters, C_in]: the layout's shapes are the layer's,
    weights set through it give the eager numbers, and convert goes there and back bit for bit."""
    pytest.importorskip("keras")
    import argparse

    from cnnspec_keras import KerasBackend

    from cnnspec.commands import convert as convert_cmd
    from cnnspec.weights import keras_layout as layouts
    from cnnspec.weights.safetensors_io import read_safetensors, write_weights

    layers_ = [{"conv2d_transpose": {"filters": 4, "kernel": [3, 2], "stride": 2, "padding": [1, 0, 0, 1]},
                "name": "up"}, {"conv2d_transpose": {"filters": 2, "kernel": 1, "bias": False}, "name": "mix"}]
    graph = graph_of([3, 4, 5], layers_)
    assert layouts.expected_keras_weights(graph) == {"up.kernel": (3, 2, 4, 3), "up.bias": (4,), "mix.kernel": (1, 1, 2, 4)}
    backend = KerasBackend()
    model = backend.compile(graph, seed=1)
    held = {f"{name}.{p.keras}": tuple(v.shape) for name, parts in layouts.layer_parts(graph)
            for p, v in zip(parts, model.get_layer(name).get_weights())}
    assert held == layouts.expected_keras_weights(graph)
    weights = _random_weights(graph, 5)
    backend.set_weights(model, graph, weights)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    crops = (1, 0, 0, 1)
    up = _conv_transpose_ref(x, weights["up.weight"], weights["up.bias"], 2, crops)
    _assert_close(backend.predict(model, x), _conv_transpose_ref(up, weights["mix.weight"], None, 1, (0,) * 4), "keras")

    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps({"cnnspec": 1, "name": "spatial", "input": [3, 4, 5], "layers": layers_}))
    source = tmp_path / "w.safetensors"
    write_weights(source, weights, graph)
    parser = argparse.ArgumentParser()
    convert_cmd.add_arguments(parser)
    run = lambda *argv: convert_cmd.run(parser.parse_args([str(spec_path), *map(str, argv), "--quiet"]))  # noqa: E731
    assert run("--weights", source, "--to", "keras", "-o", tmp_path / "k.safetensors") == 0
    tensors, _ = read_safetensors(tmp_path / "k.safetensors")
    np.testing.assert_array_equal(tensors["up.kernel"], weights["up.weight"].transpose(2, 3, 1, 0))
    assert run("--weights", tmp_path / "k.safetensors", "--to", "torch", "-o", tmp_path / "back.safetensors") == 0
    assert (tmp_path / "back.safetensors").read_bytes() == source.read_bytes()
