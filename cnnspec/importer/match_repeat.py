"""Nearest upsampling spelt as data movement: tf2onnx writes Keras' ``UpSampling2D`` (Keras 3's
``ops.repeat`` per axis) as ``Unsqueeze -> Tile -> [Transpose] -> Reshape`` twice, with transposes
between layouts. Such a chain is a fixed permutation of its input's values, so running it once on
a probe of distinct values (numpy, the constant folder's own evaluators) proves, or disproves, that
it equals ``upsample2d`` by an integer scale; nothing is guessed from op types or names."""
from __future__ import annotations

from .constfold import FOLDERS
from .matcher import Matcher, _np, compact_pair
from .reader import ONode, refuse

UPSAMPLING = ("nearest upsampling as tf2onnx writes Keras' UpSampling2D: Unsqueeze -> Tile -> Reshape per "
              "axis (transposes between), by integer factors")
MOVES = ("Unsqueeze", "Tile", "Transpose", "Reshape")
LONGEST = 12   # nodes in one chain (two repeats with their transposes take 8)
PROBE_MAX = 1 << 22   # elements of a probe's largest value (float64: 32 MiB); a larger map is not probed


def _tile(node: ONode, values, source):
    reps = [int(r) for r in _np().asarray(values[1]).reshape(-1)]
    x = _np().asarray(values[0])
    if len(reps) != x.ndim or any(r < 1 for r in reps) or x.size * int(_np().prod(reps)) > PROBE_MAX:
        raise ValueError("not a tiling this probe runs")
    return _np().tile(x, reps)


RUN = {**{op: FOLDERS[op] for op in ("Unsqueeze", "Transpose", "Reshape")}, "Tile": _tile}


def _probe(m: Matcher, chain, x):
    """The chain's output for input ``x``, or None where a node's other inputs are not constants."""
    value = x
    for node in chain:
        rest = [m.const(i) if i else None for i in node.inputs[1:]]
        if any(i and r is None for i, r in zip(node.inputs[1:], rest)):
            return None
        try:
            value = RUN[node.op](node, [value, *rest], m.source)
        except (ValueError, IndexError, TypeError):
            return None
    return value


def match_repeat_upsample(m: Matcher, node: ONode) -> bool:
    """An Unsqueeze starting a chain of sole-reader data moves with a Tile in it, whose output (at
    some node of the chain) is the input's map repeated ``s`` times along rows and ``t`` along
    columns: one ``upsample2d`` (nearest, scale [s, t]) standing for every node of the chain."""
    np = _np()
    x = m.value(node.inputs[0])
    shape = m.sample(x)
    if shape is None or len(shape) != 3 or m.const(x) is not None or x in m.as_map:
        return False
    chain, found = [node], None
    while len(chain) < LONGEST:
        nxt = m.sole_consumer(chain[-1].outputs[0], MOVES)
        if nxt is None or nxt.inputs[0] != chain[-1].outputs[0]:
            break
        chain.append(nxt)
    if not any(n.op == "Tile" for n in chain):
        return False
    c, h, w = shape
    if c * h * w > PROBE_MAX:
        return False
    probe = np.arange(c * h * w, dtype=np.float64).reshape(1, c, h, w)
    for k in range(len(chain), 0, -1):      # the longest chain that is an upsampling
        out = m.sample(chain[k - 1].outputs[0])
        if out is None or len(out) != 3 or out[0] != c or out[1] % h or out[2] % w or (out[1], out[2]) == (h, w):
            continue
        s, t = out[1] // h, out[2] // w
        got = _probe(m, chain[:k], probe)
        if got is not None and got.shape == (1, *out) \
                and np.array_equal(got, probe.repeat(s, axis=2).repeat(t, axis=3)):
            found = k
            break
    if found is None:
        tile = next(n for n in chain if n.op == "Tile")
        raise refuse(m.source, tile, "repeats values in an order no upsampling of a map has (the chain from "
                     f"'{node.name}' checked on a probe)", UPSAMPLING)
    m.emit("upsample2d", {"scale": compact_pair((s, t))}, [m.data_input(node)], chain[found - 1].outputs[0], node,
           nodes=tuple(chain[:found]))
    return True
