"""Expand blocks, repeats and ``when`` into a flat list of concrete layer items.

A block is a parameterised list of layers; calling it inlines its layers with names prefixed
by the call's name (``layer1.0.conv1``, as torchvision names them). ``$param`` values are
substituted whole (no expression language, nothing evaluated). Each expanded item keeps the
document path of its source line and the chain of calls, so errors can name both.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .errors import Diagnostic
from .ir import INPUT
from .ops import OPS
from .schema import MAX_LAYERS, RESERVED
from .schema_errors import describe
from .suggest import suggest

MAX_BLOCK_DEPTH = 16
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")  # the contract's layer-name pattern
_REF = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_WHEN = re.compile(r"^(not\s+)?\$([A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class Item:
    """One concrete layer after expansion; ``inputs`` are full names (``input`` for the spec's input)."""

    name: str
    op: str
    args: object
    inputs: tuple[str, ...]
    expect: object
    path: tuple           # document path of the layer item (for positions)
    via: tuple = ()       # ((block name, call Location), ...), innermost first
    explicit_name: bool = False
    scope: str = ""       # the name prefix of the innermost call ('layer1.0.'): tells calls apart


@dataclass
class _Scope:
    prefix: str
    input_name: str
    params: dict
    via: tuple
    depth: int = 0
    counters: dict = field(default_factory=dict)
    local: dict = field(default_factory=dict)  # local name -> full name (layers and block calls)
    declared: set = field(default_factory=set)  # names written in this list, to spot forward references


def _plain_name(raw: dict) -> str | None:
    """A layer's literal name where it is a valid one (a '$param' is not substituted here)."""
    name = raw.get("name")
    return name if isinstance(name, str) and _NAME.match(name) else None


class Expander:
    def __init__(self, doc):
        self.doc = doc
        self.blocks = doc.data.get("blocks") or {}
        if not isinstance(self.blocks, dict):
            self.blocks = {}
        self.items: list[Item] = []
        self.full_names: dict[str, tuple] = {}  # full name -> path, for duplicates and top-level lookups
        self.diagnostics: list[Diagnostic] = []
        self.stack: list[str] = []
        self.failures = 0  # layers that failed without a name of their own (see _failed)
        self.full = False  # MAX_LAYERS reached and said: expansion stops

    # -- helpers -------------------------------------------------------------------------------
    def error(self, message, path, scope, key=False, rank=20):
        self.diagnostics.append(Diagnostic(message, self.doc.loc(path, key=key), scope.via, rank=rank,
                                           call=scope.prefix))

    def substitute(self, value, scope, path):
        """Replace whole-value ``$param`` strings; an unknown parameter is an error."""
        if isinstance(value, str):
            m = _REF.match(value)
            if m:
                if m.group(1) in scope.params:
                    return scope.params[m.group(1)]
                where = "here" if scope.prefix == "" else "in this block"
                known = list(scope.params)
                hint = (suggest(m.group(1), known) or f" (its parameters: {', '.join(known)})") if known else \
                    " (parameters are only defined inside blocks)"
                self.error(f"'{value}' is not a parameter {where}{hint}", path, scope)
                return None
            return value
        if isinstance(value, dict):
            return {k: self.substitute(v, scope, path + (k,)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.substitute(v, scope, path + (i,)) for i, v in enumerate(value)]
        return value

    def resolve(self, ref, scope, path) -> str | None:
        if not isinstance(ref, str):
            self.error(f"'in' must name layers, got {ref!r}", path, scope)
            return None
        if ref == "input":
            return scope.input_name
        if ref in scope.local:
            return scope.local[ref]
        if scope.prefix == "" and ref in self.full_names:
            return ref
        known = list(scope.local) + ["input"]
        later = self._defined_later(ref, scope)
        if later:
            self.error(f"'in' names '{ref}', which comes later; only earlier layers may be named", path, scope)
        else:
            self.error(f"'in' names '{ref}', which is no earlier layer" + suggest(ref, known), path, scope)
        return None

    def _defined_later(self, ref, scope) -> bool:
        return ref in scope.declared

    def when_holds(self, cond, scope, path) -> bool:
        if isinstance(cond, bool):
            return cond
        m = _WHEN.match(cond) if isinstance(cond, str) else None
        if not m:
            self.error(f"'when' must be '$param' or 'not $param', got {cond!r}", path, scope)
            return True
        negate, param = bool(m.group(1)), m.group(2)
        if param not in scope.params:
            self.error(f"'when' uses '${param}', which is not a parameter here", path, scope)
            return True
        return bool(scope.params[param]) != negate

    # -- expansion -----------------------------------------------------------------------------
    def expand(self) -> list[Item]:
        layers = self.doc.data.get("layers")
        if isinstance(layers, list):
            self.expand_list(layers, ("layers",), _Scope("", "input", {}, ()))
        return self.items

    def expand_list(self, layers, path, scope):
        prev = scope.input_name
        scope.declared |= {raw["name"] for raw in layers if isinstance(raw, dict) and isinstance(raw.get("name"), str)}
        for i, raw in enumerate(layers):
            if self.full:
                return prev
            prev = self.expand_item(raw, path + (i,), scope, prev)
        return prev

    def _room(self, path, scope) -> bool:
        """Whether one more layer fits under MAX_LAYERS; the first that does not is the error, said
        once, where the layer (or the repeat) that would pass the limit is written."""
        if len(self.items) < MAX_LAYERS:
            return True
        if not self.full:
            self.full = True
            self.error(f"the spec expands to more than {MAX_LAYERS} layers", path, scope, rank=10)
        return False

    def expand_item(self, raw, path, scope, prev):
        """The full name of the item's output: ``prev`` where ``when`` leaves the layer out, and a
        failed name (see ``_failed``) after an error, so that the layers after it read no older layer."""
        bare = isinstance(raw, str)
        if bare:
            raw = {raw: None}
        elif not isinstance(raw, dict):
            self.error(f"a layer must be an op name or a mapping, got {raw!r}", path, scope)
            return self._failed(scope)
        if "when" in raw and not self.when_holds(raw["when"], scope, path + ("when",)):
            return prev
        op = self._op_key(raw, path, scope)
        if op is None:
            return self._failed(scope, _plain_name(raw))
        if op not in OPS and op not in self.blocks:
            known = list(OPS) + list(self.blocks)
            self.error(f"unknown op '{op}'" + (suggest(op, known) or f" (ops: {', '.join(sorted(OPS))})"),
                       path if bare else path + (op,), scope, key=not bare)
            return self._failed(scope, _plain_name(raw) or self._default_name(op, scope))
        problems_before = len(self.diagnostics)
        sub = lambda key: self.substitute(raw.get(key), scope, path + (key,))  # noqa: E731
        name = self._layer_name(sub("name"), path, scope)
        base = name or self._default_name(op, scope)
        out = self._expand_op(raw, op, name, base, path, scope, prev, sub, problems_before)
        return out if out is not None else self._failed(scope, base)

    def _op_key(self, raw, path, scope):
        """The one key of a layer item that is not reserved; None (and an error) for none or several."""
        op_keys = [k for k in raw if k not in RESERVED]
        if not op_keys:
            self.error("layer has no op (its keys are " + ", ".join(f"'{k}'" for k in raw) + ")", path, scope)
            return None
        if len(op_keys) > 1:
            self.error(f"layer has several ops ({', '.join(repr(k) for k in op_keys)}); put each op in its own "
                       f"list item", path + (op_keys[1],), scope, key=True)
            return None
        return op_keys[0]

    def _layer_name(self, name, path, scope):
        """The layer's own name where it gives a valid one; None (after an error where it is not)."""
        if name is not None and not isinstance(name, str):
            self.error(f"'name' must be a string, got {name!r}", path + ("name",), scope)
            return None
        if name is not None and not _NAME.match(name):
            self.error(f"layer name {name!r} is not allowed: a name starts with a letter or '_' and holds only "
                       f"ASCII letters, digits, '_' and '.' (as in 'layer1.0.conv1')", path + ("name",), scope)
            return None
        return name

    def _failed(self, scope, local=None) -> str:
        """The name of a layer that failed, registered like a layer's but given no node: the layers that
        read it, by 'in' or by default, find it (no invented "comes later"), and the shape pass, which
        knows no shape for it, leaves them unchecked instead of inventing follow-on errors."""
        full = scope.prefix + local if local else None
        if full is None or local in scope.local or full in self.full_names or full == INPUT:
            self.failures += 1
            return f"{scope.prefix}<failed {self.failures}>"  # never a valid layer name, so never a clash
        scope.local[local] = full
        return full

    def _expand_op(self, raw, op, name, base, path, scope, prev, sub, problems_before):
        """An op or block call with its repeats; the last copy's full name, or None after an error."""
        expect = sub("expect")
        inputs = self._inputs(raw, scope, path, prev, sub)
        if inputs is None:
            return None
        repeat = raw.get("repeat")
        if "first" in raw and repeat is None:
            self.error("'first' only makes sense with 'repeat'", path + ("first",), scope, key=True)
        times, start = 1, 0
        if repeat is not None:
            times, start = self._repeat_counts(repeat, path + ("repeat",), scope)
            if times is None:
                return None
        if len(self.diagnostics) > problems_before:
            return None  # a bad name or substitution: checking the item further would only repeat it
        out = None
        chained = inputs
        for copy in range(times):
            if self.full or (op in OPS and not self._room(path + ("repeat",) if repeat is not None else path, scope)):
                return None
            local = f"{base}.{start + copy}" if repeat is not None else base
            problems_before = len(self.diagnostics)  # errors inside an earlier copy's block are not this one's
            args = sub(op)
            if copy == 0 and isinstance(raw.get("first"), dict):
                declared = (self.blocks[op].get("params") or {}) if op in self.blocks else OPS[op].args
                for key in raw["first"]:
                    if key not in declared:
                        self.error(f"'first' sets '{key}', which '{op}' does not take" + suggest(key, declared),
                                   path + ("first", key), scope, key=True)
                        return None
                if not isinstance(args, dict) and args is not None:
                    self.error("'first' needs the call's arguments as a mapping", path + ("first",), scope)
                else:
                    args = {**(args or {}), **self.substitute(raw["first"], scope, path + ("first",))}
            if len(self.diagnostics) > problems_before:
                return None  # a bad substitution: checking the item further would only repeat it
            if op in OPS:
                out = self._add_item(local, op, args, chained, expect if copy == times - 1 else None, path, scope,
                                     explicit=name is not None)
            else:
                out = self._call_block(op, local, args, chained, path, scope)
                if out and expect is not None and copy == times - 1 and self.items:
                    last = self.items[-1]
                    if last.expect is None and last.name == out:  # not where the block's last layer failed
                        self.items[-1] = replace(last, expect=expect, path=path)
            if out is None:
                return None
            chained = (out,)
        if repeat is not None:
            scope.local[base] = out
        return out

    def _repeat_counts(self, repeat, path, scope):
        """(times, start) of ``repeat: N`` or ``repeat: {times: N, start: K}``; (None, None) after an error.
        N is 1 to MAX_LAYERS (a bigger count could never check, and would take long to say so)."""
        def count(value):
            return isinstance(value, int) and not isinstance(value, bool)

        if isinstance(repeat, dict):
            unknown = [k for k in repeat if k not in ("times", "start")]
            if unknown:
                self.error(f"'repeat' takes 'times' and 'start', not '{unknown[0]}'" + suggest(unknown[0], ["times", "start"]),
                           path + (unknown[0],), scope, key=True)
                return None, None
            if "times" not in repeat:
                self.error("'repeat' needs 'times' (how many copies) beside 'start'", path, scope)
                return None, None
            times, start = repeat["times"], repeat.get("start", 0)
        else:
            times, start = repeat, 0
        if not count(times) or not count(start):
            bad = times if not count(times) else start
            self.error(f"'repeat' must be a count or {{times: N, start: K}} with whole numbers, got {describe(bad)}",
                       path, scope)
            return None, None
        if not 1 <= times <= MAX_LAYERS:
            self.error(f"'repeat' must be between 1 and {MAX_LAYERS}, got {times}", path, scope)
            return None, None
        if start < 0:
            self.error(f"'repeat' numbers copies from 'start', which must be 0 or more, got {start}", path, scope)
            return None, None
        return times, start

    def _inputs(self, raw, scope, path, prev, sub):
        if "in" not in raw:
            return (prev,)
        ref = sub("in")
        refs = ref if isinstance(ref, list) else [ref]
        resolved = []
        for j, r in enumerate(refs):
            full = self.resolve(r, scope, path + ("in",) + ((j,) if isinstance(ref, list) else ()))
            if full is None:
                return None
            resolved.append(full)
        return tuple(resolved)

    def _default_name(self, op, scope):
        k = scope.counters.get(op, 0) + 1
        scope.counters[op] = k
        return f"{op}_{k}"

    def _add_item(self, local, op, args, inputs, expect, path, scope, explicit):
        full = scope.prefix + local
        if full in self.full_names:
            first = self.doc.loc(self.full_names[full])
            self.error(f"layer name '{full}' is used twice (first at line {first.line})",
                       path + ("name",) if explicit else path, scope)
            return None
        if full == "input":
            self.error("'input' is reserved for the spec's input; choose another name", path + ("name",), scope)
            return None
        self.full_names[full] = path
        scope.local[local] = full
        self.items.append(Item(full, op, args, inputs, expect, path, scope.via, explicit, scope.prefix))
        return full

    def _call_block(self, block, local, args, inputs, path, scope):
        if len(inputs) != 1:
            self.error(f"block '{block}' takes one input but 'in' names {len(inputs)}", path + ("in",), scope)
            return None
        if block in self.stack:
            self.error(f"block '{block}' calls itself (through {' -> '.join(self.stack + [block])})", path, scope)
            return None
        if scope.depth >= MAX_BLOCK_DEPTH:
            self.error(f"blocks nest deeper than {MAX_BLOCK_DEPTH} calls", path, scope, rank=10)  # the cause: first
            return None
        definition = self.blocks[block]
        if not isinstance(definition, dict) or not isinstance(definition.get("layers"), list):
            return None  # the schema reports the broken definition
        declared = definition.get("params") or {}
        if args is None:
            args = {}
        if not isinstance(args, dict):
            self.error(f"a call of block '{block}' takes its parameters as a mapping, got {args!r}", path + (block,), scope)
            return None
        params = {}
        for key, value in args.items():
            if key not in declared:
                self.error(f"block '{block}' has no parameter '{key}'" + (suggest(key, declared) or
                           f" (it takes: {', '.join(declared) or 'none'})"), path + (block, key), scope, key=True)
                return None
            params[key] = value
        for key, default in declared.items():
            if key not in params:
                if default is None:
                    self.error(f"block '{block}' needs parameter '{key}'", path + (block,), scope)
                    return None
                params[key] = default
        call_loc = self.doc.loc(path)
        inner = _Scope(scope.prefix + local + ".", inputs[0], params, ((block, call_loc),) + scope.via,
                       scope.depth + 1)
        self.stack.append(block)
        before, problems_before = len(self.items), len(self.diagnostics)
        out = self.expand_list(definition["layers"], ("blocks", block, "layers"), inner)
        self.stack.pop()
        if len(self.items) == before and len(self.diagnostics) == problems_before:  # else its layers' errors say why
            self.error(f"block '{block}' expands to no layers here", path, scope)
            return None
        scope.local[local] = out
        return out


def expand(doc) -> tuple[list[Item], list[Diagnostic]]:
    expander = Expander(doc)
    items = expander.expand()
    return items, expander.diagnostics
