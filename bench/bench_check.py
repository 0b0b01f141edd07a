"""`cnnspec check` on ResNet-50 in a cold process, beside what a user pays today to learn the same
shapes: import torch, build the model by hand, and run a forward pass with shape hooks
(what torchinfo does). Both run as fresh processes; medians of several runs, printed in one run.
A valid spec is checked without importing jsonschema (see cnnspec/spec/fastschema.py); a spec with errors
pays for it, and that case is timed too.

    .venv/bin/python bench/bench_check.py [--repeat 5] [--against OTHER_CHECKOUT]

``--against`` times ``check`` on ResNet-50 from another checkout of cnnspec (``git worktree add
/tmp/old REV``) in alternation with this one, and prints the ratio of the medians: a refactor's cost.
"""
from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TORCH_WAY = r'''
import torch, torch.nn as nn
def conv_bn(cin, cout, k, s=1, p=0):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, p, bias=False), nn.BatchNorm2d(cout))
class Bottleneck(nn.Module):
    def __init__(self, cin, width, stride, down):
        super().__init__()
        self.a = conv_bn(cin, width, 1); self.b = conv_bn(width, width, 3, stride, 1); self.c = conv_bn(width, width * 4, 1)
        self.down = conv_bn(cin, width * 4, 1, stride) if down else nn.Identity()
    def forward(self, x):
        y = torch.relu(self.a(x)); y = torch.relu(self.b(y)); return torch.relu(self.c(y) + self.down(x))
layers = [conv_bn(3, 64, 7, 2, 3), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
cin = 64
for width, n, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
    for i in range(n):
        layers.append(Bottleneck(cin, width, stride if i == 0 else 1, i == 0)); cin = width * 4
model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000)).eval()
shapes = []
for m in model.modules():
    if not list(m.children()):
        m.register_forward_hook(lambda mod, i, o: shapes.append(tuple(o.shape)))
with torch.no_grad():
    model(torch.zeros(1, 3, 224, 224))
print(len(shapes), shapes[-1], sum(p.numel() for p in model.parameters()))
'''


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT).returncode
    if rc not in (0, 1):  # 1: the spec has errors, which is what the error-path line measures
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {rc}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--against", type=Path, metavar="CHECKOUT",
                        help="another checkout of cnnspec: time check on ResNet-50 in both, in alternation")
    args = parser.parse_args()
    if args.against:
        compare_checkouts(args.against.resolve(), args.repeat)
        return
    py = sys.executable
    runs = {
        "python -c pass (interpreter start)": [py, "-c", "pass"],
        "cnnspec check specs/resnet50.yaml": [py, "-m", "cnnspec", "check", "specs/resnet50.yaml"],
        "cnnspec check specs/resnet101.yaml": [py, "-m", "cnnspec", "check", "specs/resnet101.yaml"],
        "cnnspec check, a spec with errors": [py, "-m", "cnnspec", "check", "tests/golden/errors/typos.yaml"],
        "import torch + build + forward with hooks": [py, "-c", TORCH_WAY],
    }
    # A regular `pip install` byte-compiles the package; an editable one compiles on first import,
    # unless PYTHONDONTWRITEBYTECODE is set (as on some CI images): compile it here as pip would,
    # so the figure is what an installed cnnspec costs, not the cost of compiling its source.
    compileall.compile_dir(str(ROOT / "cnnspec"), quiet=1)
    results = {}
    for label, cmd in runs.items():
        timed(cmd)  # warm the file cache
        results[label] = statistics.median(timed(cmd) for _ in range(args.repeat))
    check = results["cnnspec check specs/resnet50.yaml"]
    width = max(map(len, results))
    print(f"cold-process times, median of {args.repeat} (2-core machine):")
    for label, seconds in results.items():
        print(f"  {label.ljust(width)}  {seconds:6.3f} s   {seconds / check:5.1f}x check")
    print(f"target: check on ResNet-50 under 0.300 s -> {'met' if check < 0.3 else 'NOT met'} ({check:.3f} s)")


def compare_checkouts(other: Path, repeat: int) -> None:
    """``check`` on ResNet-50 from this checkout and from ``other``, alternating run by run so a change
    in the machine's load hits both alike; each checkout first on its own PYTHONPATH."""
    cmd = [sys.executable, "-m", "cnnspec", "check", "specs/resnet50.yaml"]
    trees = {"this checkout": ROOT, f"{other}": other}
    envs = {label: {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'backends'}"} for label, tree in trees.items()}
    for tree in trees.values():
        compileall.compile_dir(str(tree / "cnnspec"), quiet=1)
    times: dict[str, list[float]] = {label: [] for label in trees}
    for _ in range(repeat + 1):  # the first round warms the file cache and is dropped
        for label in trees:
            start = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=envs[label],
                           check=True)
            times[label].append(time.perf_counter() - start)
    medians = {label: statistics.median(t[1:]) for label, t in times.items()}
    mine, theirs = medians["this checkout"], medians[f"{other}"]
    print(f"cnnspec check specs/resnet50.yaml, cold process, median of {repeat} alternating runs:")
    for label, seconds in medians.items():
        print(f"  {label}: {seconds:.3f} s")
    print(f"this checkout takes {mine / theirs:.2f}x the time of {other}")


if __name__ == "__main__":
    main()
