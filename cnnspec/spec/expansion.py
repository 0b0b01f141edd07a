"""Expand blocks, repeats and ``when`` into a flat list of concrete layer items.

A block is a parameterised list of layers; calling it inlines its layers with names prefixed
by the call's name (``layer1.0.conv1``, as torchvision names them). ``$param`` values are
substituted whole (no expression language, nothing evaluated); a ``$param`` in an op's place names
that op. A block may take several inputs (``inputs: [x, skip]``, the call's ``in`` naming as many
layers), and its blocks may come from imported files (see ``imports``). Each expanded item keeps the
document path of its source line and the chain of calls, so errors can name both.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from ..errors import Diagnostic, plural
from ..graph.ir import INPUT
from ..graph.ops import OPS
from .expressions import ExpressionError, UnknownParameter, evaluate, is_expression, shown
from .imports import collect_blocks
from .messages import describe
from .schema import MAX_LAYERS, RESERVED
from .suggestions import suggest

MAX_BLOCK_DEPTH = 16
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")  # the contract's layer-name pattern (third edition: '-' too)
_LOCAL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")  # inside a block: may be a bare index ('0')
_INDEX = re.compile(r"[0-9]+(\.[0-9]+)*\Z")  # a bare index, torchvision's Sequential positions ('0', '1.0')
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
    inputs: dict  # the names 'in' may give the inputs ('input', or a block's declared names) -> full names
    params: dict
    via: tuple
    depth: int = 0
    block: str | None = None  # the block being expanded, for messages
    counters: dict = field(default_factory=dict)
    parent: "_Scope | None" = None  # the scope of the call, for "a block sees only its inputs"
    local: dict = field(default_factory=dict)  # local name -> full name (layers and block calls)
    declared: set = field(default_factory=set)  # names written in this list, to spot forward references


def _name_pattern(scope):
    """A top-level name matches the contract's pattern itself; a local one may be a bare index,
    since the call's name before it ('features.1.' + '0') makes the full name match."""
    return _NAME if scope.prefix == "" else _LOCAL


def _plain_name(raw: dict, scope) -> str | None:
    """A layer's literal name where it is a valid one (a '$param' is not substituted here)."""
    name = raw.get("name")
    return name if isinstance(name, str) and _name_pattern(scope).match(name) else None


