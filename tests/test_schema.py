"""The shipped JSON Schema is current, valid, and accepts every spec in specs/."""
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from cnnspec.loader import load_document
from cnnspec.schema import SCHEMA_FILE, editor_schema

SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.yaml"))


def test_shipped_schema_file_is_generated_from_the_op_table():
    assert json.loads(SCHEMA_FILE.read_text()) == editor_schema(), \
        "run: python -c 'from cnnspec.schema import write_schema_file; write_schema_file()'"


def test_schema_is_a_valid_draft_2020_12_schema():
    Draft202012Validator.check_schema(editor_schema())


@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_editor_schema_accepts_every_shipped_spec(spec):
    errors = list(Draft202012Validator(editor_schema()).iter_errors(load_document(spec).data))
    assert not errors, errors[0].message


def test_editor_schema_rejects_an_unknown_top_level_key():
    bad = {"cnnspec": 1, "name": "x", "input": [1, 2, 2], "layers": ["relu"], "layerz": []}
    assert list(Draft202012Validator(editor_schema()).iter_errors(bad))
