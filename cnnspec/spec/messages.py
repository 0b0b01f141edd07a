"""jsonschema errors as plain-English diagnostics: one small message function per keyword.

Why a table of its own: a message says what is wrong and then what was received, in the words
of what is *allowed* ("'padding' must be zero or more, a pair [height, width], 'same' or 'valid',
got [1, 0, 1, 0]"). A schema's ``description`` explains an argument for editors and docs and is
never read here; what an ``anyOf`` allows comes from its ``allowed`` text or from its branches.
Nothing here imports jsonschema: it only reads the error objects handed in.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

from ..errors import Diagnostic, plural
from .suggestions import close_match, suggest

TYPE_WORDS = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
              "array": "a list", "object": "a mapping", "null": "empty"}
BOUND_WORDS = {"minimum": "at least", "exclusiveMinimum": "more than", "maximum": "at most",
               "exclusiveMaximum": "less than"}
# a fixed-length list of integers is a size in this language; its sides, in order
SIDES_WORDS = {2: "a pair [height, width]", 4: "four numbers [top, bottom, left, right]"}


def describe(value) -> str:
    """A received value, short enough for one line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'" if len(value) < 40 else f"'{value[:37]}...'"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        text = json.dumps(value)
        return text if len(text) < 40 else "a list"
    return "a mapping"


