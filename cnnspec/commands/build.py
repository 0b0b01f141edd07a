"""``cnnspec build``: compile a spec with a backend and write model.onnx beside its own files."""
from __future__ import annotations

import sys
from pathlib import Path

NAME = "build"
DEFAULT_BACKEND = "torch"
HELP = "compile a spec with a backend; write model.onnx, weights.safetensors and the backend's model files"


def add_arguments(parser):
    from .specchoice import add_spec_choice

    parser.add_argument("spec", metavar="SPEC")
    add_spec_choice(parser)
    from ..backend.plugins import plugin_names

    names = plugin_names()
    parser.add_argument("--backend", default=DEFAULT_BACKEND, metavar="NAME",
                        help=f"{', '.join(names) or 'no plugin installed'} (the installed plugins; default: "
                             f"{DEFAULT_BACKEND}; 'cnnspec backends' says whether each one's framework is there)")
    parser.add_argument("--weights", metavar="FILE",
                        help="weights to load: .safetensors (either layout), a PyTorch state_dict (.pt/.pth/.bin), "
                             "Keras weights (.weights.h5/.h5/.keras) or an ONNX model's initializers (.onnx)")
    parser.add_argument("--seed", type=int, default=0, help="seed for initial weights when --weights is absent")
    parser.add_argument("-o", "--output", metavar="DIR", default=None, help="output folder (default: build/<name>, or build/<name>-<scale>)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args) -> int:
    import time

    from ..api import load
    from ..backend.interface import ONNX_FILE, WEIGHTS_FILE
    from ..backend.plugins import load_backend
    from ..files.atomic import check_can_create_dir
    from ..files.publish import staged_output
    from ..graph.resources import require_memory, require_onnx_size
    from ..backend.weightfiles import read_weights

    from .specchoice import spec_choice

    spec = load(args.spec, choice=spec_choice(args))
    graph = spec.graph
    require_onnx_size(graph)  # before minutes of compiling: model.onnx could not hold it
    require_memory(graph)
    backend = load_backend(args.backend)
    say = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr))
    weights = read_weights(args.weights, graph, say) if args.weights else None
    outdir = Path(args.output or Path("build") / (graph.name + (f"-{graph.scale}" if graph.scale else "")))
    check_can_create_dir(outdir, (ONNX_FILE, WEIGHTS_FILE))  # before the work: a folder at a file's name, say
    start = time.perf_counter()

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - start:6.2f}s] {message}", file=sys.stderr)

    from ..errors import plural

    progress(f"{graph.name}: {plural(len(graph.nodes), 'layer')}, {plural(graph.params, 'param')}, backend "
             f"{args.backend}, into {outdir}")
    with staged_output(outdir) as stage:  # all files appear together, or none do
        written = backend.build(graph, stage, weights=weights, seed=args.seed, progress=progress)
    for path in written:
        print(outdir / path.name)
    return 0
