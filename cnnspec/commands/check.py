"""``cnnspec check``: validate and shape-check specs, print the table or JSON; never a framework."""
from __future__ import annotations

import argparse
import json
import os
import sys

NAME = "check"
HELP = "validate specs and infer every shape; print a per-layer table (or --json)"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 1000000, got '{text}'")
    return value


def _columns(text: str):
    from ..graph.report import parse_columns

    try:
        return parse_columns(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser):
    from .specchoice import add_spec_choice

    parser.add_argument("specs", nargs="+", metavar="SPEC", help="spec files (YAML); a folder: every *.yaml in it; "
                                                                 "-: standard input")
    add_spec_choice(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    parser.add_argument("--batch", "--batch-size", dest="batch", type=_positive, metavar="B",
                        help="add the memory of inference and of a training step at batch B, with assumptions")
    parser.add_argument("--blocks", action="store_true", help="one row per block call instead of per layer")
    parser.add_argument("--columns", type=_columns, metavar="LIST",
                        help="columns to show, comma-separated: name, op, inputs, shape, rf, stride, params, "
                             "params%%, macs, macs%%, flops, or all (default: what fits the terminal)")


def terminal_width(stream) -> int:
    """The terminal's width where printing to one, else 80 (pipes and files get the same table every time)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns if stream.isatty() else 80
    except (AttributeError, OSError, ValueError):
        return 80


def spec_paths(specs) -> list[str]:
    """The files to check: a folder gives every ``*.yaml`` directly in it, sorted; ``-`` stays (standard
    input, read once). A folder without any is one usage error."""
    from ..errors import UsageError

    out = []
    for spec in specs:
        if spec != "-" and os.path.isdir(spec):
            found = sorted(os.path.join(spec, n) for n in os.listdir(spec)
                           if n.endswith(".yaml") and not n.startswith(".") and os.path.isfile(os.path.join(spec, n)))
            if not found:
                raise UsageError(f"{spec}: no *.yaml files in this folder")
            out += found
        else:
            out.append(spec)
    if out.count("-") > 1:
        raise UsageError("- (standard input) can be read once")
    return out


def run(args) -> int:
    from ..api import check_path
    from ..errors import UsageError, plural
    from ..graph.lint import lint
    from ..graph.report import table, to_json
    from .specchoice import spec_choice

    choice = spec_choice(args)
    documents, tables, failed, usage_failed = [], [], 0, 0
    paths = spec_paths(args.specs)
    for path in paths:
        name = "<stdin>" if path == "-" else path  # as its messages call it
        try:
            graph, diagnostics = check_path(path, choice)
        except UsageError as exc:  # missing or unreadable file: report, go on with the others
            print(f"cnnspec: error: {exc}", file=sys.stderr)
            usage_failed += 1
            documents.append({"spec": name, "valid": False, "errors": [{"line": None, "column": None,
                                                                        "message": str(exc)}], "warnings": []})
            continue
        if diagnostics or graph is None:
            failed += 1
            for d in diagnostics:
                print(d.render(), file=sys.stderr)
            n = len(diagnostics)
            print(f"{name}: {plural(n, 'error')}", file=sys.stderr)
        valid = not diagnostics and graph is not None
        warnings = lint(graph) if valid else []
        for w in warnings:
            print(w.render(), file=sys.stderr)
        memory = None
        if valid and args.batch:
            from ..graph.memory import estimate

            memory = estimate(graph, args.batch)
        if valid and not args.json:
            tables.append(table(graph, args.columns, terminal_width(sys.stdout), args.blocks, memory))
        if args.json:
            documents.append(to_json(name, graph, diagnostics, warnings, args.blocks, memory))
    if args.json:
        one = len(paths) == 1 and len(args.specs) == 1 and not os.path.isdir(args.specs[0])
        print(json.dumps(documents[0] if one else documents, indent=2, ensure_ascii=False))
    elif tables:
        print("\n\n".join(tables))
    if usage_failed:
        return 2
    return 1 if failed else 0