def join_or(words: list[str]) -> str:
    """'a, b or c'."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


# -- what a schema allows, in words -------------------------------------------------------------------
def _integer_words(schema: dict) -> str:
    low = schema.get("minimum")
    return {0: "zero or more", 1: "a positive integer"}.get(low, "an integer")


def _array_words(schema: dict) -> str:
    n = schema.get("minItems")
    if n is not None and n == schema.get("maxItems") and n in SIDES_WORDS:
        return SIDES_WORDS[n]
    return "a list"


def _type_words(schema: dict) -> list[str]:
    types = schema["type"]
    return [_TYPE_ALLOWED.get(t, lambda _s, t=t: TYPE_WORDS.get(t, t))(schema)
            for t in ([types] if isinstance(types, str) else types)]


def _branch_words(schema: dict) -> list[str]:
    return [w for branch in schema.get("anyOf", schema.get("oneOf")) for w in allowed_words(branch)]


_TYPE_ALLOWED: dict[str, Callable[[dict], str]] = {"integer": _integer_words, "array": _array_words}
# the first of these keywords a schema has says what it allows; 'description' is never one of them
_ALLOWED_FROM: tuple[tuple[str, Callable[[dict], list[str]]], ...] = (
    ("allowed", lambda s: [s["allowed"]]),
    ("enum", lambda s: [describe(v) for v in s["enum"] if v is not None]),  # null: "none", the default
    ("const", lambda s: [describe(s["const"])]),
    ("anyOf", _branch_words),
    ("oneOf", _branch_words),
    ("type", _type_words),
)


def allowed_words(schema: dict) -> list[str]:
    """What a schema allows, one phrase per option: its explicit ``allowed`` text, else from its
    ``enum``, ``const``, ``anyOf`` branches or ``type`` (never its ``description``)."""
    return next((words(schema) for key, words in _ALLOWED_FROM if key in schema), [])


# -- one message function per keyword ------------------------------------------------------------------
@dataclass(frozen=True)
class _Error:
    """One jsonschema error with where it sits: what every message function reads."""

    error: object
    doc: object
    path: tuple
    subject: str | None
    rank: int

    @property
    def name(self) -> str:
        """The field the error is about: the last key in its path."""
        return next((p for p in reversed(self.path) if isinstance(p, str)), "value")

    @property
    def prefix(self) -> str:
        return f"{self.subject}: " if self.subject else ""

    @property
    def value(self):
        return self.error.instance

    @property
    def want(self):
        return self.error.validator_value

    def say(self, message: str, location=None, rank: int | None = None) -> Diagnostic:
        return Diagnostic(message, location or self.doc.loc(self.path), rank=self.rank if rank is None else rank)

    def must(self, words: str) -> Diagnostic:
        """The common shape: "'field' must be ..., got ..."."""
        return self.say(f"{self.prefix}'{self.name}' must be {words}, got {describe(self.value)}")


def _unknown_key(e: _Error) -> list[Diagnostic]:
    """One located line per unknown key, each with its own "did you mean" (jsonschema reports a mapping's
    unknown keys as one error; a user fixes them one by one)."""
    known = list(e.error.schema.get("properties", {}))
    return [_one_unknown_key(e, key, known) for key in e.value if key not in known] or [
        _one_unknown_key(e, "?", known)]


def _one_unknown_key(e: _Error, key: str, known: list[str]) -> Diagnostic:
    if e.subject:
        message = f"{e.subject} has no argument '{key}'"
    else:
        message = f"unknown key '{key}'" + (f" in '{e.name}'" if e.path else "")
    hint = suggest(key, known) or (f" (it takes: {', '.join(known)})" if known else " (it takes no arguments)")
    return e.say(message + hint, e.doc.loc(e.path + (key,), key=True))


def _missing(e: _Error) -> Diagnostic:
    missing = next(k for k in e.want if k not in e.value)
    owner = e.subject or ("the spec" if not e.path else f"'{e.name}'")
    return e.say(f"{owner} needs '{missing}'")


def _const(e: _Error) -> Diagnostic:
    if e.path == ("cnnspec",):
        return e.say(f"unsupported language version cnnspec: {describe(e.value)}; this cnnspec reads version 1",
                     rank=0)
    return e.must(describe(e.want))


def _type(e: _Error) -> Diagnostic:
    types = e.want if isinstance(e.want, list) else [e.want]
    return e.must(" or ".join(TYPE_WORDS.get(t, t) for t in types))


def _bound(e: _Error) -> Diagnostic:
    return e.must(f"{BOUND_WORDS[e.error.validator]} {e.want}")


# the spec's own lists, said as what they hold rather than how many items
LIST_WORDS: dict[str, Callable[[_Error], Diagnostic]] = {
    "input": lambda e: e.must("[channels, height, width]"),
    "layers": lambda e: e.say("'layers' must hold at least one layer"),
    "outputs": lambda e: e.say("'outputs' must name at least one layer (or leave it out: the last layer is the output)"),
}


def _item_count(e: _Error) -> Diagnostic:
    if not e.subject and e.name in LIST_WORDS:
        return LIST_WORDS[e.name](e)
    words = "at least" if e.error.validator == "minItems" else "at most"
    return e.say(f"{e.prefix}'{e.name}' must have {words} {plural(e.want, 'item')}, got {len(e.value)}")


def _enum(e: _Error) -> Diagnostic:
    options = ", ".join(allowed_words(e.error.schema)) or "null"
    return e.say(f"{e.prefix}'{e.name}' must be one of {options}, got {describe(e.value)}"
                 + suggest(e.value, e.want))


def _any_of(e: _Error) -> Diagnostic:
    words = allowed_words(e.error.schema)
    return e.must(join_or(words)) if words else _fallback(e)  # a branch with no words: jsonschema's own


def _empty(e: _Error) -> Diagnostic:
    return e.say(f"{e.prefix}'{e.name}' must not be empty")


def _too_long(e: _Error) -> Diagnostic:
    return e.say(f"{e.prefix}'{e.name}' must be at most {e.want} characters, got {len(e.value)}")


def _repeated(e: _Error) -> Diagnostic:
    return e.say(f"{e.prefix}'{e.name}' has repeated items")


def _pattern(e: _Error) -> Diagnostic:
    return e.say(f"{e.prefix}'{e.name}' {describe(e.value)} is not a valid name (letters, digits, '_' and '.', "
                 f"not starting with a digit)")


def _key_names(e: _Error) -> Diagnostic:
    return e.say(f"{e.prefix}'{e.name}' has a key that is not a valid name")


def _fallback(e: _Error) -> Diagnostic:
    return e.say(f"{e.prefix}'{e.name}': {e.error.message}")


# a message function returns one diagnostic, or a list where one error holds several (unknown keys)
MESSAGES: dict[str, Callable[[_Error], Diagnostic | list[Diagnostic]]] = {
    "additionalProperties": _unknown_key,
    "required": _missing,
    "const": _const,
    "type": _type,
    "minimum": _bound, "exclusiveMinimum": _bound, "maximum": _bound, "exclusiveMaximum": _bound,
    "minItems": _item_count, "maxItems": _item_count,
    "enum": _enum,
    "anyOf": _any_of, "oneOf": _any_of,
    "minLength": _empty, "maxLength": _too_long,
    "uniqueItems": _repeated,
    "pattern": _pattern,
    "propertyNames": _key_names,
}


def translate(error, doc, base_path=(), subject: str | None = None, rank: int = 10) -> list[Diagnostic]:
    """A jsonschema error as located, plain-English diagnostics ("what is wrong, then what was received"):
    one, or one per unknown key."""
    e = _Error(error, doc, tuple(base_path) + tuple(error.absolute_path), subject, rank)
    said = MESSAGES.get(error.validator, _fallback)(e)
    return said if isinstance(said, list) else [said]


def explain(errors, doc, base_path=(), subject=None, rank=10) -> list[Diagnostic]:
    """Every error translated, less the 'needs kernel' that a misspelt 'kernal' beside it already says."""
    explained = _misspelt_required(errors)
    return [d for e in errors if id(e) not in explained for d in translate(e, doc, base_path, subject, rank)]


def _misspelt_required(errors) -> set:
    """ids of 'needs kernel' errors that a misspelt 'kernal' in the same mapping already explains."""
    unknown = {}
    for e in errors:
        if e.validator == "additionalProperties" and isinstance(e.instance, dict):
            allowed = e.schema.get("properties", {})
            unknown.setdefault(tuple(e.absolute_path), []).extend(k for k in e.instance if k not in allowed)
    explained = set()
    for e in errors:
        if e.validator == "required" and isinstance(e.instance, dict):
            typos = unknown.get(tuple(e.absolute_path), [])
            missing = [k for k in e.validator_value if k not in e.instance]
            if missing and all(close_match(m, typos) for m in missing):
                explained.add(id(e))
    return explained
