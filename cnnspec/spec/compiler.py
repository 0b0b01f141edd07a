"""From a parsed document to a checked graph: validate, expand, build nodes, infer shapes.

Every stage yields diagnostics instead of stopping at the first, so one run reports every
error in the file; a stage that finds structural problems stops the later stages that would
only repeat them.
"""
from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache

from ..errors import Diagnostic, SpecError, plural
from ..graph.ir import INPUT, Graph, Node, frozen_attrs
from ..graph.ops import OPS, Inferred, ShapeProblem, fmt_shape
from .expansion import Expander, Item, _Scope
from .expressions import Evaluated, shown
from .parameters import NO_CHOICE, Choice, resolve, resolved_data
from .schema import validate
from .suggestions import suggest

RANK_SCHEMA, RANK_LAYER, RANK_SHAPE, RANK_EXPECT = 10, 20, 30, 40


def canonical_json(data) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _args_as_mapping(op_def, item: Item, doc, diags) -> dict | None:
    """The three spellings of arguments (null, a scalar for the primary one, a mapping) as one mapping."""
    args = item.args
    if args is None:
        return {}
    if isinstance(args, dict):
        return args
    if op_def.primary:
        return {op_def.primary: args}
    diags.append(Diagnostic(f"{item.name}: {item.op} takes no arguments; write '- {item.op}'",
                            doc.loc(item.path + (item.op,)), rank=RANK_LAYER))
    return None


def _check_expect(item: Item, doc, diags):
    e = item.expect
    if e is None:
        return None
    if (isinstance(e, list) and 1 <= len(e) <= 3
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in e)):
        return tuple(e)
    diags.append(Diagnostic(f"{item.name}: 'expect' must be a shape such as [64, 8, 8] or [10], got {e!r}",
                            doc.loc(item.path + ("expect",)), rank=RANK_LAYER))
    return None


@lru_cache(maxsize=None)
def _arg_check(op: str, key: str):
    from .fastschema import compile_schema

    return compile_schema(OPS[op].args[key].schema)


def _whole(value):
    """``value`` with every expression's fraction rounded away: what a whole-number slot would take."""
    if isinstance(value, Evaluated):
        return round(value)
    if isinstance(value, list):
        return [_whole(v) for v in value]
    return value


def _plain(value):
    if isinstance(value, Evaluated):
        return float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _fractions(value) -> list:
    if isinstance(value, Evaluated):
        return [value]
    return [f for v in value for f in _fractions(v)] if isinstance(value, list) else []


def _not_whole(item: Item, op_def, args: dict, doc) -> list[Diagnostic]:
    """An expression that gave a fraction where the argument takes a whole number: said with the
    expression and its value (the schema alone would show only the number)."""
    out = []
    for key, value in args.items():
        fractions = _fractions(value)
        if not fractions or key not in op_def.args:
            continue
        check = _arg_check(op_def.name, key)
        if not check(value) and check(_whole(value)):
            shown_all = ", ".join(f"'{f.expression}' is {float(f)!r}" for f in fractions)
            out.append(Diagnostic(f"{item.name}: {item.op} '{key}' takes a whole number, but {shown_all}",
                                  fractions[0].where or doc.loc(item.path + (item.op, key)), rank=RANK_LAYER))
    return out


def _build_node(item: Item, doc, diags) -> Node | None:
    """One item's node, or None after the errors (added to diags) that keep it from being one."""
    op_def = OPS[item.op]
    args = _args_as_mapping(op_def, item, doc, diags)
    if args is None:
        return None
    base = item.path + (item.op,)  # for a scalar primary argument, positions fall back to the scalar
    problems = _not_whole(item, op_def, args, doc)
    if problems:
        diags += problems
        return None
    args = _plain(args)  # an expression's float, as a plain float from here on
    problems = validate(args, f"op:{item.op}", doc, base, subject=item.name, rank=RANK_LAYER)
    diags += problems
    if problems:
        return None
    n_in = len(item.inputs)
    if n_in < op_def.min_inputs:
        diags.append(Diagnostic(f"{item.name}: {item.op} needs 'in' to name at least {plural(op_def.min_inputs, 'layer')}, "
                                f"got {n_in}", doc.loc(item.path), rank=RANK_LAYER))
        return None
    if op_def.max_inputs is not None and n_in > op_def.max_inputs:
        diags.append(Diagnostic(f"{item.name}: {item.op} takes one input but 'in' names {n_in}",
                                doc.loc(item.path + ("in",)), rank=RANK_LAYER))
        return None
    attrs = op_def.normalize(args)
    # op_def.name, not item.op: an alias (swish) is read as its op's own name (silu)
    return Node(item.name, op_def.name, item.inputs, frozen_attrs(attrs), _check_expect(item, doc, diags),
                doc.loc(item.path), item.via, item.scope)


