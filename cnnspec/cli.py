"""The command line: a thin dispatcher over command modules in ``cnnspec.commands``.

Each command module is light to import (no framework at module level); errors are
:class:`CnnspecError` objects that carry their exit code, so no traceback reaches a user.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .errors import CnnspecError, Terminated
from .files import signals
from .version import __version__

COMMANDS = ("check", "draw", "schema", "backends", "build", "run", "train", "eval", "convert", "quantize",
            "bench",
            "import_onnx", "lsp")
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's usage errors: one line and exit 2, as for every usage error
        self.print_usage(sys.stderr)
        print(f"cnnspec: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _available_commands():
    for name in COMMANDS:
        try:
            yield importlib.import_module(f"cnnspec.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"cnnspec.commands.{name}":
                raise


class _CommandParser(_Parser):
    """A subcommand's parser that adds its arguments when that command is the one run: some commands'
    defaults come from the layer they drive (``quantize``'s from its pipeline), which ``cnnspec check``
    must not pay for."""

    def __init__(self, *args, command=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._command = command

    def _ensure_arguments(self) -> None:
        if self._command is not None:
            command, self._command = self._command, None
            command.add_arguments(self)
            self.set_defaults(_run=command.run)

    def parse_known_args(self, args=None, namespace=None):
        self._ensure_arguments()
        return super().parse_known_args(args, namespace)

    def format_help(self):
        self._ensure_arguments()
        return super().format_help()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cnnspec", description="Declare a CNN in YAML, check its shapes, compile it anywhere.")
    parser.add_argument("--version", action="version", version=f"cnnspec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    for module in _available_commands():
        sub.add_parser(module.NAME, help=module.HELP, description=module.HELP, command=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a spec may hold any Unicode; never crash on printing it
        try:
            stream.reconfigure(errors="replace")
        except (AttributeError, ValueError):
            pass
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    with signals.handling():  # SIGTERM and SIGHUP clean up as Ctrl-C does
        code = _dispatch(args)
    if isinstance(code, Terminated):
        print(f"cnnspec: stopped by {signal_name(code.signum)}", file=sys.stderr)
        return signals.end_by(code.signum)
    return code


def signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _dispatch(args):
    """The command's exit code; a Terminated, for the caller to end the process by its signal
    once the handlers are restored."""
    try:
        return int(args._run(args) or 0)
    except Terminated as exc:
        return exc
    except CnnspecError as exc:
        print(f"cnnspec: {exc.render()}" if exc.exit_code == EXIT_USAGE else exc.render(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("cnnspec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug of ours: one line, and the way to the traceback
        if os.environ.get("CNNSPEC_DEBUG"):
            raise
        print(f"cnnspec: internal error: {type(exc).__name__}: {exc} (set CNNSPEC_DEBUG=1 for a traceback; "
              f"please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
