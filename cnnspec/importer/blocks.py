"""Block folding: repeated subgraphs of the imported layers become blocks of the language.

An *instance* is a run of consecutive layers whose names share a prefix (``layer1.0.conv1`` ...
``layer1.0.relu``: the instance ``layer1.0``), read from outside through one value (or several: a
block with ``inputs``) and read back only through its last layer. Instances with the same layers
(local names, ops, wiring) form a group; the argument values that differ between them become the
block's parameters. A group whose layers are a subset of another's (ResNet's bottleneck without its
``downsample``, an inverted residual without its ``add``) merges into it behind a boolean parameter
and ``when``. Groups are chosen greedily by the layers they save, without overlap. Consecutive
instances ``X.k``, ``X.k+1``... of a block, each fed by the last, become one call with ``repeat``
(and ``first:`` where only the first differs); the rest are calls named by their prefix. The block's
layers keep their local names, so the expanded spec's names (and weight keys) are the flat spec's.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from ..graph.ops import ACTIVATIONS, OPS

MIN_LAYERS = 2
OP_PARAM = "act"   # the parameter's name where copies differ in an activation op
IDENT = re.compile(r"[^A-Za-z0-9_]")
INDEX = re.compile(r"[0-9]+\Z")


@dataclass
class Instance:
    prefix: str
    start: int
    stop: int                   # exclusive
    locals: tuple
    externals: tuple            # the names it reads from outside, in order
    refs: tuple                 # per layer: its inputs as local names or ('@', k) for the k-th external


@dataclass
class Group:
    layers: list                # (local, op, refs, when): the block's layer list
    instances: list
    flags: dict = field(default_factory=dict)   # id(instance) -> the flag's value (merged groups)
    flag: str | None = None
    position_param: dict = field(default_factory=dict)   # (local, argument) -> the parameter it reads

    @property
    def saved(self) -> int:
        return sum(i.stop - i.start for i in self.instances) - len(self.layers) - len(self.instances)


def _candidates(names: list, ins: list, outputs: set) -> list:
    spans: dict = {}
    for k, name in enumerate(names):
        parts = name.split(".")
        for d in range(1, len(parts)):
            p = ".".join(parts[:d])
            first, last, count = spans.get(p, (k, k, 0))
            spans[p] = (first, k, count + 1)
    readers: dict = {}
    for k, inputs in enumerate(ins):
        for i in inputs:
            readers.setdefault(i, []).append(k)
    out = []
    for p, (first, last, count) in spans.items():
        if count != last - first + 1 or count < MIN_LAYERS:
            continue
        inst = _instance(p, first, last + 1, names, ins, readers, outputs)
        if inst is not None:
            out.append(inst)
    return out


def _instance(p, start, stop, names, ins, readers, outputs):
    members = set(names[start:stop])
    locals_ = tuple(n[len(p) + 1:] for n in names[start:stop])
    externals, refs = [], []
    for k in range(start, stop):
        row = []
        for i in ins[k]:
            if i in members:
                row.append(i[len(p) + 1:])
            else:
                if i not in externals:
                    externals.append(i)
                row.append(("@", externals.index(i)))
        refs.append(tuple(row))
        if k < stop - 1 and (names[k] in outputs or any(r < start or r >= stop for r in readers.get(names[k], ()))):
            return None
    if not externals or "input" in locals_ or any(l in ("x", "skip") for l in locals_):
        return None
    return Instance(p, start, stop, locals_, tuple(externals), tuple(refs))


def _op_class(op: str) -> str:
    """Activations without arguments stand in for each other (a block takes the op as ``$act``:
    MobileNetV3's relu and hard-swish stages); every other op is itself."""
    return "<activation>" if op in ACTIVATIONS and not OPS[op].args else op


def _key(inst: Instance, ops: list) -> tuple:
    classes = [_op_class(op) for op in ops[inst.start:inst.stop]]
    return tuple(zip(inst.locals, classes, inst.refs)) + (len(inst.externals),)


def _groups(instances: list, ops: list) -> list:
    by_key: dict = {}
    for inst in instances:
        by_key.setdefault(_key(inst, ops), []).append(inst)
    # a group of one instance stays: it may be the variant another group merges into (a stage's first block)
    return [Group([(l, ops[insts[0].start + k], r, None) for k, (l, _c, r) in enumerate(key[:-1])], insts)
            for key, insts in by_key.items()]


def _merge(big: Group, small: Group) -> Group | None:
    """``small``'s layers a subsequence of ``big``'s (same locals and ops): one block with a flag."""
    if big.flag or small.flag or len(big.instances[0].externals) != 1 or len(small.instances[0].externals) != 1:
        return None
    small_rows = {l: (o, r) for l, o, r, _ in small.layers}
    big_locals = [l for l, _, _, _ in big.layers]
    order = [l for l in big_locals if l in small_rows]
    if order != [l for l, _, _, _ in small.layers] or len(order) == len(big_locals):
        return None
    extra = [l for l in big_locals if l not in small_rows]
    flag = "with_" + IDENT.sub("_", extra[0].split(".")[0])
    if not flag[5:] or flag[5].isdigit():
        flag = "with_" + IDENT.sub("_", extra[0])
    rows = []
    for local, op, refs, _ in big.layers:
        if local not in small_rows:
            rows.append((local, op, refs, f"${flag}"))
            continue
        s_op, s_refs = small_rows[local]
        if _op_class(s_op) != _op_class(op):
            return None
        if s_refs == refs:
            rows.append((local, op, refs, None))
        else:
            rows.append((local, op, refs, f"${flag}"))
            rows.append((local, op, s_refs, f"not ${flag}"))
    merged = Group(rows, big.instances + small.instances, flag=flag)
    merged.flags = {**{id(i): True for i in big.instances}, **{id(i): False for i in small.instances}}
    return merged


def _choose(groups: list, n: int) -> list:
    """Greedy by layers saved; a chosen group's instances take their layers, and overlapping
    instances of other groups drop out (a group left with one instance is no block)."""
    taken = [False] * n
    chosen = []
    pool = list(groups)
    while pool:
        for g in pool:
            g.instances = [i for i in g.instances if not any(taken[i.start:i.stop])]
        pool = [g for g in pool if len(g.instances) >= 2 and g.saved > 0
                and (not g.flag or len({g.flags[id(i)] for i in g.instances}) == 2)]
        if not pool:
            break
        best = max(pool, key=lambda g: (g.saved, -g.instances[0].start))
        pool.remove(best)
        best.instances.sort(key=lambda i: i.start)
        for i in best.instances:
            taken[i.start:i.stop] = [True] * (i.stop - i.start)
        chosen.append(best)
    return chosen


def _args(layers, k: int) -> dict:
    """Layer ``k``'s arguments with every default the op has filled, so values compare."""
    layer = layers[k]
    full = {key: arg.default for key, arg in OPS[layer.op].args.items() if not arg.required and arg.default is not None}
    full.update(layer.args)
    return full


def _block_name(group: Group, taken: set) -> str:
    """From the names: the locals' common first component (``double_conv``), else the prefix's last
    word (``layer1.0`` -> ``layer``, made ``layer_block``)."""
    heads = {local.split(".")[0] for local, *_ in group.layers}
    parts = [p for p in group.instances[0].prefix.split(".") if not INDEX.match(p)]
    if len(heads) == 1 and not INDEX.match(next(iter(heads))):
        parts = [next(iter(heads))]
    base = re.sub(r"_?[0-9]+[a-z]?\Z", "", IDENT.sub("_", parts[-1] if parts else "block")) or "block"  # inception3a
    if base.endswith("s") and not base.endswith("ss"):
        base = base[:-1]                       # 'blocks.0' is one block
    if base[0].isdigit():
        base = "block_" + base
    if base in ("layer", "feature", "stage", "unit"):  # a container's name: say what it holds
        base = f"{base}_block"
    name, k = base, 2
    while name in OPS or name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def fold_blocks(layers: list, entries: list, source, output_names=()) -> tuple[list, dict]:
    names = [l.name for l in layers]
    value_name = {source.input: "input", **{l.output: l.name for l in layers}}
    ins = [[value_name[v] for v in l.inputs] for l in layers]
    ops = [l.op for l in layers]
    groups = _groups(_candidates(names, ins, set(output_names)), ops)
    merged = []
    stems = [{_split_index(i.prefix)[0] for i in g.instances} - {None} for g in groups]
    for b, big in enumerate(groups):
        for s, small in enumerate(groups):
            if big is not small and len(small.layers) < len(big.layers) and stems[b] & stems[s]:
                m = _merge(big, small)
                if m is not None:
                    merged.append(m)
    # the merged groups go first: equal savings pick the one block over its parts
    chosen = _choose(merged + [g for g in groups if len(g.instances) >= 2], len(layers))
    if not chosen:
        return entries, {}
    blocks: dict = {}
    starts: dict = {}
    taken: set = set()
    for group in chosen:
        name = _block_name(group, taken)
        params, per_instance = _parameters(group, layers)
        blocks[name] = _block(group, layers, params)
        for inst in group.instances:
            starts[inst.start] = (name, group, inst, per_instance[id(inst)], params)
    return _calls(entries, starts, layers, source), blocks


def _parameters(group: Group, layers) -> tuple[dict, dict]:
    """The (local, argument) positions whose values differ between instances, one parameter per
    distinct column of values; each parameter's default is its most common value."""
    insts = group.instances
    columns: dict = {}
    by_local = [{local: inst.start + k for k, local in enumerate(inst.locals)} for inst in insts]
    for local, op, _refs, _when in group.layers:
        if (local, None) in columns:
            continue
        keys = set()
        rows = [by_local[j].get(local) for j in range(len(insts))]
        for r in rows:
            if r is not None:
                keys.update(_args(layers, r))
        kinds = tuple(layers[r].op if r is not None else None for r in rows)
        if len({k for k in kinds if k is not None}) > 1:
            columns[(local, OP_PARAM)] = kinds   # the op itself differs: a parameter in its place
        for key in sorted(keys):
            values = tuple(_args(layers, r).get(key) if r is not None else None for r in rows)
            present = [v for v, r in zip(values, rows) if r is not None]
            if len({repr(v) for v in present}) > 1:
                columns[(local, key)] = values
        columns[(local, None)] = None
    columns = {k: v for k, v in columns.items() if k[1] is not None}
    params: dict = {}          # name -> (default, values)
    position_param: dict = {}
    used_names = Counter(key for _local, key in columns)
    by_values: dict = {}
    for (local, key), values in columns.items():
        found = by_values.get((key, values)) or next(
            (p for p, (_d, vs) in params.items() if all(v is None or v == w for v, w in zip(values, vs))
             and all(w is not None for v, w in zip(values, vs) if v is not None)), None)
        if found is None:
            base = key if used_names[key] == 1 else f"{IDENT.sub('_', local)}_{key}"
            pname = base if not base[0].isdigit() else f"p_{base}"
            while pname in params:
                pname += "_"
            present = [v for v in values if v is not None]
            default = Counter(repr(v) for v in present).most_common(1)[0][0]
            params[pname] = (next(v for v in present if repr(v) == default), values)
            by_values[(key, values)] = pname
            found = pname
        position_param[(local, key)] = found
    param_key: dict = {}
    for (_l, k), p in position_param.items():
        param_key.setdefault(p, k)   # named after the first position that reads it (filters before groups)
    per_key = Counter(param_key.values())
    renames = {p: k for p, k in param_key.items() if per_key[k] == 1 and p != k and k not in params}
    params = {renames.get(p, p): v for p, v in params.items()}
    position_param = {pos: renames.get(p, p) for pos, p in position_param.items()}
    if group.flag:
        values = tuple(group.flags[id(i)] for i in insts)
        default = Counter(values).most_common(1)[0][0]
        params[group.flag] = (default, values)
    per_instance = {}
    for j, inst in enumerate(insts):
        per_instance[id(inst)] = {p: values[j] for p, (_d, values) in params.items() if values[j] is not None}
    group.position_param = position_param
    return params, per_instance


def _block(group: Group, layers, params: dict) -> dict:
    """The block's text: parameters with defaults, layers by local name, ``in`` where a layer does
    not read the one before it, ``when`` on a merged group's optional layers."""
    first = group.instances[0]
    several = len(first.externals) > 1
    inputs = (["x", "skip"] + [f"x{k}" for k in range(3, len(first.externals) + 1)])[:len(first.externals)]
    sample = {}
    for inst in group.instances:
        for k, local in enumerate(inst.locals):
            sample.setdefault(local, inst.start + k)
    rows, previous, conditional = [], None, False
    for local, op, refs, when in group.layers:
        k = sample[local]
        args = {}
        for key, value in layers[k].args.items():
            args[key] = value
        for key in _args(layers, k):
            pname = group.position_param.get((local, key))
            if pname is not None:
                args[key] = f"${pname}"
        op_param = group.position_param.get((local, OP_PARAM))
        entry = {f"${op_param}" if op_param else op: args or None, "name": local}
        names = [r if isinstance(r, str) else (inputs[r[1]] if several else "input") for r in refs]
        default_prev = previous if previous is not None else (inputs[0] if several else "input")
        if names != [default_prev] or when or conditional:
            entry["in"] = names[0] if len(names) == 1 else names
        if when:
            entry["when"] = when
        rows.append(entry)
        previous, conditional = local, bool(when)
    block = {"params": {p: d for p, (d, _v) in params.items()}, "layers": rows}
    if several:
        block["inputs"] = inputs
    return block


def _calls(entries: list, starts: dict, layers, source) -> list:
    out, k, previous = [], 0, "input"
    while k < len(entries):
        if k not in starts:
            entry = dict(entries[k])
            out.append(entry)
            previous = entry["name"]
            k += 1
            continue
        name, group, inst, values, params = starts[k]
        run = [(inst, values)]
        stem, index = _split_index(inst.prefix)
        nxt = inst.stop
        while stem is not None and len(inst.externals) == 1 and nxt in starts:
            n_name, _g, n_inst, n_values, _p = starts[nxt]
            n_stem, n_index = _split_index(n_inst.prefix)
            if n_name != name or n_stem != stem or n_index != index + len(run) \
                    or n_inst.externals != (layers[run[-1][0].stop - 1].name,):
                break
            run.append((n_inst, n_values))
            nxt = n_inst.stop
        for segment in _segments(run, params):
            seg_index = _split_index(segment[0][0].prefix)[1]
            out.extend(_call_entries(name, segment, params, stem, seg_index, previous, layers, source))
            previous = layers[segment[-1][0].stop - 1].name
        k = run[-1][0].stop
    return out


def _segments(run: list, params: dict) -> list:
    """A run of consecutive copies cut into calls: each a first copy and the copies after it that
    all take the same arguments (a stage: its first block strides or projects, the rest repeat)."""
    out, i = [], 0
    while i < len(run):
        j = i + 1
        while j + 1 < len(run) and repr(run[j + 1][1]) == repr(run[i + 1][1]):
            j += 1
        j = min(j, len(run) - 1)
        out.append(run[i:j + 1])
        i = j + 1
    return out


def _split_index(prefix: str):
    stem, _, last = prefix.rpartition(".")
    return (stem, int(last)) if stem and INDEX.match(last) else (None, None)


def _call_entries(name, run, params, stem, index, previous, layers, source):
    defaults = {p: d for p, (d, _v) in params.items()}

    def args_of(values):
        return {p: v for p, v in values.items() if repr(v) != repr(defaults[p])}

    def expect(inst):
        return source.sample(layers[inst.stop - 1].output)

    def with_in(entry, inst):
        ext = list(inst.externals)
        if ext != [previous]:
            entry["in"] = ext[0] if len(ext) == 1 else ext
        return entry

    later = [args_of(v) for _i, v in run[1:]]
    if len(run) >= 2 and all(repr(a) == repr(later[0]) for a in later):
        first_args = args_of(run[0][1])
        entry = {name: later[0] or None, "name": stem}
        entry["repeat"] = len(run) if index == 0 else {"times": len(run), "start": index}
        first = {p: v for p, v in run[0][1].items() if repr(v) != repr({**defaults, **later[0]}[p])}
        if first:
            entry["first"] = first
        del first_args
        entry = with_in(entry, run[0][0])
        entry["expect"] = expect(run[-1][0])
        return [entry]
    out = []
    for inst, values in run:
        entry = with_in({name: args_of(values) or None, "name": inst.prefix}, inst)
        entry["expect"] = expect(inst)
        out.append(entry)
        previous = layers[inst.stop - 1].name
    return out
