"""``cnnspec convert``: weights between the neutral layout (PyTorch's, what every ``build`` reads and
writes) and Keras' own layout (HWIO kernels, [in, units] dense kernels, gamma/beta/moving_*).

The source layout is read from the file's ``format`` tag, or else from its keys; the tensors are
checked against the spec in that layout before anything is written. ``torch`` is the neutral
layout's other name. Converting to the layout a file already has rewrites it checked and in
graph order. A file converted there and back is bit-identical (transposes only).
"""
from __future__ import annotations

import sys
from pathlib import Path

NAME = "convert"
HELP = "convert a weights file between the neutral (PyTorch) layout and Keras' layout, checked against a spec"
TARGETS = {"keras": "keras", "torch": "neutral", "neutral": "neutral"}
SUFFIX = {"keras": ".keras.safetensors", "neutral": ".safetensors"}


def add_arguments(parser):
    parser.add_argument("spec", metavar="SPEC", help="the spec the weights belong to")
    parser.add_argument("--weights", metavar="IN", required=True, help="a safetensors file in either layout")
    parser.add_argument("--to", choices=sorted(TARGETS), required=True,
                        help="keras: Keras layout; torch or neutral: the contract's neutral layout")
    parser.add_argument("-o", "--output", metavar="OUT", default=None,
                        help="output file (default: beside IN, named <stem>.keras.safetensors or <stem>.safetensors)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def default_output(source: Path, target: str) -> Path:
    stem = source.name
    for suffix in (".keras.safetensors", ".safetensors"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return source.with_name(stem + SUFFIX[target])


def run(args) -> int:
    from ..api import load
    from ..errors import UsageError
    from ..weights import keras_layout
    from ..weights.safetensors_io import read_safetensors, write_weights

    graph = load(args.spec).graph
    source = Path(args.weights)
    target = TARGETS[args.to]
    out = Path(args.output) if args.output else default_output(source, target)
    if out.resolve() == source.resolve():
        raise UsageError(f"{out}: would overwrite the input weights; name another file with -o")
    tensors, meta = read_safetensors(source)
    source_layout = keras_layout.detect_layout(tensors, graph, meta)
    converted = keras_layout.convert(tensors, graph, source_layout, target, str(source))
    write_weights(out, converted, graph, layout=target)
    if not args.quiet:
        print(f"{source}: {len(converted)} tensors, {source_layout} layout -> {target} layout", file=sys.stderr)
    print(out)
    return 0