def build_nodes(items: list[Item], doc) -> tuple[list[Node], list[Diagnostic]]:
    diags: list[Diagnostic] = []
    nodes = []
    for item in items:
        found: list[Diagnostic] = []
        node = _build_node(item, doc, found)
        diags += [replace(d, via=item.via, call=item.scope) for d in found]  # the call that led here
        if node is not None:
            nodes.append(node)
    return nodes, diags


def infer_shapes(input_shape, nodes: list[Node], calls=None) -> tuple[list[Node], list[Diagnostic]]:
    """The shape pass. After a wrong ``expect`` it goes on with the author's shape, so the error is
    reported where the author's belief first goes wrong and not again at every later layer.
    ``calls`` maps a layer to the name prefix of the block call that made it (see ``said_once``)."""
    calls = calls or {}
    shapes = {INPUT: tuple(input_shape)}
    out, diags = [], []
    for node in nodes:
        if any(i not in shapes for i in node.inputs):
            out.append(node)  # an input failed already; reporting again would only repeat it
            continue
        try:
            result: Inferred = OPS[node.op].infer(node.attrs, [shapes[i] for i in node.inputs])
        except ShapeProblem as problem:
            diags.append(Diagnostic(f"{node.name}: {problem}", node.location, node.via, rank=RANK_SHAPE,
                                    call=calls.get(node.name, "")))
            out.append(node)
            continue
        node = node.with_(shape=result.shape, pads=result.pads, params=result.params, macs=result.macs)
        shapes[node.name] = result.shape
        if node.expect is not None and node.expect != result.shape:
            diags.append(Diagnostic(f"{node.name}: output is {fmt_shape(result.shape)}, but expect says "
                                    f"{fmt_shape(node.expect)}", node.location, node.via, rank=RANK_EXPECT,
                                    call=calls.get(node.name, "")))
            shapes[node.name] = node.expect
        out.append(node)
    return out, diags


def compile_document(doc, choice: Choice = NO_CHOICE) -> tuple[Graph | None, list[Diagnostic]]:
    """The whole front end; returns the graph (None when it could not be built) and every problem.
    ``choice``: the command line's ``--scale``/``--set`` (a choice the spec does not offer raises
    UsageError)."""
    data = doc.data
    if not isinstance(data, dict):
        return None, list(doc.problems) + [Diagnostic(
            "a spec must be a mapping with 'cnnspec', 'name', 'input' and 'layers'", doc.loc(()), rank=0)]
    diags = list(doc.problems) + validate(data, "document", doc, rank=RANK_SCHEMA)
    resolved, param_diags = resolve(doc, choice)
    diags += param_diags
    if param_diags:  # a layer reading a broken parameter would only repeat the error
        return None, diags
    expander = Expander(doc, resolved.values)
    input_shape = _input_shape(data.get("input"), expander)
    diags += expander.diagnostics
    expander.diagnostics = []
    if data.get("cnnspec") != 1 or not isinstance(data.get("layers"), list) or not _valid_input(input_shape):
        return None, diags
    items, expand_diags = expander.expand(), expander.diagnostics
    nodes, build_diags = build_nodes(items, doc)
    diags += expand_diags + build_diags
    nodes, shape_diags = infer_shapes(input_shape, nodes, {item.name: item.scope for item in items})
    diags += shape_diags
    outputs, output_diags = resolve_outputs(data.get("outputs"), [item.name for item in items], nodes, doc,
                                            expander.top_level_names(), expander.left_out)
    diags += output_diags
    classes = data.get("classes")
    by_name = {n.name: n for n in nodes}
    last = by_name[outputs[0]] if outputs else None
    if isinstance(classes, list) and last is not None and last.shape is not None:
        if len(last.shape) != 1 or last.shape[0] != len(classes):
            diags.append(Diagnostic(f"'classes' has {plural(len(classes), 'label')} but the output is {fmt_shape(last.shape)}",
                                    doc.loc(("classes",), key=True), rank=RANK_EXPECT))
    graph = Graph(
        name=data.get("name") if isinstance(data.get("name"), str) else "",
        input_shape=tuple(input_shape),
        nodes=tuple(nodes),
        outputs=outputs,
        classes=tuple(classes) if isinstance(classes, list) and all(isinstance(c, str) for c in classes) else None,
        input_location=doc.loc(("input",)),
        description=data.get("description") if isinstance(data.get("description"), str) else None,
        # imported blocks written in, and the chosen parameter values as its params
        canonical_spec=canonical_json(resolved_data(expander.self_contained(data), resolved)),
        file=doc.file,
        scale=resolved.scale,
        parameters=tuple(resolved.values.items()),
    )
    return graph, said_once(diags)


