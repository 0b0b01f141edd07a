"""Markdown for ops (from the op table: its description, arguments and defaults) and blocks (their
parameters and where they are defined): what hover and completion show."""
from __future__ import annotations

from ..graph.ops import OPS


def schema_words(schema: dict) -> str:
    """A short reading of an argument's JSON Schema: its description, or its enum."""
    if not isinstance(schema, dict):
        return ""
    if schema.get("description"):
        return schema["description"]
    values = enum_values(schema)
    return " | ".join(str(v) for v in values if v is not None) if values else schema.get("type", "")


def enum_values(schema) -> list:
    """The enum a schema allows, looking inside anyOf/oneOf."""
    if not isinstance(schema, dict):
        return []
    found = list(schema.get("enum", ()))
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key, ()):
            found += enum_values(sub)
    return found


def arg_default(arg) -> str:
    if arg.required:
        return "required"
    if arg.default_from:
        return f"= {arg.default_from}"
    return f"= {_yaml(arg.default)}"


def _yaml(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def arg_line(name: str, arg) -> str:
    words = "; ".join(w for w in (arg.doc, schema_words(arg.schema)) if w)
    return f"- `{name}` ({arg_default(arg)})" + (f": {words}" if words else "")


def op_markdown(op: str) -> str | None:
    op_def = OPS.get(op)
    if op_def is None:
        return None
    head = f"**{op}** (op)" + (f", the op `{op_def.name}`" if op_def.name != op else "")
    lines = [head, "", op_def.doc]
    if op_def.args:
        lines += ["", "Arguments" + (f" (primary: `{op_def.primary}`)" if op_def.primary else "") + ":"]
        lines += [arg_line(name, arg) for name, arg in op_def.args.items()]
    else:
        lines += ["", "No arguments."]
    if op_def.max_inputs != 1:
        lines += ["", f"`in`: at least {op_def.min_inputs} layers."]
    return "\n".join(lines)


def block_params(definition) -> dict:
    params = definition.get("params") if isinstance(definition, dict) else None
    return params if isinstance(params, dict) else {}


def block_markdown(name: str, definition, where: str | None) -> str:
    lines = [f"**{name}** (block)"]
    description = definition.get("description") if isinstance(definition, dict) else None
    if isinstance(description, str):
        lines += ["", description.strip()]
    params = block_params(definition)
    if params:
        lines += ["", "Parameters:"]
        lines += [f"- `{k}` ({'required' if v is None else '= ' + _yaml(v)})" for k, v in params.items()]
    inputs = definition.get("inputs") if isinstance(definition, dict) else None
    if isinstance(inputs, list):
        lines += ["", "Inputs: " + ", ".join(f"`{i}`" for i in inputs)]
    if where:
        lines += ["", f"Defined at {where}"]
    return "\n".join(lines)
