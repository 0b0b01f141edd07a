"""Fine-tuning: ``--init`` from weights trained for another head, ``--freeze``/``--freeze-until``
and ``--lr-backbone``, framework-free.

Weights whose shapes differ only in the classifier head (:func:`cnnspec.weights.partial.head_layers`:
the last dense or conv layer and the weighted layers after it) load everywhere else, and the head
starts from the seed's initial weights, said in one line. Any other mismatch (a backbone tensor of
another shape, a missing or an extra tensor) is refused, listed, unless ``--allow-partial``, which
starts those fresh too and lists them. What loaded and what was frozen go in metrics.json.

Frozen layers are resolved here, by name: a layer, a block (every call of it) or a block call (a
name prefix such as ``layer1`` or ``layer1.0``); the backend's trainer keeps their weights out of
the optimizer and out of the gradient, and runs their batchnorms in inference mode.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InputError, UsageError
from ..graph.ir import Graph


@dataclass(frozen=True)
class InitPlan:
    """The initial weights (every tensor of the graph) and what metrics.json says about them."""

    weights: dict = field(repr=False)
    record: dict = field(default_factory=dict)
    note: str = ""


def read_matching(path, graph: Graph, say=None):
    """(the file's tensors whose name and shape fit the spec, checked float32 arrays by neutral name;
    the names the file holds that the spec has no place for; a function phrasing, for given names,
    what is wrong with each). The one place ``--init`` reads a file, in every format ``build
    --weights`` reads (``cnnspec.backend.weightfiles``), compared by ``weights.match.compare``."""
    from ..backend.weightfiles import read_matching as read_what_matches

    fitting, comparison = read_what_matches(path, graph, say)
    unexpected = tuple(m.key for m in comparison.unexpected)

    def problems(keys) -> list[str]:  # in the comparison's order: wrong shapes, missing, unexpected
        keys = set(keys)
        known = [m for m in comparison.misfits if m.key in keys]
        return [m.phrase() for m in known] + [f"'{k}' does not fit" for k in sorted(keys - {m.key for m in known})]

    return fitting, unexpected, problems


def initial_weights(init, graph: Graph, seeded, allow_partial: bool = False, say=None) -> InitPlan:
    """``init``'s tensors where they fit, the head fresh where only it differs (``seeded()`` gives
    the seed's initial weights, made only when needed)."""
    from ..weights.neutral import expected_weights
    from ..weights.partial import head_layers, listed

    loaded, unexpected, problems = read_matching(init, graph, say)
    expected = expected_weights(graph)
    head = head_layers(graph)
    fresh = [k for k in expected if k not in loaded]  # missing from the file, or of another shape
    fresh_head = sorted(k for k in fresh if k.rsplit(".", 1)[0] in head)
    other = sorted(k for k in fresh if k.rsplit(".", 1)[0] not in head)
    if (other or unexpected) and not allow_partial:
        raise InputError(f"{init}: does not fit spec '{graph.name}' beyond its head ({', '.join(head) or 'none'}): "
                         f"{listed(problems([*other, *unexpected]))}; --allow-partial starts those tensors fresh")
    weights = {**seeded(), **loaded} if fresh else loaded
    record = {"file": str(init), "loaded": len(loaded), "tensors": len(expected), "fresh_head": fresh_head,
              "fresh_other": other, "ignored": list(unexpected), "head": list(head)}
    note = f"--init {init}: loaded {len(loaded)} of {len(expected)} tensors"
    if fresh_head:
        note += f"; the head ({', '.join(head)}) starts fresh: {listed(problems(fresh_head))}"
    if other or unexpected:
        note += f"; --allow-partial: {listed(problems([*other, *unexpected]))}"
    return InitPlan(weights, record, note)


def _calls(node) -> set[str]:
    """The block-call prefixes a node sits in: 'layer1.0.conv1' -> {'layer1', 'layer1.0'}."""
    parts = node.name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _matches(node, name: str) -> bool:
    return node.name == name or name in _calls(node) or any(block == name for block, _ in node.via)


def frozen_layers(graph: Graph, names=(), until: str | None = None) -> tuple[str, ...]:
    """The layers ``--freeze NAMES`` and ``--freeze-until NAME`` name, in graph order; an unknown
    name is one line with the closest ones."""
    from ..spec.suggestions import suggest

    known = sorted({n.name for n in graph.nodes} | {c for n in graph.nodes for c in _calls(n)}
                   | {b for n in graph.nodes for b, _ in n.via})
    chosen: set[str] = set()
    for flag, name in [("--freeze", n) for n in names] + ([("--freeze-until", until)] if until else []):
        hits = [i for i, n in enumerate(graph.nodes) if _matches(n, name)]
        if not hits:
            raise UsageError(f"{flag} {name}: no layer, block or block call of spec '{graph.name}' has that "
                             f"name{suggest(name, known)}")
        if flag == "--freeze":
            chosen |= {graph.nodes[i].name for i in hits}
        else:
            chosen |= {n.name for n in graph.nodes[:max(hits) + 1]}
    return tuple(n.name for n in graph.nodes if n.name in chosen)


def frozen_tensors(graph: Graph, layers) -> tuple[str, ...]:
    """The neutral tensor names of ``layers`` (weights and batchnorm statistics)."""
    from ..weights.neutral import expected_weights

    chosen = set(layers)
    return tuple(k for k in expected_weights(graph) if k.rsplit(".", 1)[0] in chosen)


def require_something_trains(graph: Graph, layers) -> None:
    from ..weights.neutral import expected_weights

    frozen = set(frozen_tensors(graph, layers))
    if frozen and all(k in frozen or _is_statistic(k) for k in expected_weights(graph)):
        raise UsageError(f"--freeze/--freeze-until freeze every weight of spec '{graph.name}': nothing would train")


def _is_statistic(key: str) -> bool:
    return key.endswith(("running_mean", "running_var"))
