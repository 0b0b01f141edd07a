"""``cnnspec lsp`` on ResNet-50's spec, driven by a plain JSON-RPC client over stdio, each figure beside
``check``'s own time on the same text (the pipeline in process: parse, compile, lint, ``--json``
report; and a cold ``cnnspec check`` process):

- diagnostics latency: a change sent -> its diagnostics received (the 50 ms debounce included),
  median of 20 edits on a warm server;
- inlay hints latency for the whole file: on a checked text, and right after a change (the request
  then waits for the check);
- memory: the server's resident set after 100 and after 1,000 edits (each edit checked), and
  ``cnnspec check``'s peak resident set.

    .venv/bin/python bench/bench_lsp.py [--edits 1000]
"""
from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from lsp_client import Client  # noqa: E402

SPEC = ROOT / "specs" / "resnet50.yaml"
TARGET_DIAGNOSTICS_S, TARGET_HINTS_S = 0.150, 0.100


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def edit(text: str, k: int) -> str:
    """A real edit: the classifier's width changes, so every shape after it is checked again."""
    return text.replace("{dense: 1000, name: fc}", f"{{dense: {1000 + k % 7}, name: fc}}")


def check_in_process(text: str, repeat: int) -> float:
    from cnnspec.lsp.analysis import analyse

    analyse(text, str(SPEC), SPEC)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        analyse(text, str(SPEC), SPEC)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def check_cold(repeat: int) -> tuple[float, int]:
    cmd = [sys.executable, "-m", "cnnspec", "check", str(SPEC)]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, cwd=ROOT, check=True)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, cwd=ROOT, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=1000, help="edits for the memory figure (default 1000)")
    args = parser.parse_args()
    text = SPEC.read_text()
    in_process = check_in_process(text, 20)
    cold, check_rss = check_cold(5)

    with Client() as c:
        c.initialize()
        uri = SPEC.as_uri()
        c.open(uri, text)
        assert c.diagnostics(uri, 1) == [], "ResNet-50 should check clean"
        version = 1
        for _ in range(5):  # warm
            version += 1
            c.change(uri, edit(text, version), version)
            c.diagnostics(uri, version)
        diagnostics, hints_fresh, hints_stale = [], [], []
        for _ in range(20):
            version += 1
            start = time.perf_counter()
            c.change(uri, edit(text, version), version)
            c.diagnostics(uri, version)
            diagnostics.append(time.perf_counter() - start)
            start = time.perf_counter()
            found = c.hints(uri)
            hints_fresh.append(time.perf_counter() - start)
            assert len(found) == 10, found
        for _ in range(20):
            version += 1
            start = time.perf_counter()
            c.change(uri, edit(text, version), version)
            c.hints(uri)
            hints_stale.append(time.perf_counter() - start)
            c.diagnostics(uri, version)
        memory = {}
        for k in range(1, args.edits + 1):
            version += 1
            c.change(uri, edit(text, version), version)
            c.hints(uri)  # checks the new text now, past the debounce
            if k in (100, args.edits):
                memory[k] = rss_kib(c.proc.pid)
        c.notifications.clear()
        assert c.close() == 0

    med_d, med_hf, med_hs = (statistics.median(x) for x in (diagnostics, hints_fresh, hints_stale))
    print(f"cnnspec lsp on {SPEC.relative_to(ROOT)} (warm server, medians of 20 edits; 2-core machine)")
    print(f"  check's pipeline in process (what the server runs)   {in_process * 1000:7.1f} ms   1.0x")
    print(f"  cnnspec check, cold process                           {cold * 1000:7.1f} ms   {cold / in_process:5.1f}x")
    print(f"  change -> diagnostics (50 ms debounce included)       {med_d * 1000:7.1f} ms   {med_d / in_process:5.1f}x"
          f"   {med_d / cold:5.2f}x cold check")
    print(f"  inlay hints, whole file, checked text                 {med_hf * 1000:7.1f} ms   {med_hf / in_process:5.1f}x"
          f"   {med_hf / cold:5.2f}x cold check")
    print(f"  inlay hints right after a change (waits for check)    {med_hs * 1000:7.1f} ms   {med_hs / in_process:5.1f}x"
          f"   {med_hs / cold:5.2f}x cold check")
    first, last = memory[100], memory[args.edits]
    print(f"  server memory after 100 edits {first / 1024:.1f} MiB, after {args.edits} edits {last / 1024:.1f} MiB: "
          f"{last / first:.3f}x; cnnspec check's peak {check_rss / 1024:.1f} MiB ({last / check_rss:.2f}x)")
    ok_d, ok_h, ok_m = med_d < TARGET_DIAGNOSTICS_S, max(med_hf, med_hs) < TARGET_HINTS_S, last / first < 1.10
    print(f"targets: diagnostics under 150 ms -> {'met' if ok_d else 'NOT met'}; hints under 100 ms -> "
          f"{'met' if ok_h else 'NOT met'}; memory flat (under 1.10x) -> {'met' if ok_m else 'NOT met'}")
    return 0 if ok_d and ok_h and ok_m else 1


if __name__ == "__main__":
    sys.exit(main())
