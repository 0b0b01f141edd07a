"""``cnnspec import``: an ONNX model as a spec of the language (blocks folded unless ``--flat``) and,
with ``--weights``, its weights in the neutral layout. Both files are written only when the whole
import checked; a model the language cannot express is one error naming the node."""
from __future__ import annotations

import sys
from pathlib import Path

NAME = "import"
HELP = "read an ONNX model and write a spec of the language (and its weights) that computes the same function"


def add_arguments(parser):
    parser.add_argument("model", metavar="MODEL.onnx", help="the ONNX model to read")
    parser.add_argument("-o", "--output", metavar="SPEC.yaml", required=True, help="the spec to write")
    parser.add_argument("--weights", metavar="OUT.safetensors", default=None,
                        help="also write the model's weights in the neutral layout")
    parser.add_argument("--name", default=None, help="the spec's name (default: the model's, or the file's stem)")
    parser.add_argument("--flat", action="store_true", help="every layer at the top level: no blocks")
    parser.add_argument("--quiet", action="store_true", help="no summary line")


def run(args) -> int:
    from ..errors import UsageError
    from ..files.atomic import atomic_write_text, require_regular
    from ..importer.model import import_onnx
    from ..weights.safetensors_io import write_weights

    out = Path(args.output)
    weights_out = Path(args.weights) if args.weights else None
    model = Path(args.model).resolve() if Path(args.model).exists() else None
    for target in filter(None, (out, weights_out)):
        if model is not None and target.resolve() == model:
            raise UsageError(f"{target}: would overwrite the model being imported")
        require_regular(target)
    if weights_out is not None and weights_out.resolve() == out.resolve():
        raise UsageError(f"{out}: the spec and the weights cannot be the same file")
    imported = import_onnx(args.model, name=args.name, flat=args.flat)
    if weights_out is not None:
        write_weights(weights_out, imported.weights, imported.graph)
    atomic_write_text(out, imported.text, "the imported spec")
    if not args.quiet:
        blocks = f", {len(imported.blocks)} blocks" if imported.blocks else ""
        print(f"{args.model}: {imported.layers} layers{blocks}, {imported.graph.params:,} parameters", file=sys.stderr)
    print(out)
    return 0
