"""Every benchmark in bench/, one after another, each in its own process (so one's imports and
threads do not colour another's timings). ``make bench`` runs this.

    .venv/bin/python bench/run_all.py [--only check,onnx_writer,torch_onnx,keras,train,quantize,import,lsp,data]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ("check", "onnx_writer", "torch_onnx", "keras", "train", "quantize", "import", "lsp", "data")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated subset of " + ", ".join(BENCHES))
    args = parser.parse_args()
    chosen = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = [b for b in chosen if b not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    failed = []
    for name in chosen:
        print(f"\n=== bench_{name}.py", flush=True)
        start = time.perf_counter()
        rc = subprocess.call([sys.executable, str(HERE / f"bench_{name}.py")])
        print(f"=== bench_{name}.py: exit {rc} after {time.perf_counter() - start:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
