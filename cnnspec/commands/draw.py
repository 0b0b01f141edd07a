"""``cnnspec draw``: a checked spec as a diagram (.dot, .svg, .png or .html, by the output's suffix)."""
from __future__ import annotations

import sys
from pathlib import Path

NAME = "draw"
HELP = "draw a spec's graph: .svg, .png, .html (diagram and table) or .dot, by the output's suffix"


def add_arguments(parser):
    from .specchoice import add_spec_choice

    parser.add_argument("spec", metavar="SPEC", help="spec file (YAML)")
    add_spec_choice(parser)
    parser.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="where to write: FILE.svg, FILE.png, FILE.html or FILE.dot")
    parser.add_argument("--collapse", action="store_true", help="draw each block call as one box")


def run(args) -> int:
    from ..api import check_path
    from ..draw.diagram import diagram
    from ..draw.formats import FORMATS
    from ..errors import UsageError

    out = Path(args.output)
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise UsageError(f"-o {args.output}: the suffix says the format; use one of {', '.join(FORMATS)}")
    from .specchoice import spec_choice

    graph, diagnostics = check_path(args.spec, spec_choice(args))
    if diagnostics or graph is None:
        for d in diagnostics:
            print(d.render(), file=sys.stderr)
        n = len(diagnostics)
        print(f"{args.spec}: {n} error{'s' if n != 1 else ''}; nothing drawn", file=sys.stderr)
        return 1
    if not out.parent.is_dir():
        raise UsageError(f"-o {args.output}: no such folder '{out.parent}'")
    try:
        fmt.write(diagram(graph, collapse=args.collapse), out, f"{graph.name} ({args.spec})")
    except OSError as exc:
        raise UsageError(f"-o {args.output}: cannot write it: {exc.strerror or exc}") from None
    print(f"wrote {out}")
    return 0