class Expander:
    def __init__(self, doc, params: dict | None = None):
        self.doc = doc
        self.params = dict(params or {})  # the spec's own parameters (spec.parameters), for its layers
        self.blocks, self.diagnostics = collect_blocks(doc)  # name -> imports.Block; import problems
        self.items: list[Item] = []
        self.full_names: dict[str, tuple] = {}  # full name -> path, for duplicates and top-level lookups
        self.stack: list[str] = []
        self.called: set[str] = set()  # blocks that calls reached (what an exported spec must carry)
        self.failures = 0  # layers that failed without a name of their own (see _failed)
        self.full = False  # MAX_LAYERS reached and said: expansion stops
        self.top = None  # the spec's own scope, once expansion reaches it (see top_level_names)
        self.left_out: set[str] = set()  # full names of named layers and calls that 'when' left out

    # -- helpers -------------------------------------------------------------------------------
    def error(self, message, path, scope, key=False, rank=20):
        self.diagnostics.append(Diagnostic(message, self.doc.loc(path, key=key), scope.via, rank=rank,
                                           call=scope.prefix))

    def substitute(self, value, scope, path):
        """Replace whole-value ``$param`` strings and evaluate expressions (strings containing '$');
        an unknown parameter or a bad expression is an error at the value."""
        if isinstance(value, str):
            m = _REF.match(value)
            if m:
                if m.group(1) in scope.params:
                    return scope.params[m.group(1)]
                self._unknown_parameter(value, m.group(1), scope, path)
                return None
            if is_expression(value):
                return self.evaluate(value, scope, path)
            return value
        if isinstance(value, dict):
            return {k: self.substitute(v, scope, path + (k,)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.substitute(v, scope, path + (i,)) for i, v in enumerate(value)]
        return value

    def evaluate(self, text, scope, path):
        """An expression's value, or None after an error that quotes it."""
        try:
            value = evaluate(text, scope.params)
        except UnknownParameter as exc:
            self._unknown_parameter(f"${exc.name}", exc.name, scope, path, within=text)
            return None
        except ExpressionError as exc:
            self.error(f"expression '{_quoted(text)}': {exc}", path, scope)
            return None
        if hasattr(value, "expression"):
            value.where = self.doc.loc(path)
        return value

    def _unknown_parameter(self, ref, name, scope, path, within=None):
        where = "here" if scope.prefix == "" else "in this block"
        known = list(scope.params)
        if known:
            hint = suggest(name, known) or f" (its parameters: {', '.join(known)})"
        elif scope.prefix == "":
            hint = " (a spec's own parameters are declared in 'params:')"
        else:
            hint = " (this block declares no 'params')"
        if scope.prefix and name in self.params:
            hint += f"; the spec's params are not seen inside blocks: give block '{scope.block}' a parameter " \
                    f"and pass ${name} in the call"
        quoted = f"expression '{_quoted(within)}': " if within else ""
        self.error(f"{quoted}'{ref}' is not a parameter {where}{hint}", path, scope)

    def resolve(self, ref, scope, path) -> str | None:
        if not isinstance(ref, str):
            self.error(f"'in' must name layers, got {ref!r}", path, scope)
            return None
        if ref in scope.inputs:
            return scope.inputs[ref]
        if ref in scope.local:
            return scope.local[ref]
        if scope.prefix == "" and ref in self.full_names:
            return ref
        if self._defined_later(ref, scope):
            self.error(f"'in' names '{ref}', which comes later; only earlier layers may be named", path, scope)
        elif scope.block is not None and self._outside(ref, scope):
            inputs = list(scope.inputs)
            self.error(f"'in' names '{ref}', a layer outside block '{scope.block}': a block sees only its inputs "
                       f"({', '.join(inputs)}) and its own layers; to pass '{ref}' in, declare it in the block "
                       f"('inputs: [{', '.join(inputs + [ref])}]') and name it in the call "
                       f"('in: [..., {ref}]')", path, scope)
        elif scope.block is not None and "input" not in scope.inputs:
            inputs = ", ".join(scope.inputs)
            self.error(f"'in' names '{ref}', which is no earlier layer nor an input of block '{scope.block}' "
                       f"(its inputs: {inputs})" + suggest(ref, list(scope.local) + list(scope.inputs)), path, scope)
        else:
            self.error(f"'in' names '{ref}', which is no earlier layer" +
                       suggest(ref, list(scope.local) + list(scope.inputs)), path, scope)
        return None

    def _outside(self, ref, scope) -> bool:
        """Whether ``ref`` names a layer of a scope that called this block (which the block cannot see)."""
        outer = scope.parent
        while outer is not None:
            if ref in outer.local or ref in outer.declared or (ref in outer.inputs and ref != "input"):
                return True
            outer = outer.parent
        return False

    def _defined_later(self, ref, scope) -> bool:
        return ref in scope.declared

    def when_holds(self, cond, scope, path) -> bool:
        """'when': true or false, '$flag', 'not $flag' (any value, by its truth, as before expressions)
        or an expression that gives true or false."""
        if isinstance(cond, bool):
            return cond
        if not is_expression(cond):
            self.error(f"'when' must be true, false or an expression such as '$stride == 1', got {describe(cond)}",
                       path, scope)
            return True
        m = _WHEN.match(cond)
        if m and m.group(2) in scope.params:
            return bool(scope.params[m.group(2)]) != bool(m.group(1))
        if m:
            known = list(scope.params)
            self.error(f"'when' uses '${m.group(2)}', which is not a parameter here" +
                       (suggest(m.group(2), known) or (f" (its parameters: {', '.join(known)})" if known else "")),
                       path, scope)
            return True
        value = self.evaluate(cond, scope, path)
        if value is None:
            return True
        if not isinstance(value, bool):
            self.error(f"'when' needs true or false, but '{cond}' is {shown(value)}", path, scope)
            return True
        return value

    # -- expansion -----------------------------------------------------------------------------
    def expand(self) -> list[Item]:
        layers = self.doc.data.get("layers")
        if isinstance(layers, list):
            self.expand_list(layers, ("layers",), _Scope("", {"input": INPUT}, self.params, ()))
        return self.items

    def top_level_names(self) -> dict:
        """Each name a top-level layer item gave -> the layer it stands for (a block call's name: the
        call's last layer), as ``in`` reads them; for ``outputs``."""
        return dict(self.top.local) if self.top is not None else {}

    def self_contained(self, data):
        """The spec as an exported model carries it: the imported blocks its calls reached written into
        its own 'blocks' and 'import' left out, so the model's metadata re-checks with no file beside it."""
        if not isinstance(data, dict) or "import" not in data:
            return data
        own = data.get("blocks") if isinstance(data.get("blocks"), dict) else {}
        reached = {name: self.blocks[name].definition for name in sorted(self.called) if name not in own}
        out = {key: value for key, value in data.items() if key != "import"}
        if own or reached:
            out["blocks"] = {**own, **reached}
        return out

    def expand_list(self, layers, path, scope):
        if not scope.prefix and self.top is None:
            self.top = scope
        prev = next(iter(scope.inputs.values()))  # the first layer reads the (first) input
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
            if isinstance(raw.get("name"), str):  # for 'outputs', which leaves such a layer out too
                self.left_out.add(scope.prefix + raw["name"])
            return prev
        op = self._op_key(raw, path, scope)
        if op is None:
            return self._failed(scope, _plain_name(raw, scope))
        if _REF.match(op):
            raw, op = self._op_from_param(raw, op, path, scope, bare)
            if op is None:
                return self._failed(scope, _plain_name(raw, scope))
        if op not in OPS and op not in self.blocks:
            known = list(OPS) + list(self.blocks)
            self.error(f"unknown op '{op}'" + (suggest(op, known) or f" (ops: {', '.join(sorted(OPS))})"),
                       path if bare else path + (op,), scope, key=not bare)
            return self._failed(scope, _plain_name(raw, scope) or self._default_name(op, scope))
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
            op, rest = op_keys[0], op_keys[1:]
            if raw[op] is None and op in OPS and all(k in OPS[op].args for k in rest):
                # '- conv2d:' with its arguments on the next lines at the op's own depth
                names = ", ".join(repr(k) for k in rest[:-1]) + " and " * (len(rest) > 1) + repr(rest[-1])
                one = len(rest) == 1
                self.error(f"{names} {'is an argument' if one else 'are arguments'} of {op} but "
                           f"{'sits' if one else 'sit'} beside it; indent {'it' if one else 'them'} under '{op}:' "
                           f"(two more spaces than '{op}')", path + (rest[0],), scope, key=True)
                return None
            self.error(f"layer has several ops ({', '.join(repr(k) for k in op_keys)}); put each op in its own "
                       f"list item", path + (op_keys[1],), scope, key=True)
            return None
        return op_keys[0]

    def _op_from_param(self, raw, key, path, scope, bare):
        """A '$param' in an op's place (``- $act``, ``{$act: null, name: '2'}``) names that op, so one
        block serves stages that differ in their activation. (raw, op); op None after an error."""
        where = path if bare else path + (key,)
        rest = {k: v for k, v in raw.items() if k != key}
        if key[1:] not in scope.params:
            self.substitute(key, scope, where)  # says it is no parameter here, and which there are
            return rest, None
        value = scope.params[key[1:]]
        if not isinstance(value, str) or value not in OPS:
            known = sorted(OPS)
            hint = (suggest(value, known) if isinstance(value, str) else "") or f" (ops: {', '.join(known)})"
            self.error(f"'{key}' stands for an op here, so it must name one, got {describe(value)}" + hint,
                       where, scope, key=not bare)
            return rest, None
        return {value: raw[key], **rest}, value

    def _layer_name(self, name, path, scope):
        """The layer's own name where it gives a valid one; None (after an error where it is not)."""
        if isinstance(name, int) and not isinstance(name, bool) and scope.prefix:
            self.error(f"'name' must be a string, got {name!r}; quote an index: name: \"{name}\"",
                       path + ("name",), scope)
            return None
        if name is not None and not isinstance(name, str):
            self.error(f"'name' must be a string, got {name!r}", path + ("name",), scope)
            return None
        if name is not None and not _name_pattern(scope).match(name):
            self.error(f"layer name {name!r} is not allowed: {self._name_rule(name, scope)}", path + ("name",), scope)
            return None
        return name

    @staticmethod
    def _name_rule(name, scope) -> str:
        rule = ("a name holds only ASCII letters, digits, '_', '.' and '-' (as in 'layer1.0.conv1')" if scope.prefix
                else "a name starts with a letter or '_' and holds only ASCII letters, digits, '_', '.' and '-' "
                "(as in 'layer1.0.conv1')")
        if not scope.prefix and _INDEX.match(name):
            rule += "; a bare index such as '0' names a layer inside a block, after its call's name"
        return rule

    def _failed(self, scope, local=None) -> str:
        """The name of a layer that failed, registered like a layer's but given no node: the layers that
        read it, by 'in' or by default, find it (no invented "comes later"), and the shape pass, which
        knows no shape for it, leaves them unchecked instead of inventing follow-on errors."""
        full = scope.prefix + local if local else None
        if full is None or local in scope.local or local in scope.inputs or full in self.full_names or full == INPUT:
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
        repeat = self.substitute(raw.get("repeat"), scope, path + ("repeat",))
        if "repeat" in raw and repeat is None:
            return None  # a bad expression, said where it is written
        if "first" in raw and repeat is None:
            self.error("'first' only makes sense with 'repeat'", path + ("first",), scope, key=True)
        times, start = 1, 0
        if repeat is not None:
            times, start = self._repeat_counts(repeat, path + ("repeat",), scope)
            if times is None or not self._repeatable(op, path, scope):
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
                declared = _declared_params(self.blocks[op]) if op in self.blocks else OPS[op].args
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
                out = self._call_block(op, local, args, chained, path, scope, "in" in raw)
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

    def _repeatable(self, op, path, scope) -> bool:
        """Copies are each fed by the last alone, so a block that takes several inputs cannot repeat."""
        names = _declared_inputs(self.blocks[op]) if op in self.blocks else None
        if names and len(names) > 1:
            self.error(f"block '{op}' takes {plural(len(names), 'input')} ({', '.join(names)}), so a call of it cannot "
                       f"repeat: each copy would be fed by the last alone; write one call per copy",
                       path + ("repeat",), scope, key=True)
            return False
        return True

    def _repeat_counts(self, repeat, path, scope):
        """(times, start) of ``repeat: N`` or ``repeat: {times: N, start: K}``; (None, None) after an error.
        N is 1 to MAX_LAYERS (a bigger count could never check, and would take long to say so)."""
        def count(value):
            return isinstance(value, int) and not isinstance(value, bool)

        if isinstance(repeat, dict):
            unknown = [k for k in repeat if k not in ("times", "start")]
            for key in unknown:  # each on its own line, as a layer's unknown arguments are
                self.error(f"'repeat' takes 'times' and 'start', not '{key}'" + suggest(key, ["times", "start"]),
                           path + (key,), scope, key=True)
            if unknown:
                return None, None
            if "times" not in repeat:
                self.error("'repeat' needs 'times' (how many copies) beside 'start'", path, scope)
                return None, None
            times, start = repeat["times"], repeat.get("start", 0)
        else:
            times, start = repeat, 0
        if not count(times) or not count(start):
            bad = times if not count(times) else start
            got = shown(bad) if hasattr(bad, "expression") else describe(bad)
            self.error(f"'repeat' must be a count or {{times: N, start: K}} with whole numbers, got {got}",
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
            here = self.doc.loc(path + ("name",) if explicit else path)
            first = self._line_of(self.doc.loc(self.full_names[full]), here)
            self.error(f"layer name '{full}' is used twice (first at {first})",
                       path + ("name",) if explicit else path, scope)
            return None
        if full == "input":
            self.error("'input' is reserved for the spec's input; choose another name", path + ("name",), scope)
            return None
        if local in scope.inputs:
            self.error(f"layer name '{local}' is an input of block '{scope.block}' (its inputs: "
                       f"{', '.join(scope.inputs)}); choose another name", path + ("name",), scope)
            return None
        self.full_names[full] = path
        scope.local[local] = full
        self.items.append(Item(full, op, args, inputs, expect, path, scope.via, explicit, scope.prefix))
        return full

    def _call_block(self, block, local, args, inputs, path, scope, named_in):
        if block in self.stack:
            self.error(f"block '{block}' calls itself (through {' -> '.join(self.stack + [block])})", path, scope)
            return None
        if scope.depth >= MAX_BLOCK_DEPTH:
            self.error(f"blocks nest deeper than {MAX_BLOCK_DEPTH} calls", path, scope, rank=10)  # the cause: first
            return None
        definition = self.blocks[block]
        if not isinstance(definition.definition, dict) or not isinstance(definition.definition.get("layers"), list):
            return None  # the schema reports the broken definition
        names = self._input_names(definition, inputs, path, scope, named_in)
        params = self._call_params(definition, args, path, scope)
        if names is None or params is None:
            return None
        inner = _Scope(scope.prefix + local + ".", dict(zip(names, inputs)), params,
                       ((block, self.doc.loc(path)),) + scope.via, scope.depth + 1, block, parent=scope)
        self.stack.append(block)
        self.called.add(block)
        before, problems_before = len(self.items), len(self.diagnostics)
        out = self.expand_list(definition.definition["layers"], definition.path + ("layers",), inner)
        self.stack.pop()
        if len(self.items) == before and len(self.diagnostics) == problems_before:  # else its layers' errors say why
            self.error(f"block '{block}' expands to no layers here", path, scope)
            return None
        scope.local[local] = out
        return out

    def _input_names(self, block, inputs, path, scope, named_in):
        """The names the block's layers give its inputs (``input``, or those it declares), one per layer
        the call's 'in' names; None after an error that names the call (here) and the block's line."""
        declared = _declared_inputs(block)
        names = declared or ["input"]
        if len(inputs) == len(names):
            return names
        at = self.doc.loc(path + ("in",))
        where = self.doc.loc(block.path + ("inputs",), key=True) if declared else self.doc.loc(block.path, key=True)
        takes = (f"{plural(len(names), 'input')} ({', '.join(names)}; declared at {self._line_of(where, at)})" if declared else
                 f"one input (block at {self._line_of(where, at)})")
        gives = f"'in' names {len(inputs)}" if named_in else \
            "the call gives 1 (the layer before it); name them with 'in: [...]'"
        self.error(f"block '{block.name}' takes {takes}, but {gives}", path + ("in",), scope)
        return None

    def _call_params(self, block, args, path, scope):
        """The call's arguments with the block's defaults; None after an error."""
        declared = _declared_params(block)
        name = block.name
        if args is None:
            args = {}
        if not isinstance(args, dict):
            self.error(f"a call of block '{name}' takes its parameters as a mapping, got {args!r}", path + (name,), scope)
            return None
        for key in args:
            if key not in declared:
                self.error(f"block '{name}' has no parameter '{key}'" + (suggest(key, declared) or
                           f" (it takes: {', '.join(declared) or 'none'})"), path + (name, key), scope, key=True)
                return None
        for key, default in declared.items():
            if key not in args and default is None:
                self.error(f"block '{name}' needs parameter '{key}'", path + (name,), scope)
                return None
        params = {**{k: v for k, v in declared.items() if v is not None and not is_expression(v)}, **args}
        for key, default in declared.items():  # a default over the parameters before it: {c: null, hidden: "$c * 6"}
            if key not in args and is_expression(default):
                own = _Scope(scope.prefix, {}, dict(params), scope.via, scope.depth, name)
                value = self.substitute(default, own, block.path + ("params", key))
                if value is None:
                    return None
                params[key] = value
        return params

    @staticmethod
    def _line_of(loc, here) -> str:
        """'line 12' in the file of ``here``; 'lib.yaml:12' in another (a block from an imported file)."""
        return f"line {loc.line}" if loc.file == here.file else f"{loc.file}:{loc.line}"


def _quoted(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


def _declared_params(block) -> dict:
    params = block.definition.get("params")
    return params if isinstance(params, dict) else {}


def _declared_inputs(block) -> list | None:
    """A block's declared input names; None where it declares none (one input, called 'input')."""
    names = block.definition.get("inputs")
    valid = isinstance(names, list) and names and all(isinstance(n, str) for n in names)
    return list(names) if valid else None


def expand(doc) -> tuple[list[Item], list[Diagnostic]]:
    expander = Expander(doc)
    items = expander.expand()
    return items, expander.diagnostics
