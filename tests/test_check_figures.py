"""``cnnspec check``'s columns, --blocks and the figures in --json (receptive fields: test_receptive.py;
memory: test_memory.py)."""
import json
from pathlib import Path

import pytest

import cnnspec
from cnnspec.cli import main
from cnnspec.graph.figures import call_rows
from cnnspec.graph.report import COLUMNS, choose_columns

ROOT = Path(__file__).resolve().parent.parent


def test_columns_by_name(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(["check", "specs/lenet-5.yaml", "--columns", "name,rf,flops"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split() == ["Layer", "RF", "FLOPs"]
    assert lines[8].split() == ["c3", "14", "480,000"]


def test_unknown_column_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(["check", "specs/lenet-5.yaml", "--columns", "name,colour"]) == 2
    err = capsys.readouterr().err
    assert "unknown column 'colour'" in err and "choose from name, op" in err


def test_width_decides_the_columns():
    cells = {k: [COLUMNS[k].header, "x" * 10] for k in COLUMNS}
    assert choose_columns(cells, 40, sequential=True) == ("name", "op", "shape")
    assert choose_columns(cells, 60, sequential=True) == ("name", "op", "shape", "params", "macs")
    wide = choose_columns(cells, 1000, sequential=False)
    assert wide == tuple(COLUMNS)
    assert "inputs" not in choose_columns(cells, 1000, sequential=True)


def test_small_nets_show_figures_within_80_columns(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(["check", "specs/lenet-5.yaml"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    header = out.splitlines()[2].split()
    assert {"RF", "Stride", "Params", "MACs"} <= set(header)
    assert "FLOPs: 833,040 (833.04 k) per sample, counted as 2 x MACs" in out


def test_blocks_one_row_per_call_in_json(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(["check", "specs/resnet18.yaml", "--blocks", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in doc["blocks"]}
    assert list(rows)[:6] == ["conv1", "bn1", "relu", "maxpool", "layer1.0", "layer1.1"]
    call = rows["layer2.0"]
    assert call["block"] == "basic" and call["inputs"] == ["layer1.1"] and call["output_shape"] == [128, 28, 28]
    assert call["params"] == sum(layer["params"] for layer in doc["layers"] if layer["name"] in call["layers"])
    assert call["receptive_field"] == [67, 67] and call["effective_stride"] == [8, 8]
    assert sum(r["params"] for r in doc["blocks"]) == doc["params"]


@pytest.mark.parametrize("spec", ["googlenet", "unet", "mobilenet-v2", "convnext-tiny"])
def test_blocks_rows_of_nested_calls_are_unique_and_acyclic(spec):
    """A call whose block calls other blocks (an inception's basic_conv calls, U-Net's double_conv,
    MobileNetV2's conv_bn_act) shows its own layers one per row beside its inner calls: no name twice
    (GoogLeNet's inception3a once came out as two rows, one reading the other: a cycle in the
    collapsed diagram, which crashed its layout), and every row reads only earlier rows."""
    graph = cnnspec.load(ROOT / "specs" / f"{spec}.yaml").graph
    rows = call_rows(graph)
    names = [r.name for r in rows]
    assert len(names) == len(set(names))
    seen = {"input"}
    for r in rows:
        assert set(r.inputs) <= seen, (r.name, r.inputs)
        seen.add(r.name)
    assert sum(r.params for r in rows) == graph.params and sum(r.macs for r in rows) == graph.macs
    assert sorted(layer for r in rows for layer in (r.layers or (r.name,))) == sorted(n.name for n in graph.nodes)


def test_blocks_of_googlenet(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(["check", "specs/googlenet.yaml", "--blocks", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["blocks"]}
    assert rows["inception3a.branch4.0"]["block"] is None and rows["inception3a.branch4.0"]["op"] == "maxpool2d"
    assert rows["inception3a.branch4.1"]["block"] == "basic_conv"
    assert rows["inception3a.branch4.1"]["inputs"] == ["inception3a.branch4.0"]
    assert rows["inception3a.concat_1"]["inputs"] == ["inception3a.branch1", "inception3a.branch2.1",
                                                      "inception3a.branch3.1", "inception3a.branch4.1"]
    assert "inception3a" not in rows


def test_invalid_spec_has_null_figures(tmp_path, capsys):
    spec = tmp_path / "bad.yaml"
    spec.write_text("cnnspec: 1\nname: bad\ninput: [1, 8, 8]\nlayers:\n  - conv2d: {filters: 4, kernel: 3}\n"
                    "  - {conv2d: {filters: 4, kernel: 3}, expect: [4, 5, 5]}\n  - relu\n")
    assert main(["check", "--json", "--batch", "2", str(spec)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["flops"] is None and "memory" not in doc
    first, second, third = doc["layers"]
    assert first["receptive_field"] == [3, 3] and first["flops"] == 2 * first["macs"]
    assert second["receptive_field"] == [5, 5]  # its own shape is real; what follows the wrong expect is not
    assert third["receptive_field"] is None and third["flops"] is None
