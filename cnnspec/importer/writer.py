"""The spec as text: the zoo's style (one flow mapping per layer, blocks above the layers), emitted
by hand so the order, the quoting of names such as ``"0"`` and the line per layer are ours."""
from __future__ import annotations

import json
import math
import re

PLAIN = re.compile(r"\$?[A-Za-z_][A-Za-z0-9_.\-]*\Z")
YAML_WORDS = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}


def flow(value) -> str:
    """One value in YAML flow style, read back by the spec loader as the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
            return f"{value:.1f}"
        text = repr(value)
        return text if "e" not in text or "." in text.split("e")[0] else text.replace("e", ".0e", 1)
    if isinstance(value, str):
        return value if PLAIN.match(value) and value.lower() not in YAML_WORDS else json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{flow(k)}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__}")


def spec_text(header: dict, blocks: dict, layers: list) -> str:
    """``header``: cnnspec, name, description, input, classes, outputs (in that order); ``blocks``:
    name -> {params, layers}; ``layers``: the top level's entries as dicts."""
    lines = []
    for key, value in header.items():
        if key == "description":
            lines.append(f"description: {json.dumps(value, ensure_ascii=False)}")
        elif value is not None:
            lines.append(f"{key}: {flow(value)}")
    if blocks:
        lines += ["", "blocks:"]
        for name, block in blocks.items():
            lines.append(f"  {flow(name)}:")
            if block.get("params"):
                lines.append(f"    params: {flow(block['params'])}")
            if block.get("inputs"):
                lines.append(f"    inputs: {flow(block['inputs'])}")
            lines.append("    layers:")
            lines += [f"      - {flow(entry)}" for entry in block["layers"]]
    lines += ["", "layers:"]
    lines += [f"  - {flow(entry)}" for entry in layers]
    return "\n".join(lines) + "\n"
