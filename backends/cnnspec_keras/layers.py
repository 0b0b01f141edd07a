"""The layers Keras lacks for the contract's exact numbers. Each is a registered serialisable
class, so ``model.keras`` loads with ``safe_mode=True`` once this module is imported.

The generated ``model_keras.py`` copies these classes' source (see ``codegen``), so each class
must stand alone: it may use only ``keras``, ``layers``, ``ops`` and ``tf`` from the module scope.
"""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers, ops


@keras.saving.register_keras_serializable(package="cnnspec")
class GroupedConv2D(layers.Conv2D):
    """Conv2D with groups > 1 that trains on CPU and exports through tf2onnx.

    Keras compiles grouped convolutions with XLA on CPU, which tf2onnx cannot export, and
    TensorFlow's CPU kernel for a grouped convolution has no filter gradient ("filter_size does
    not have enough elements"). So: a depthwise convolution (one input channel per group) is
    ``tf.nn.depthwise_conv2d``; any other grouping is one convolution per group, concatenated.
    Both are exact. The kernel layout stays Conv2D's: [kh, kw, C_in / groups, filters].
    """

    def convolution_op(self, inputs, kernel):
        padding = self.padding.upper()
        strides = [1, *self.strides, 1]
        # depthwise, where TensorFlow's kernel allows it (equal strides): output channel
        # c * multiplier + m reads input channel c
        if kernel.shape[2] == 1 and self.strides[0] == self.strides[1]:
            kh, kw, _, filters = kernel.shape
            channels = inputs.shape[-1]
            kernel = tf.reshape(kernel, (kh, kw, channels, filters // channels))
            return tf.nn.depthwise_conv2d(inputs, kernel, strides=strides, padding=padding,
                                          dilations=list(self.dilation_rate), data_format="NHWC")
        parts = zip(tf.split(inputs, self.groups, axis=-1), tf.split(kernel, self.groups, axis=-1))
        return tf.concat([tf.nn.convolution(x, k, strides=list(self.strides), padding=padding,
                                            dilations=list(self.dilation_rate), data_format="NHWC")
                          for x, k in parts], axis=-1)


@keras.saving.register_keras_serializable(package="cnnspec")
class NegInfPadding2D(layers.Layer):
    """Pads height and width with -inf, so a max pool after it never picks the padding."""

    def __init__(self, padding=((0, 0), (0, 0)), **kwargs):
        super().__init__(**kwargs)
        self.padding = tuple(tuple(int(p) for p in side) for side in padding)

    def call(self, x):
        (top, bottom), (left, right) = self.padding
        return ops.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]], constant_values=float("-inf"))

    def compute_output_shape(self, shape):
        (top, bottom), (left, right) = self.padding
        grow = lambda size, extra: None if size is None else size + extra  # noqa: E731
        return (shape[0], grow(shape[1], top + bottom), grow(shape[2], left + right), shape[3])

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="cnnspec")
class ConstantPadding2D(layers.Layer):
    """Pads height and width with a constant: ZeroPadding2D with a ``value`` (Keras' pads zeros only)."""

    def __init__(self, padding=((0, 0), (0, 0)), value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.padding = tuple(tuple(int(p) for p in side) for side in padding)
        self.value = float(value)

    def call(self, x):
        (top, bottom), (left, right) = self.padding
        return ops.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]], constant_values=self.value)

    def compute_output_shape(self, shape):
        (top, bottom), (left, right) = self.padding
        grow = lambda size, extra: None if size is None else size + extra  # noqa: E731
        return (shape[0], grow(shape[1], top + bottom), grow(shape[2], left + right), shape[3])

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "value": self.value}


@keras.saving.register_keras_serializable(package="cnnspec")
class Subsample2D(layers.Layer):
    """Keeps every stride-th row and column: a stride after a dilated convolution, which Keras
    refuses to combine in one layer. Exact: a strided convolution is a subsampled stride-1 one."""

    def __init__(self, strides=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.strides = tuple(int(s) for s in strides)

    def call(self, x):
        sh, sw = self.strides
        return x[:, ::sh, ::sw, :]

    def compute_output_shape(self, shape):
        shrink = lambda size, s: None if size is None else -(-size // s)  # noqa: E731
        return (shape[0], shrink(shape[1], self.strides[0]), shrink(shape[2], self.strides[1]), shape[3])

    def get_config(self):
        return {**super().get_config(), "strides": self.strides}


@keras.saving.register_keras_serializable(package="cnnspec")
class GELU(layers.Layer):
    """x * Phi(x) with the contract's ``approximate`` ('none': erf, 'tanh': the tanh formula). Keras'
    ``activation='gelu'`` is the erf formula only, and no Keras layer takes the choice."""

    def __init__(self, approximate="none", **kwargs):
        super().__init__(**kwargs)
        self.approximate = str(approximate)

    def call(self, x):
        return keras.activations.gelu(x, approximate=self.approximate == "tanh")

    def compute_output_shape(self, shape):
        return shape

    def get_config(self):
        return {**super().get_config(), "approximate": self.approximate}


@keras.saving.register_keras_serializable(package="cnnspec")
class Mish(layers.Layer):
    """x * tanh(softplus(x)), with softplus written as relu(x) + log1p(exp(-|x|)): TensorFlow's graph
    optimiser fuses a convolution, an add and Keras' own mish (its Softplus op) into a kernel that the
    CPU build does not implement ('Fusion is not implemented: [BiasAdd,Add,Mish]')."""

    def call(self, x):
        ops = keras.ops
        return x * ops.tanh(ops.relu(x) + ops.log1p(ops.exp(-ops.abs(x))))

    def compute_output_shape(self, shape):
        return shape


@keras.saving.register_keras_serializable(package="cnnspec")
class Scale(layers.Layer):
    """A learned multiplier per channel (the last axis, channels-last) or feature: ConvNeXt's layer
    scale, which Keras has only inside keras.applications."""

    def __init__(self, init=1.0, **kwargs):
        super().__init__(**kwargs)
        self.init = float(init)

    def build(self, shape):
        self.gamma = self.add_weight(name="gamma", shape=(shape[-1],),
                                     initializer=keras.initializers.Constant(self.init))

    def call(self, x):
        return x * self.gamma

    def compute_output_shape(self, shape):
        return shape

    def get_config(self):
        return {**super().get_config(), "init": self.init}


CUSTOM_OBJECTS = {cls.__name__: cls for cls in (GroupedConv2D, NegInfPadding2D, ConstantPadding2D, Subsample2D, GELU, Mish, Scale)}