def resolve_outputs(listed, names: list[str], nodes: list[Node], doc, calls=None,
                    left_out=frozenset()) -> tuple[tuple[str, ...], list[Diagnostic]]:
    """The spec's ``outputs`` as layer names, in order (default: the last layer alone), and an error
    at each entry that names no layer of ``names`` (the expanded layers; with the nearest name) or
    names one a second time. A block call's name stands for its last layer, as in ``in`` (``calls``:
    top-level name -> layer); an entry naming a layer or call that ``when`` left out (``left_out``)
    is left out too, so a head behind a parameter is an output only where it exists. The schema has
    already said what is wrong with a value that is no list of strings. Only layers that became
    nodes are returned (the others have errors already)."""
    default = (nodes[-1].name,) if nodes else ()
    if not isinstance(listed, list) or not listed or not all(isinstance(v, str) for v in listed):
        return default, []
    kept = [name for name in listed if name not in left_out]
    if not kept:
        return default, [Diagnostic("outputs: 'when' leaves out every layer listed here; keep one of them, or "
                                    "list another", doc.loc(("outputs",)), rank=RANK_LAYER)]
    positions = [k for k, name in enumerate(listed) if name not in left_out]  # for the errors' locations
    listed = kept
    calls = {k: v for k, v in (calls or {}).items() if k != INPUT}
    listed = [name if name in set(names) else calls.get(name, name) for name in listed]
    known, seen, diags = set(names), {}, []
    for k, name in enumerate(listed):
        where = doc.loc(("outputs", positions[k]))
        if name == INPUT:
            diags.append(Diagnostic("outputs: 'input' is the spec's input, not a layer; list layers the model "
                                    "computes", where, rank=RANK_LAYER))
        elif name not in known:
            hint = suggest(name, list(dict.fromkeys([*calls, *names]))) or (
                f" (its last layer is '{names[-1]}')" if names else "")
            diags.append(Diagnostic(f"outputs: '{name}' is no layer of the spec{hint}", where, rank=RANK_LAYER))
        elif name in seen:
            diags.append(Diagnostic(f"outputs: '{name}' is listed twice (entries {positions[seen[name]] + 1} and "
                                    f"{positions[k] + 1}); "
                                    f"list each output once", where, rank=RANK_LAYER))
        else:
            seen[name] = k
    built = {n.name for n in nodes}
    kept = tuple(dict.fromkeys(name for name in listed if name in built))
    return kept or default, diags


def said_once(diags: list[Diagnostic]) -> list[Diagnostic]:
    """An error in a block's text that several calls reach, said once, with how many calls reach it.
    Errors that differ per call (a shape that depends on the call's arguments) stay one per call: the
    key is the message with the call's name prefix taken out, at the same place."""
    groups: dict = {}
    for d in diags:
        key = (d.location, d.rank, d.severity, d.message.replace(d.call, "\0")) if d.call else id(d)
        groups.setdefault(key, []).append(d)
    return [_merged(group) for group in groups.values()]


def _merged(group: list[Diagnostic]) -> Diagnostic:
    calls = len({d.call for d in group})
    return group[0] if calls == 1 else replace(group[0], calls=calls)


def _input_shape(value, expander):
    """The spec's ``input`` with its expressions evaluated over the spec's parameters."""
    if not isinstance(value, list):
        return value
    top = _Scope("", {"input": INPUT}, expander.params, ())
    shape = []
    for i, v in enumerate(value):
        got = expander.substitute(v, top, ("input", i))
        if isinstance(v, str) and got is not None and not _side(got):
            expander.error(f"input: a side must be a whole number from 1 to 1000000, but '{v}' is {_bare(got)}",
                           ("input", i), top)
        shape.append(got)
    return shape


def _bare(value) -> str:
    return repr(float(value)) if isinstance(value, Evaluated) else shown(value)


def _side(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 1_000_000


def _valid_input(value) -> bool:
    return isinstance(value, list) and len(value) == 3 and all(_side(v) for v in value)


def compile_checked(doc, choice: Choice = NO_CHOICE) -> Graph:
    graph, diags = compile_document(doc, choice)
    if diags or graph is None:
        raise SpecError(diags or [Diagnostic("spec could not be compiled", doc.loc(()))])
    return graph
