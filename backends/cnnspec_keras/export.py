"""Keras model to ONNX through tf2onnx, fast on big models.

tf2onnx freezes every variable into the TensorFlow graph and then copies that graph (weights and
all) a few dozen times: AlexNet took 70 s and 16 GB, VGG-16 would not fit in memory. So the
convolution and dense kernels and biases go in as extra *inputs* of the converted function
(``Model.stateless_call``); tf2onnx then handles a graph of a few kilobytes. Afterwards those
inputs become initializers holding the real numbers, and the nodes that only rearrange them
(the HWIO to OIHW transpose, bias reshapes) are folded to constants. Batchnorm's small vectors
stay frozen constants, so tf2onnx's own optimiser still folds them and the layout transposes.
"""
from __future__ import annotations

import logging

import numpy as np

from .onnxnames import canonical_names

FOLDABLE = ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Cast", "Flatten")


def _fed_variables(model):
    """Kernels and biases of conv and dense layers: the big tensors, passed in as inputs."""
    fed = []
    for layer in model.layers:
        for var in (getattr(layer, "kernel", None), getattr(layer, "bias", None)):
            if var is not None and hasattr(var, "path"):
                fed.append(var)
    return fed


def convert(model, input_shape, opset: int):
    import tensorflow as tf
    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    fed = _fed_variables(model)
    fed_ids = {id(v): i for i, v in enumerate(fed)}
    trainable, frozen = list(model.trainable_variables), list(model.non_trainable_variables)
    specs = [tf.TensorSpec((None, *input_shape), tf.float32, name="input")]
    specs += [tf.TensorSpec(tuple(v.shape), tf.float32, name=f"fed_{i}") for i, v in enumerate(fed)]

    @tf.autograph.experimental.do_not_convert
    def forward(x, *weights):
        pick = lambda vars_: [weights[fed_ids[id(v)]] if id(v) in fed_ids else v.value for v in vars_]  # noqa: E731
        y, _ = model.stateless_call(pick(trainable), pick(frozen), x, training=False)
        return y

    fn = tf.function(forward, input_signature=specs)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=specs, opset=opset)
    values = {f"fed_{i}": np.asarray(v.numpy(), dtype=np.float32) for i, v in enumerate(fed)}
    _inputs_to_initializers(proto, values)
    _fold_constants(proto)
    canonical_names(proto, [layer.name for layer in model.layers])
    return proto


def _inputs_to_initializers(proto, values: dict) -> None:
    from onnx import numpy_helper

    g = proto.graph
    for name in [v.name for v in g.input if v.name in values]:
        g.initializer.append(numpy_helper.from_array(values[name], name))
    kept = [v for v in g.input if v.name not in values]
    del g.input[:]
    g.input.extend(kept)


def _fold_constants(proto) -> None:
    """Evaluate, in graph order, every rearranging node whose inputs are all constants."""
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    g = proto.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    kept_nodes = []
    for node in g.node:
        inputs = [n for n in node.input if n]
        if node.op_type in FOLDABLE and inputs and all(n in consts for n in inputs):
            single = helper.make_model(
                helper.make_graph([node], "fold", [], [helper.make_tensor_value_info(o, 0, None) for o in node.output],
                                  [numpy_helper.from_array(consts[n], n) for n in inputs]),
                opset_imports=list(proto.opset_import))
            results = ReferenceEvaluator(single).run(None, {})
            for name, value in zip(node.output, results):
                consts[name] = np.asarray(value)
        else:
            kept_nodes.append(node)
    used = {n for node in kept_nodes for n in node.input} | {v.name for v in g.output}
    del g.node[:]
    g.node.extend(kept_nodes)
    del g.initializer[:]
    g.initializer.extend(numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items() if k in used)
