"""``cnnspec schema``: the JSON Schema of the language, for editors (yaml-language-server)."""
from __future__ import annotations

NAME = "schema"
HELP = "print the JSON Schema of the spec language (also shipped as cnnspec/spec.schema.json)"


def add_arguments(parser):
    parser.add_argument("--path", action="store_true", help="print the path of the shipped schema file instead")


def run(args) -> int:
    from ..spec.schema import SCHEMA_FILE

    print(SCHEMA_FILE if args.path else SCHEMA_FILE.read_text(encoding="utf-8"), end="" if not args.path else "\n")
    return 0
