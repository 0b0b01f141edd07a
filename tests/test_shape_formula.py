"""The one output-size function: table-driven cases, then Hypothesis against real framework layers."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnspec.graph.shapes import output_size, standardize_pair

TABLE = [
    # size, kernel, stride, padding, dilation -> out, pad_before, pad_after
    (28, 5, 1, 2, 1, 28, 2, 2),
    (28, 5, 1, "same", 1, 28, 2, 2),
    (32, 3, 1, "valid", 1, 30, 0, 0),
    (224, 7, 2, 3, 1, 112, 3, 3),
    (112, 3, 2, 1, 1, 56, 1, 1),
    (6, 3, 2, "same", 1, 3, 0, 1),       # even size, stride 2: the extra pixel goes bottom/right
    (5, 3, 2, "same", 1, 3, 1, 1),
    (7, 2, 2, "same", 1, 4, 0, 1),       # odd pooling
    (4, 1, 2, "same", 1, 2, 0, 0),
    (10, 3, 1, 2, 2, 10, 2, 2),          # dilation
    (5, 3, 2, 0, 1, 2, 0, 0),            # floor
    (2, 3, 1, 0, 1, 0, 0, 0),            # does not fit
    (9, 3, 3, "same", 2, 3, 1, 1),
]


@pytest.mark.parametrize("size, k, s, p, d, out, before, after", TABLE)
def test_output_size_table(size, k, s, p, d, out, before, after):
    r = output_size(size, k, s, p, d)
    assert (r.size, r.pad_before, r.pad_after) == (out, before, after)


def test_arithmetic_is_shown():
    assert output_size(2, 3).arithmetic == "(2 - 3 + 2*0)/1 + 1 = 0"
    assert output_size(6, 3, 2).arithmetic == "floor((6 - 3 + 2*0)/2) + 1 = 2"
    assert output_size(5, 3, 1, 0, 3).arithmetic == "(5 + 2*0 - 3*(3-1) - 1)/1 + 1 = -1"


@pytest.mark.parametrize("value, expected", [(3, (3, 3)), ([3, 5], (3, 5)), ((1, 2), (1, 2))])
def test_standardize_pair(value, expected):
    assert standardize_pair(value) == expected


@pytest.mark.parametrize("value", [True, [1], [1, 2, 3], "3", 2.0, [1.0, 2]])
def test_standardize_pair_rejects(value):
    with pytest.raises(ValueError, match="got|not"):
        standardize_pair(value)


sizes = st.integers(1, 40)
kernels = st.integers(1, 7)
strides = st.integers(1, 4)
dilations = st.integers(1, 3)
FRAMEWORK = settings(max_examples=60, deadline=None)


@pytest.mark.torch
class TestAgainstTorch:
    @FRAMEWORK
    @given(sizes, kernels, strides, st.integers(0, 3), dilations)
    def test_conv2d(self, size, k, s, p, d):
        torch = pytest.importorskip("torch")
        layer = torch.nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)
        expected = output_size(size, k, s, p, d).size
        x = torch.zeros(1, 1, size, size)
        if expected < 1:
            with pytest.raises(RuntimeError):
                layer(x)
        else:
            assert layer(x).shape[-1] == expected

    @FRAMEWORK
    @given(sizes, kernels, strides, st.data())
    def test_pools(self, size, k, s, data):
        torch = pytest.importorskip("torch")
        p = data.draw(st.integers(0, k // 2))
        expected = output_size(size, k, s, p).size
        x = torch.zeros(1, 1, size, size)
        for layer in (torch.nn.MaxPool2d(k, s, p), torch.nn.AvgPool2d(k, s, p)):
            if expected < 1:
                with pytest.raises(RuntimeError):
                    layer(x)
            else:
                assert layer(x).shape[-1] == expected


@pytest.mark.keras
@pytest.mark.xdist_group("keras")
class TestAgainstKeras:
    @FRAMEWORK
    @given(sizes, kernels, strides, dilations, st.sampled_from(["same", "valid"]))
    def test_conv2d(self, size, k, s, d, padding):
        keras = pytest.importorskip("keras")
        import numpy as np

        if s > 1 and d > 1:
            d = 1  # Keras refuses stride > 1 with dilation > 1
        expected = output_size(size, k, s, padding, d).size
        if expected < 1:
            return
        shape = keras.layers.Conv2D(1, k, strides=s, padding=padding, dilation_rate=d).compute_output_shape(
            (1, size, size, 1))
        assert shape[1] == expected
        y = keras.layers.Conv2D(1, k, strides=s, padding=padding, dilation_rate=d)(np.zeros((1, size, size, 1), "float32"))
        assert y.shape[1] == expected

    @FRAMEWORK
    @given(sizes, kernels, strides, st.sampled_from(["same", "valid"]))
    def test_pools(self, size, k, s, padding):
        keras = pytest.importorskip("keras")
        import numpy as np

        expected = output_size(size, k, s, padding).size
        if expected < 1:
            return
        for cls in (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D):
            y = cls(k, strides=s, padding=padding)(np.zeros((1, size, size, 1), "float32"))
            assert y.shape[1] == expected
