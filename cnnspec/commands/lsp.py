"""``cnnspec lsp``: the language server on stdin/stdout (see cnnspec.lsp); an editor starts it."""
from __future__ import annotations

NAME = "lsp"
HELP = "a Language Server Protocol server on stdin/stdout: live errors, inline shapes, hover, completion"


def add_arguments(parser):
    parser.add_argument("--stdio", action="store_true",
                        help="talk over stdin/stdout (the default and only transport; accepted for editors that pass it)")


def run(args) -> int:
    from ..errors import UsageError

    try:
        from ..lsp.server import serve
    except ModuleNotFoundError as exc:  # the 'lsp' extra not installed
        raise UsageError(f"cnnspec lsp needs pygls ({exc.name} is missing): pip install 'cnnspec[lsp]'") from None
    from ..version import __version__

    serve(__version__)
    return 0
