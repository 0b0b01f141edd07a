"""``cnnspec check``: validate and shape-check specs, print the table or JSON; never a framework."""
from __future__ import annotations

import json
import sys

NAME = "check"
HELP = "validate specs and infer every shape; print a per-layer table (or --json)"


def add_arguments(parser):
    parser.add_argument("specs", nargs="+", metavar="SPEC", help="spec files (YAML)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of tables")


def run(args) -> int:
    from ..api import check_path
    from ..errors import UsageError
    from ..lint import lint
    from ..report import table, to_json

    documents, tables, failed, usage_failed = [], [], 0, 0
    for path in args.specs:
        try:
            graph, diagnostics = check_path(path)
        except UsageError as exc:  # missing or unreadable file: report, go on with the others
            print(f"cnnspec: error: {exc}", file=sys.stderr)
            usage_failed += 1
            documents.append({"spec": path, "valid": False, "errors": [{"line": None, "column": None,
                                                                        "message": str(exc)}], "warnings": []})
            continue
        if diagnostics or graph is None:
            failed += 1
            for d in diagnostics:
                print(d.render(), file=sys.stderr)
            n = len(diagnostics)
            print(f"{path}: {n} error{'s' if n != 1 else ''}", file=sys.stderr)
        warnings = [] if diagnostics or graph is None else lint(graph)
        for w in warnings:
            print(w.render(), file=sys.stderr)
        if not diagnostics and graph is not None and not args.json:
            tables.append(table(graph))
        if args.json:
            documents.append(to_json(path, graph, diagnostics, warnings))
    if args.json:
        print(json.dumps(documents[0] if len(args.specs) == 1 else documents, indent=2, ensure_ascii=False))
    elif tables:
        print("\n\n".join(tables))
    if usage_failed:
        return 2
    return 1 if failed else 0
