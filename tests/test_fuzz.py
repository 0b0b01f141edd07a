"""No input ever gives a traceback or a hang: random garbage and random mutations of valid specs."""
import copy
import json

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import spec_dicts

from cnnspec.api import check_path
from cnnspec.errors import SpecError
from cnnspec.graph.lint import lint
from cnnspec.graph.report import table, to_json
from cnnspec.spec.compiler import compile_document
from cnnspec.spec.loader import decode_spec_bytes, parse_yaml

FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=list(HealthCheck))


def _check_text(text: str):
    """The whole front end on a text; must return diagnostics or a graph, never raise anything else."""
    try:
        doc = parse_yaml(text, "fuzz.yaml")
    except SpecError as exc:
        assert exc.diagnostics and all(d.location for d in exc.diagnostics)
        return
    graph, diagnostics = compile_document(doc)
    for d in diagnostics:
        rendered = d.render()
        assert rendered.startswith("fuzz.yaml:") and "\n" not in rendered
    assert graph is not None or diagnostics
    json.dumps(to_json("fuzz.yaml", graph, diagnostics))  # what --json prints, for valid and invalid specs
    if graph is not None and not diagnostics:
        assert table(graph)
        assert all(w.severity == "warning" and "\n" not in w.render() for w in lint(graph))


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(raw):
    try:
        text = decode_spec_bytes(raw, "fuzz.yaml")
    except SpecError:
        return
    _check_text(text)


YAMLISH = st.text(alphabet=st.sampled_from(list("abc:-[]{},&*!|>'\"#\n 0123456789.$?%@`~\t")), max_size=200)


@FUZZ
@given(YAMLISH)
def test_random_yaml_like_text(text):
    _check_text(text)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10 ** 7) | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["same", "valid", "input", "$x", "relu", "conv2d", "", "layer1.0"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["filters", "kernel", "stride", "padding", "in", "name", "expect", "relu", "conv2d", "add",
                         "units", "groups", "dilation", "rate", "repeat", "when", "first", "blocks", "x"]),
        children, max_size=4),
    max_leaves=8)


@st.composite
def mutated_specs(draw):
    spec = copy.deepcopy(draw(spec_dicts()))
    for _ in range(draw(st.integers(1, 3))):
        containers = [(None, None, spec)]
        stack = [spec]
        while stack:
            node = stack.pop()
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, value in list(items):
                containers.append((node, key, value))
                if isinstance(value, (dict, list)):
                    stack.append(value)
        parent, key, _ = draw(st.sampled_from(containers))
        if parent is None:
            continue
        action = draw(st.sampled_from(["replace", "delete"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[key]
        else:
            parent[key] = draw(JSONISH)
    return spec


@FUZZ
@given(mutated_specs())
def test_mutated_valid_specs(spec):
    _check_text(json.dumps(spec))
    _check_text(yaml.safe_dump(spec, default_flow_style=False, sort_keys=False))


def test_valid_random_spec_roundtrips_through_yaml(tmp_path):
    spec = {"cnnspec": 1, "name": "x", "input": [1, 4, 4], "layers": ["flatten", {"dense": 2}]}
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(spec))
    graph, diags = check_path(path)
    assert not diags and graph.output_shape == (2,)
