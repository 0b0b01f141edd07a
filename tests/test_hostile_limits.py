"""Hostile specs against the limits: the layer limit is exact, a cause comes before its
consequences, and building grows linearly with the spec (issue 13)."""
import time

import pytest

from cnnspec.api import check_path
from cnnspec.spec.expansion import MAX_BLOCK_DEPTH
from cnnspec.spec.schema import MAX_LAYERS

HEAD = "cnnspec: 1\nname: big\ninput: [1, 2, 2]\nlayers:\n"
TOO_MANY = f"the spec expands to more than {MAX_LAYERS} layers"


def _relus(n: int) -> str:
    return "  - relu\n" * n


def _blocks_twice(n: int) -> str:
    """A block of two relus called n times by repeat."""
    return ("cnnspec: 1\nname: big\ninput: [1, 2, 2]\nblocks:\n  two:\n    layers:\n      - relu\n      - relu\n"
            f"layers:\n  - {{two: null, repeat: {n}}}\n")


LAYER_LIMIT = [
    # (id, spec text, first error or None when it checks, its line)
    ("exactly-the-limit", HEAD + _relus(MAX_LAYERS), None, None),
    ("one-over", HEAD + _relus(MAX_LAYERS + 1), TOO_MANY, 5 + MAX_LAYERS),
    ("repeat-at-the-limit", HEAD + f"  - {{relu: null, repeat: {MAX_LAYERS}}}\n", None, None),
    ("repeat-then-one-more", HEAD + f"  - {{relu: null, repeat: {MAX_LAYERS}}}\n  - flatten\n", TOO_MANY, 6),
    ("repeat-one-short-then-two", HEAD + f"  - {{relu: null, repeat: {MAX_LAYERS - 1}}}\n  - relu\n  - relu\n",
     TOO_MANY, 7),
    ("repeat-over", HEAD + f"  - {{relu: null, repeat: {MAX_LAYERS + 1}}}\n",
     f"'repeat' must be between 1 and {MAX_LAYERS}, got {MAX_LAYERS + 1}", 5),
    ("block-repeat-at-the-limit", _blocks_twice(MAX_LAYERS // 2), None, None),
    ("block-repeat-one-over", _blocks_twice(MAX_LAYERS // 2) + "  - flatten\n", TOO_MANY, 11),
]


@pytest.mark.parametrize("text,message,line", [c[1:] for c in LAYER_LIMIT], ids=[c[0] for c in LAYER_LIMIT])
def test_the_layer_limit_is_exact(tmp_path, text, message, line):
    path = tmp_path / "big.yaml"
    path.write_text(text)
    graph, diags = check_path(path)
    errors = [d for d in diags if d.severity == "error"]
    if message is None:
        assert errors == []
        assert len(graph.nodes) == MAX_LAYERS
        return
    assert len(errors) == 1, [d.render() for d in errors]
    assert errors[0].message == message
    assert errors[0].location.line == line


def _nested(depth: int, body: list[str], top: str = "  - b0\n") -> str:
    """Blocks b0 .. b{depth-1}, each calling the next through ``body``; the last holds a relu."""
    lines = ["cnnspec: 1", "name: deep", "input: [1, 4, 4]", "blocks:"]
    for i in range(depth):
        lines += [f"  b{i}:", "    params: {c: 2}", "    layers:"]
        lines += ["      " + line.format(n=i + 1) for line in body] if i < depth - 1 else ["      - relu"]
    return "\n".join(lines) + "\nlayers:\n" + top + "  - flatten\n  - dense: 2\n"


NESTING = [
    # (id, how each block calls the next, the top-level layers)
    ("bare-call", ["- b{n}"], "  - b0\n"),
    ("call-with-params", ["- {{b{n}: {{c: $c}}}}"], "  - b0\n"),
    ("conv-around-the-call", ["- conv2d: {{filters: $c, kernel: 1}}", "- {{b{n}: {{c: $c}}}}",
                              "- conv2d: {{filters: $c, kernel: 1}}"], "  - b0\n"),
    ("named-call-read-by-add", ["- {{b{n}: {{c: $c}}, name: x}}", "- {{add: null, in: [x, input]}}"], "  - b0\n"),
    ("expect-on-the-call", ["- {{b{n}: {{c: $c}}, expect: [1, 4, 4]}}"], "  - b0\n"),  # was an IndexError
    ("expect-after-a-layer", ["- {{b{n}: {{c: $c}}, expect: [1, 4, 4]}}"], "  - relu\n  - b0\n"),
    ("repeated-calls", ["- {{b{n}: {{c: $c}}, repeat: 2}}"], "  - b0\n"),
]


@pytest.mark.parametrize("body,top", [c[1:] for c in NESTING], ids=[c[0] for c in NESTING])
def test_nesting_too_deep_is_said_first_and_alone(tmp_path, body, top):
    path = tmp_path / "deep.yaml"
    path.write_text(_nested(MAX_BLOCK_DEPTH + 1, body, top))
    _, diags = check_path(path)
    assert diags, "a spec nesting 17 blocks deep must not check"
    assert diags[0].message == f"blocks nest deeper than {MAX_BLOCK_DEPTH} calls"
    assert len(diags) == 1, [d.render() for d in diags]


def test_nesting_at_the_limit_checks(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text(_nested(MAX_BLOCK_DEPTH, ["- {{b{n}: {{c: $c}}, expect: [1, 4, 4]}}"]))
    graph, diags = check_path(path)
    assert [d for d in diags if d.severity == "error"] == []
    assert graph.output_shape == (2,)


def _conv_spec(path, layers: int):
    path.write_text("cnnspec: 1\nname: long\ninput: [1, 4, 4]\nlayers:\n"
                    + "  - conv2d: {filters: 2, kernel: 3, padding: same, activation: relu}\n" * (layers - 1)
                    + "  - flatten\n")
    return path


def _build_seconds(tmp_path, backend: str, layers: int) -> float:
    from cnnspec.cli import main

    spec = _conv_spec(tmp_path / f"long{layers}.yaml", layers)
    start = time.perf_counter()
    assert main(["build", str(spec), "--backend", backend, "-o", str(tmp_path / f"{backend}{layers}"), "--quiet"]) == 0
    return time.perf_counter() - start


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_a_2000_layer_spec_builds_in_seconds_and_linearly(tmp_path, backend, capsys):
    """Building was quadratic (35 s for 2,000 layers, an hour for 20,000): 2,000 layers now take
    seconds, and 8x the layers take well under the 64x a quadratic build would."""
    pytest.importorskip("onnx")
    if backend == "torch":
        pytest.importorskip("torch")
    _build_seconds(tmp_path, backend, 50)  # imports and first-call costs out of the figures
    small = _build_seconds(tmp_path, backend, 250)
    large = _build_seconds(tmp_path, backend, 2000)
    assert large < 60, f"2,000 layers took {large:.1f} s"
    assert large < 24 * max(small, 0.05), f"250 layers: {small:.2f} s, 2,000 layers: {large:.2f} s (quadratic?)"
    assert (tmp_path / f"{backend}2000" / "model.onnx").is_file()


# ---------------------------------------------------------------- activation memory, before allocating

ACTIVATIONS = """cnnspec: 1
name: act
input: [3, 40000, 40000]
layers:
  - conv2d: {filters: 4, kernel: 3, padding: same}
  - global_avgpool2d
  - dense: 2
"""
SIXTEEN_GIB = 16 * 2 ** 30
ACT_LINE = ("spec 'act': the float32 activations of {samples} (input [3, 40000, 40000], 44,800,000,024 bytes a sample) "
            "need {need}, more than half of this machine's 16.00 GiB of memory; refused before allocating")


@pytest.fixture
def sixteen_gib(monkeypatch):
    import cnnspec.graph.resources

    monkeypatch.setattr(cnnspec.graph.resources, "physical_memory", lambda: SIXTEEN_GIB)


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_build_refuses_activations_bigger_than_memory_with_the_figure(tmp_path, capsys, sixteen_gib, backend):
    from cnnspec.cli import main

    spec = tmp_path / "act.yaml"
    spec.write_text(ACTIVATIONS)
    graph, _ = check_path(spec)
    assert graph.params == 122
    assert main(["build", str(spec), "--backend", backend, "-o", str(tmp_path / "out"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == "cnnspec: error: " + ACT_LINE.format(samples="one sample", need="41.72 GiB")
    assert not (tmp_path / "out").exists()


def test_spec_to_refuses_activations_bigger_than_memory(sixteen_gib):
    import cnnspec
    from cnnspec.errors import UsageError

    spec = cnnspec.loads(ACTIVATIONS)
    with pytest.raises(UsageError) as info:
        spec.to("onnx")
    assert str(info.value) == ACT_LINE.format(samples="one sample", need="41.72 GiB")


def test_train_counts_the_activations_of_its_batch(tmp_path, monkeypatch):
    import cnnspec.graph.resources
    from cnnspec.errors import UsageError
    from cnnspec.training import TrainConfig, train

    spec = tmp_path / "small.yaml"
    spec.write_text("cnnspec: 1\nname: small\ninput: [1, 256, 256]\nlayers:\n  - conv2d: {filters: 8, kernel: 3, "
                    "padding: same}\n  - global_avgpool2d\n  - dense: 10\n")
    monkeypatch.setattr(cnnspec.graph.resources, "physical_memory", lambda: 64 * 2 ** 20)  # one sample: 2.25 MiB; 32: 72 MiB
    with pytest.raises(UsageError, match=r"the float32 activations of a batch of 32 samples .* need 72.00 MiB"):
        train(str(spec), "torch", "digits", TrainConfig(epochs=1, batch_size=32), outdir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
