"""The torch backend makes PyTorch's OpenMP threads wait passively, in a fresh process each (libgomp
reads OMP_WAIT_POLICY once, when torch loads it): set when nobody decided, a user's own value kept,
nothing set once torch was imported first."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRINT_POLICY = "import os; {before}import cnnspec_torch; print(os.environ.get('OMP_WAIT_POLICY', 'unset'))"


def policy_after_import(env_policy=None, before=""):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "backends"), env.get("PYTHONPATH", "")])
    if env_policy is not None:
        env["OMP_WAIT_POLICY"] = env_policy
    code = PRINT_POLICY.format(before=before)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_passive_when_nobody_decided():
    assert policy_after_import() == "PASSIVE"


@pytest.mark.parametrize("value", ["ACTIVE", "passive", ""])
def test_a_users_own_policy_is_kept(value):
    assert policy_after_import(value) == value


def test_nothing_set_once_torch_is_loaded():
    pytest.importorskip("torch")
    assert policy_after_import(before="import torch; ") == "unset"


def test_discovery_sets_it_before_torch_loads():
    """The entry point (what every cnnspec command's backend lookup loads) imports the package, not torch."""
    code = ("import os, sys; from cnnspec.backend.plugins import discover; discover(); "
            "print(os.environ.get('OMP_WAIT_POLICY', 'unset'), 'torch' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "backends"), env.get("PYTHONPATH", "")])
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["PASSIVE", "False"]
