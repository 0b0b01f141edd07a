"""The shipped JSON Schema is current, valid, and accepts every spec in specs/."""
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from cnnspec.spec.loader import load_document
from cnnspec.spec.schema import SCHEMA_FILE, editor_schema

SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.yaml"))


def test_shipped_schema_file_is_generated_from_the_op_table():
    assert json.loads(SCHEMA_FILE.read_text()) == editor_schema(), \
        "run: python -c 'from cnnspec.spec.schema import write_schema_file; write_schema_file()'"


def test_schema_is_a_valid_draft_2020_12_schema():
    Draft202012Validator.check_schema(editor_schema())


@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_editor_schema_accepts_every_shipped_spec(spec):
    errors = list(Draft202012Validator(editor_schema()).iter_errors(load_document(spec).data))
    assert not errors, errors[0].message


def test_editor_schema_rejects_an_unknown_top_level_key():
    bad = {"cnnspec": 1, "name": "x", "input": [1, 2, 2], "layers": ["relu"], "layerz": []}
    assert list(Draft202012Validator(editor_schema()).iter_errors(bad))


# ---------------------------------------------------------------- the compiled fast path agrees with jsonschema

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from test_fuzz import JSONISH, mutated_specs  # noqa: E402

from cnnspec.graph.ops import OPS  # noqa: E402
from cnnspec.spec.fastschema import compile_schema  # noqa: E402
from cnnspec.spec.schema import _validator_class, is_valid_for, schema_for, validator_for  # noqa: E402

KINDS = ["document"] + [f"op:{name}" for name in sorted(OPS)]
AGREE = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
EDITOR = editor_schema()
FAST_EDITOR = compile_schema(EDITOR)


def _agree(kind_or_schema, instance):
    if isinstance(kind_or_schema, str):
        fast, slow = is_valid_for(kind_or_schema), validator_for(kind_or_schema)
    else:
        fast, slow = FAST_EDITOR, _validator_class()(kind_or_schema)
    assert fast(instance) == slow.is_valid(instance), (kind_or_schema if isinstance(kind_or_schema, str) else
                                                       "editor", instance)


@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_fast_path_accepts_every_shipped_spec(spec):
    data = load_document(spec).data
    assert is_valid_for("document")(data) and FAST_EDITOR(data)


@AGREE
@given(mutated_specs())
def test_fast_path_agrees_with_jsonschema_on_mutated_specs(spec):
    _agree("document", spec)
    _agree(EDITOR, spec)
    for layer in spec.get("layers", []) if isinstance(spec.get("layers"), list) else []:
        if isinstance(layer, dict):
            for key, value in layer.items():
                if key in OPS:
                    _agree(f"op:{key}", value)


@AGREE
@given(st.sampled_from(KINDS), JSONISH)
def test_fast_path_agrees_with_jsonschema_on_random_values(kind, value):
    _agree(kind, value)


@pytest.mark.parametrize("value, valid", [
    (64, True), (64.0, False), (True, False), (0, False), (None, False), ("3", False), ([3, 3], True), ([3], False),
])
def test_fast_path_integers_are_ints_not_floats_or_bools(value, valid):
    # conv2d's kernel: a positive integer or a pair; jsonschema alone would take 64.0
    args = {"filters": 4, "kernel": value}
    assert is_valid_for("op:conv2d")(args) is valid
    assert validator_for("op:conv2d").is_valid(args) is valid


def test_fast_path_refuses_keywords_it_does_not_compile():
    with pytest.raises(NotImplementedError, match="patternProperties"):
        compile_schema({"type": "object", "patternProperties": {"^a": {"type": "integer"}}})
    assert schema_for("document") is schema_for("document")  # compiled once per process


def test_check_of_a_valid_spec_does_not_import_jsonschema():
    import subprocess
    import sys

    code = ("import sys; from cnnspec.cli import main; rc = main(['check', 'specs/resnet50.yaml']); "
            "print('jsonschema' in sys.modules, rc, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.stderr.strip().splitlines()[-1] == "False 0"
    code = code.replace("specs/resnet50.yaml", "tests/golden/errors/typos.yaml")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.stderr.strip().splitlines()[-1] == "True 1"  # errors are jsonschema's to explain
