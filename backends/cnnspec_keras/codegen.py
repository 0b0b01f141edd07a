"""``model_keras.py``: the plan written out as the Keras code a person would write by hand.

The custom layers' source is copied from ``cnnspec_keras.layers`` so the file needs Keras,
TensorFlow, numpy and safetensors, never cnnspec. No Keras import here: ``inspect`` reads the
layers module's source text only when a plan uses one of its classes.
"""
from __future__ import annotations

import ast
import json
from importlib import util as importlib_util

from cnnspec.graph.ir import Graph
from cnnspec.weights.keras_layout import layer_parts

from .plan import MULTI_INPUT, Plan, Step, make_plan

TARGET = "keras model_keras.py"


def _custom_sources(names: set[str]) -> list[str]:
    """Each used custom class's source, read from layers.py as text (no Keras import needed)."""
    if not names:
        return []
    origin = importlib_util.find_spec(f"{__package__}.layers").origin
    with open(origin, encoding="utf-8") as fh:
        source = fh.read()
    tree = ast.parse(source)
    out = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in names:
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            out.append("\n".join(source.splitlines()[start - 1:node.end_lineno]))
    return out


def _call(step: Step) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in step.kwargs)
    args = f"{args}, name={step.name!r}" if args else f"name={step.name!r}"
    cls = step.layer if step.custom else f"layers.{step.layer}"
    ins = "[" + ", ".join(step.inputs) + "]" if step.layer in MULTI_INPUT else step.inputs[0]
    return f"    {step.var} = {cls}({args})({ins})"


_HEADER = '''"""{name}: a Keras 3 model written by cnnspec from its spec (TensorFlow backend).

Rebuilds the network with Keras alone and loads ``weights.safetensors``, which holds the
framework-neutral layout (PyTorch's); ``load_weights`` transposes each tensor to Keras' layout.
The model takes float32 [batch, {c}, {h}, {w}] (channels first, as the spec) and runs channels-last
inside. Flatten goes through channels-first first, so it keeps the spec's channel, row, column order.

    python model_keras.py                  # build, load the weights beside this file, print the output shape
    python model_keras.py x.npy y.npy      # run on an [N, {c}, {h}, {w}] array and save the output
"""
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops
from safetensors.numpy import load_file

INPUT_SHAPE = {shape!r}  # channels, height, width
CLASSES = {classes}
'''

_LOADER = '''

def to_keras_layout(tensor):
    """Neutral (PyTorch) layout to Keras': conv kernels OIHW -> HWIO, dense [units, in] -> [in, units]."""
    if tensor.ndim == 4:
        return tensor.transpose(2, 3, 1, 0)
    if tensor.ndim == 2:
        return tensor.T
    return tensor  # biases and batchnorm vectors


def load_weights(model, path):
    tensors = load_file(str(path))
    for layer_name, parts in WEIGHTS:
        model.get_layer(layer_name).set_weights([to_keras_layout(tensors[f"{{layer_name}}.{{part}}"]) for part in parts])


if __name__ == "__main__":
    model = build_model()
    load_weights(model, Path(__file__).with_name("weights.safetensors"))
    x = np.load(sys.argv[1]).astype(np.float32) if len(sys.argv) > 1 else np.zeros((1, *INPUT_SHAPE), np.float32)
    y = np.asarray(model(x, training=False))
    if len(sys.argv) > 2:
        np.save(sys.argv[2], y)
    else:
        print("output shape:", y.shape)
'''

# the same, for a model that returns a list (the spec's outputs): y.npy becomes y.<output>.npy
_MAIN_SEVERAL = '''

if __name__ == "__main__":
    model = build_model()
    load_weights(model, Path(__file__).with_name("weights.safetensors"))
    x = np.load(sys.argv[1]).astype(np.float32) if len(sys.argv) > 1 else np.zeros((1, *INPUT_SHAPE), np.float32)
    for name, y in zip(OUTPUTS, model(x, training=False)):
        y = np.asarray(y)
        if len(sys.argv) > 2:
            np.save(str(Path(sys.argv[2]).with_suffix("")) + f".{name}.npy", y)
        else:
            print(f"output {name} shape:", y.shape)
'''


def render(graph: Graph, plan: Plan) -> str:
    c, h, w = graph.input_shape
    classes = json.dumps(list(graph.classes), ensure_ascii=False) if graph.classes else "None"
    text = _HEADER.format(name=graph.name, c=c, h=h, w=w, shape=tuple(graph.input_shape), classes=classes)
    for src in _custom_sources({s.layer for s in plan.steps if s.custom}):
        text += "\n\n" + src + "\n"
    body = [f"    {plan.input_var} = keras.Input(shape=INPUT_SHAPE, name='input', dtype='float32')"]
    body += [_call(s) for s in plan.steps]
    returned = f"[{', '.join(plan.output_vars)}]" if plan.several_outputs else plan.output_vars[0]
    body.append(f"    return keras.Model({plan.input_var}, {returned}, name={plan.model_name!r})")
    text += "\n\ndef build_model():\n" + "\n".join(body) + "\n"
    weights = [f"    ({name!r}, {tuple(p.neutral for p in parts)!r})," for name, parts in layer_parts(graph)]
    text += "\n\n# each weighted layer and its tensors, in the order Keras' get_weights() lists them\nWEIGHTS = [\n"
    text += "\n".join(weights) + ("\n" if weights else "") + "]\n"
    if not plan.several_outputs:
        return text + _LOADER.format()
    loader = _LOADER.format()
    text = text.replace("CLASSES = ", f"OUTPUTS = {list(graph.output_names)!r}  # the model returns these layers' "
                        "values, in this order\nCLASSES = ", 1)
    return text + loader[:loader.index('\n\nif __name__ == "__main__":')] + "\n" + _MAIN_SEVERAL


def generate_model_keras_py(graph: Graph) -> str:
    """``model_keras.py`` from the graph's plan; an op without a planner names this file as the target."""
    return render(graph, make_plan(graph, target=TARGET))
