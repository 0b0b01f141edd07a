"""Conv + BatchNormalization folded into one Conv before quantising: a batchnorm after a conv is an
affine map per output channel, so its scale goes into the conv's weights and its shift into the
bias. Quantising the two separately would round twice and leave a float BatchNormalization between
int8 ops; folded, the per-channel weight scales absorb the batchnorm exactly.

Our own fold rather than ONNX Runtime's optimizer: it keeps cnnspec's node and value names (so a
quantised model's nodes still read ``layer1.0.conv1``), touches nothing else, and is tested alone.
"""
from __future__ import annotations


def fold_batchnorms(model):
    """A copy of ``model`` with every foldable Conv -> BatchNormalization pair fused; and how many.

    Foldable: the BatchNormalization reads the output of a Conv that nothing else reads (nor is it a
    graph output), and the conv's weights, bias and the batchnorm's four tensors are initializers."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    graph_outputs = {v.name for v in graph.output}

    folded, dropped_nodes, dropped_values = 0, set(), set()
    for bn in graph.node:
        if bn.op_type != "BatchNormalization" or len(bn.output) != 1:
            continue
        conv = producer.get(bn.input[0])
        if conv is None or conv.op_type != "Conv" or readers.get(bn.input[0]) != 1 or bn.input[0] in graph_outputs:
            continue
        params = list(bn.input[1:5]) + list(conv.input[1:])
        if not all(p in inits and readers.get(p) == 1 for p in params):
            continue
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        scale, shift, mean, var = (numpy_helper.to_array(inits[n]).astype(np.float64) for n in bn.input[1:5])
        weight = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
        bias = (numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64) if len(conv.input) > 2
                else np.zeros(weight.shape[0]))
        factor = scale / np.sqrt(var + eps)
        new_weight = (weight * factor.reshape(-1, *([1] * (weight.ndim - 1)))).astype(np.float32)
        new_bias = ((bias - mean) * factor + shift).astype(np.float32)
        inits[conv.input[1]].CopyFrom(numpy_helper.from_array(new_weight, conv.input[1]))
        bias_name = conv.input[2] if len(conv.input) > 2 else f"{conv.name or conv.output[0]}.bias"
        if len(conv.input) > 2:
            inits[bias_name].CopyFrom(numpy_helper.from_array(new_bias, bias_name))
        else:
            graph.initializer.append(numpy_helper.from_array(new_bias, bias_name))
            conv.input.append(bias_name)
        dropped_values.add(conv.output[0])
        dropped_values.update(bn.input[1:5])
        conv.output[0] = bn.output[0]
        dropped_nodes.add(id(bn))
        folded += 1
    if folded:
        keep = [n for n in graph.node if id(n) not in dropped_nodes]
        del graph.node[:]
        graph.node.extend(keep)
        keep_inits = [t for t in graph.initializer if t.name not in dropped_values]
        del graph.initializer[:]
        graph.initializer.extend(keep_inits)
        for listing in (graph.value_info, graph.input):  # older files list initializers as inputs too
            keep_values = [v for v in listing if v.name not in dropped_values]
            del listing[:]
            listing.extend(keep_values)
    return model, folded
