"""The command line through its entry point: exit codes, streams, JSON, and a light import."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cnnspec.cli import main

GOOD = "cnnspec: 1\nname: tiny\ninput: [1, 8, 8]\nclasses: [a, b]\nlayers:\n  - conv2d: {filters: 4, kernel: 3}\n  - relu\n  - flatten\n  - dense: 2\n"
BAD = "cnnspec: 1\nname: bad\ninput: [1, 8, 8]\nlayers:\n  - conv2d: {filters: 4, kernel: 9}\n"


@pytest.fixture
def specs(tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(BAD)
    return good, bad


def test_check_valid_prints_table_and_exits_0(specs, capsys):
    good, _ = specs
    assert main(["check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "conv2d_1" in out and "[4, 6, 6]" in out and "Params: 330" in out


def test_check_invalid_exits_1_with_located_error_on_stderr(specs, capsys):
    _, bad = specs
    assert main(["check", str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{bad}:5:5: error: conv2d_1: kernel 9 does not fit its 8x8 input" in captured.err


def test_check_json_one_object_for_one_spec(specs, capsys):
    good, _ = specs
    assert main(["check", "--json", str(good)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is True and doc["name"] == "tiny" and doc["output_shape"] == [2]
    assert doc["params"] == 4 * 9 + 4 + 144 * 2 + 2
    assert doc["layers"][0].pop("args")["kernel"] == [3, 3]  # the layer's arguments as checked
    assert doc["layers"][0] == {"name": "conv2d_1", "op": "conv2d", "inputs": ["input"], "output_shape": [4, 6, 6],
                                "params": 40, "macs": 4 * 36 * 9, "flops": 2 * 4 * 36 * 9,
                                "receptive_field": [3, 3], "effective_stride": [1, 1],
                                "params_share": round(40 / 330, 6), "macs_share": round(1296 / (1296 + 288), 6)}
    assert doc["flops"] == 2 * doc["macs"]
    assert doc["errors"] == []


def test_check_json_list_for_several_specs(specs, capsys):
    good, bad = specs
    assert main(["check", "--json", str(good), str(bad)]) == 1
    docs = json.loads(capsys.readouterr().out)
    assert [d["valid"] for d in docs] == [True, False]
    assert docs[1]["errors"][0]["line"] == 5 and docs[1]["errors"][0]["column"] == 5


def test_missing_file_is_exit_2(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_usage_error_is_exit_2(capsys):
    assert main(["check"]) == 2
    assert main(["frobnicate"]) == 2
    assert main([]) == 2


def test_schema_command_prints_the_shipped_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"].endswith("2020-12/schema") and "conv2d" in schema["$defs"]["layer"]["anyOf"][1]["properties"]


def test_backends_lists_plugins(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "keras" in out


def test_build_with_unknown_backend_lists_known(specs, capsys):
    good, _ = specs
    assert main(["build", str(good), "--backend", "jax", "-o", str(good.parent / "o")]) == 2
    err = capsys.readouterr().err
    assert "unknown backend 'jax'" in err and "torch" in err


HEAVY = ["torch", "tensorflow", "keras", "onnxruntime", "onnx", "numpy", "safetensors"]


def modules_loaded_by_check(spec) -> list[str]:
    """Every module a fresh process holds after ``cnnspec check SPEC``."""
    code = "import sys; from cnnspec.cli import main; main(['check', %r]); print('MODULES:' + ' '.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code % str(spec)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1].removeprefix("MODULES:").split()


def test_import_cli_and_check_stay_light(specs):
    good, _ = specs
    assert sorted({m.split(".")[0] for m in modules_loaded_by_check(good)} & set(HEAVY)) == []


# the layers above the graph and the spec that check has no use for; a command's parser adds its
# arguments only when it runs, so quantize's defaults (from its pipeline) cost check nothing
ABOVE_CHECK = ("cnnspec.quantize", "cnnspec.training", "cnnspec.runner", "cnnspec.data", "cnnspec.onnxfile",
               "cnnspec.weights", "cnnspec.draw", "cnnspec.files.publish")


def test_check_imports_no_layer_it_does_not_use(specs):
    good, _ = specs
    assert sorted(m for m in modules_loaded_by_check(good) if m.startswith(ABOVE_CHECK)) == []


def test_a_command_help_lists_its_arguments():
    from cnnspec.cli import build_parser

    text = build_parser()._subparsers._group_actions[0].choices["quantize"].format_help()
    assert "--max-drop P" in text and "--recipe" in text and "default 256" in text


def test_python_dash_m_works(specs):
    good, _ = specs
    result = subprocess.run([sys.executable, "-m", "cnnspec", "check", str(good)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "conv2d_1" in result.stdout


DIGITS = str(Path(__file__).resolve().parent.parent / "specs" / "digits.yaml")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
@pytest.mark.parametrize("argv, message", [
    (["check", "/dev/zero"], "a spec may be at most"),
    (["build", DIGITS, "--weights", "/dev/zero", "-o", "{tmp}/out"], "not a regular file"),
    (["convert", DIGITS, "--weights", "/dev/zero", "--to", "keras", "-o", "{tmp}/w.safetensors"], "not a regular file"),
    (["run", "/dev/zero", "--input", "{tmp}/x.npy"], "not a regular file"),
    (["train", DIGITS, "--data", "/dev/zero", "-o", "{tmp}/out", "--quiet"], "not a regular file or folder"),
], ids=["check", "build", "convert", "run", "train"])
def test_endless_files_are_refused_not_read_forever(tmp_path, argv, message):
    """/dev/zero has no end and reports size 0: reading it whole would hang and fill memory."""
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    proc = subprocess.run([sys.executable, "-m", "cnnspec", *argv], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    err = proc.stderr.strip()
    assert proc.returncode == 2 and message in err and len(err.splitlines()) == 1, err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["build", "train"])
def test_a_spec_too_big_to_export_is_refused_before_any_work(tmp_path, capsys, command):
    spec = tmp_path / "huge.yaml"
    spec.write_text("cnnspec: 1\nname: huge\ninput: [3, 224, 224]\nlayers:\n  - flatten\n  - dense: 4096\n")
    extra = ["--data", "digits"] if command == "train" else []
    assert main([command, str(spec), "-o", str(tmp_path / "out"), "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert "616,566,784 parameters (2.30 GiB as float32)" in err and "at most 2 GiB" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "out").exists()


def test_weights_bigger_than_memory_are_refused_before_allocating():
    import cnnspec
    from cnnspec.errors import UsageError
    from cnnspec.graph.resources import require_memory

    graph = cnnspec.loads("cnnspec: 1\nname: big\ninput: [1, 100, 100]\nlayers: [flatten, {dense: 100000}]\n").graph
    require_memory(graph, memory=64 * 2 ** 30)  # 4 GB of weights fit in 64 GiB
    with pytest.raises(UsageError, match=r"1,000,100,000 parameters \(3.73 GiB as float32\), more than half"):
        require_memory(graph, memory=4 * 2 ** 30)
