"""What an exported model's metadata says: its labels, and whether its outputs are already
probabilities.

Metadata is hostile input (anyone can write an .onnx file): every read here is bounded and
wrapped, so a huge, deeply nested or malformed value means "not said", never a crash.
"""
from __future__ import annotations

import json

from ..onnxfile.outputmeta import OUTPUT_ACTIVATION, OUTPUT_OP, ends_in_softmax, scoring_node
from ..spec.loader import MAX_FILE_BYTES

MAX_JSON_CHARS = MAX_FILE_BYTES  # a spec may be no larger; labels and shapes are far smaller
SPEC_KEY, CLASSES_KEY, INPUT_SHAPE_KEY = "cnnspec.spec", "cnnspec.classes", "cnnspec.input_shape"


def read_json(meta: dict, key: str):
    """The JSON value under ``key``; None where it is absent, too large or not JSON."""
    text = meta.get(key)
    if not isinstance(text, str) or len(text) > MAX_JSON_CHARS:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        return None


MAX_NAME_CHARS = 200


def display_name(meta: dict, model) -> str:
    """The model's name for the report: its metadata's, else its graph's, bounded and printable."""
    for name in (meta.get("cnnspec.name"), model.graph.name):
        if isinstance(name, str) and 0 < len(name) <= MAX_NAME_CHARS and name.isprintable():
            return name
    return "unnamed"


def classes(meta: dict, n_outputs: int) -> list[str] | None:
    """The labels, where the metadata holds exactly one string per output."""
    labels = read_json(meta, CLASSES_KEY)
    if isinstance(labels, list) and len(labels) == n_outputs and all(isinstance(c, str) for c in labels):
        return labels
    return None


def output_is_softmax(meta: dict) -> bool | None:
    """Does the model end in softmax? From the keys the export wrote; for files older than those
    keys, from the spec in the metadata, expanded by the core compiler (a softmax inside a block
    counts). None: the metadata cannot say, and the caller judges by the numbers."""
    op = meta.get(OUTPUT_OP)
    if isinstance(op, str):
        activation = meta.get(OUTPUT_ACTIVATION)
        return ends_in_softmax(op, activation if isinstance(activation, str) else "")
    return _spec_ends_in_softmax(meta)


def _spec_ends_in_softmax(meta: dict) -> bool | None:
    from ..api import loads

    text = meta.get(SPEC_KEY)
    if not isinstance(text, str) or len(text) > MAX_JSON_CHARS:
        return None
    try:
        graph = loads(text, file="<model metadata>").graph  # JSON is YAML
        node = scoring_node(graph)
    except Exception:  # noqa: BLE001 - a judgement, not a check: whatever hostile metadata does, the numbers decide
        return None
    return ends_in_softmax(node.op, node.attrs.get("activation") or "")
