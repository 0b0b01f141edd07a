"""A JSON Schema compiled into plain Python predicates that answer one question: is it valid?

Why: importing jsonschema costs about 0.15 s on a 2-core machine, half of a cold ``cnnspec check``.
Most specs are valid, and a valid spec needs no error objects. So the schema is compiled into
closures here, and :mod:`cnnspec.spec.schema` asks jsonschema only when this says "invalid", to find
and explain every error. The verdicts must agree: ``tests/test_schema.py`` checks them against
jsonschema on every shipped spec and on random and mutated documents.

Only the keywords cnnspec's schemas use are compiled; any other keyword is a ``NotImplementedError``
when the schema is compiled (never a silent pass). Semantics follow draft 2020-12, with cnnspec's
one change: an integer is an ``int`` (``64.0`` is not one) and never a ``bool``.
"""
from __future__ import annotations

import math
import re
from typing import Callable

Predicate = Callable[[object], bool]

_TYPES: dict[str, Callable[[object], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
# keywords that only annotate: no effect on validity ("allowed" is cnnspec's: see messages.py)
_ANNOTATIONS = {"description", "default", "title", "$schema", "$id", "$comment", "examples", "$defs",
                "definitions", "markdownDescription", "deprecated", "allowed"}


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _equal(a, b) -> bool:
    """JSON equality: 1 == 1.0, but True is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if _is_number(a) and _is_number(b):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


class _Compiler:
    def __init__(self, root: dict):
        self.root = root
        self.refs: dict[str, Predicate] = {}

    def ref(self, pointer: str) -> Predicate:
        if not pointer.startswith("#/"):
            raise NotImplementedError(f"only local $refs are compiled, not {pointer!r}")
        if pointer not in self.refs:
            target = self.root
            for part in pointer[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            holder: list[Predicate] = []
            self.refs[pointer] = lambda v: holder[0](v)  # recursion-safe: filled in below
            holder.append(self.compile(target))
        return self.refs[pointer]

    def compile(self, schema) -> Predicate:
        if schema is True or schema == {}:
            return lambda v: True
        if schema is False:
            return lambda v: False
        checks: list[Predicate] = []
        for key, value in schema.items():
            if key in _ANNOTATIONS:
                continue
            make = _KEYWORDS.get(key)
            if make is None:
                raise NotImplementedError(f"JSON Schema keyword {key!r} is not compiled by cnnspec.spec.fastschema")
            checks.append(make(self, value, schema))
        if len(checks) == 1:
            return checks[0]
        return lambda v: all(check(v) for check in checks)


def _type(c, value, _s):
    tests = [_TYPES[t] for t in ([value] if isinstance(value, str) else value)]
    return lambda v: any(t(v) for t in tests)


def _enum(c, value, _s):
    return lambda v: any(_equal(v, option) for option in value)


def _const(c, value, _s):
    return lambda v: _equal(v, value)


def _any_of(c, value, _s):
    options = [c.compile(s) for s in value]
    return lambda v: any(o(v) for o in options)


def _all_of(c, value, _s):
    parts = [c.compile(s) for s in value]
    return lambda v: all(p(v) for p in parts)


def _one_of(c, value, _s):
    options = [c.compile(s) for s in value]
    return lambda v: sum(1 for o in options if o(v)) == 1


def _not(c, value, _s):
    inner = c.compile(value)
    return lambda v: not inner(v)


def _number_bound(test):
    def make(c, bound, _s):
        return lambda v: not _is_number(v) or (not math.isnan(v) and test(v, bound))
    return make


def _pattern(c, value, _s):
    search = re.compile(value).search
    return lambda v: not isinstance(v, str) or search(v) is not None


def _length(test):
    def make(c, bound, _s):
        return lambda v: not isinstance(v, str) or test(len(v), bound)
    return make


def _count(kind, test):
    def make(c, bound, _s):
        return lambda v: not isinstance(v, kind) or test(len(v), bound)
    return make


def _items(c, value, _s):
    if isinstance(value, list):
        raise NotImplementedError("tuple-form 'items' is not draft 2020-12; use prefixItems")
    item = c.compile(value)
    return lambda v: not isinstance(v, list) or all(item(x) for x in v)


def _unique(c, value, _s):
    if not value:
        return lambda v: True
    return lambda v: not isinstance(v, list) or all(
        not _equal(v[i], v[j]) for i in range(len(v)) for j in range(i + 1, len(v)))


def _properties(c, value, _s):
    props = {k: c.compile(s) for k, s in value.items()}
    return lambda v: not isinstance(v, dict) or all(props[k](v[k]) for k in props if k in v)


def _additional(c, value, schema):
    known = set(schema.get("properties", {}))
    if "patternProperties" in schema:
        raise NotImplementedError("patternProperties beside additionalProperties is not compiled")
    extra = c.compile(value)
    return lambda v: not isinstance(v, dict) or all(extra(v[k]) for k in v if k not in known)


def _required(c, value, _s):
    return lambda v: not isinstance(v, dict) or all(k in v for k in value)


def _property_names(c, value, _s):
    name = c.compile(value)
    return lambda v: not isinstance(v, dict) or all(name(k) for k in v)


def _ref(c, value, _s):
    return c.ref(value)


_KEYWORDS = {
    "type": _type,
    "enum": _enum,
    "const": _const,
    "anyOf": _any_of,
    "allOf": _all_of,
    "oneOf": _one_of,
    "not": _not,
    "minimum": _number_bound(lambda v, b: v >= b),
    "maximum": _number_bound(lambda v, b: v <= b),
    "exclusiveMinimum": _number_bound(lambda v, b: v > b),
    "exclusiveMaximum": _number_bound(lambda v, b: v < b),
    "pattern": _pattern,
    "minLength": _length(lambda n, b: n >= b),
    "maxLength": _length(lambda n, b: n <= b),
    "items": _items,
    "minItems": _count(list, lambda n, b: n >= b),
    "maxItems": _count(list, lambda n, b: n <= b),
    "uniqueItems": _unique,
    "properties": _properties,
    "additionalProperties": _additional,
    "required": _required,
    "minProperties": _count(dict, lambda n, b: n >= b),
    "maxProperties": _count(dict, lambda n, b: n <= b),
    "propertyNames": _property_names,
    "$ref": _ref,
}


def compile_schema(schema: dict) -> Predicate:
    """A predicate that is True exactly where jsonschema (draft 2020-12, cnnspec's integer) finds no error."""
    return _Compiler(schema).compile(schema)
