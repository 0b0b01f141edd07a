"""A plan (see ``plan``) turned into a functional ``keras.Model``; imports Keras, so only the backend
imports this module."""
from __future__ import annotations

import keras

from . import layers as custom
from .plan import MULTI_INPUT, Plan


def layer_class(name: str):
    return custom.CUSTOM_OBJECTS.get(name) or getattr(keras.layers, name)


def build_model(plan: Plan) -> keras.Model:
    inputs = keras.Input(shape=plan.input_shape, name="input", dtype="float32")
    values = {plan.input_var: inputs}
    for step in plan.steps:
        layer = layer_class(step.layer)(name=step.name, **dict(step.kwargs))
        args = [values[v] for v in step.inputs]
        values[step.var] = layer(args if step.layer in MULTI_INPUT else args[0])
    outputs = [values[v] for v in plan.output_vars]
    return keras.Model(inputs, outputs if plan.several_outputs else outputs[0], name=plan.model_name)
