"""The streamed image pipeline of ``cnnspec train`` (printed in one run, as ratios):

1. throughput: images/s of cnnspec's torch data path (the core's BatchReader over ImageFiles, in a
   DataLoader with N worker processes) against a hand-written torchvision-style ImageFolder Dataset
   (Pillow open, convert, bilinear resize, to float [C, H, W]) in a DataLoader with the same N
   workers and batch size; one pass each, alternated, median of R rounds. Target: >= 0.9x.
2. --rss: peak RSS of one epoch of ``cnnspec train`` on a generated folder of 20,000 small images
   against the same run on 2,000 (acceptance: within 1.25x + 200 MB).
3. --freeze: images/s of ``cnnspec train`` on digits with the backbone frozen (--freeze-until) against
   the whole model training (no gradient is computed for frozen layers).

Usage: python bench/bench_data.py [--images N] [--size S] [--workers W] [--rounds R] [--rss] [--freeze]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "backends")]


def write_folder(root: Path, n: int, size: int, classes: int = 10) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
            root / f"class{i % classes}" / f"{i:06d}.png")
    return root


class HandWrittenImageFolder:
    """What a person writes without torchvision: (path, label) pairs, Pillow per item."""

    def __init__(self, root: Path, size: int):
        self.items = [(str(p), c) for c, d in enumerate(sorted(root.iterdir())) for p in sorted(d.iterdir())]
        self.size = size

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        import numpy as np
        import torch
        from PIL import Image

        path, label = self.items[i]
        with Image.open(path) as img:
            img = img.convert("RGB").resize((self.size, self.size), Image.Resampling.BILINEAR)
            x = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
        return torch.from_numpy(np.ascontiguousarray(x)), label


def throughput(root: Path, size: int, workers: int, batch: int, rounds: int):
    import numpy as np
    import torch

    from cnnspec.data.folders import scan_folder
    from cnnspec.data.stream import BatchReader, ImageFiles
    from cnnspec.training.batching import epoch_batches
    from cnnspec_torch.training import stream_loader

    tr_paths, y_train, te_paths, y_test, *_ = scan_folder(root)
    paths = tuple(tr_paths + te_paths)
    labels = np.concatenate([y_train, y_test])
    files = ImageFiles(paths, (3, size, size))
    reference = HandWrittenImageFolder(root, size)

    def ours(r):
        reader = BatchReader(files, labels, tuple(epoch_batches(len(paths), batch, 0, r + 1)))
        return sum(len(yb) for _, yb, _, _ in stream_loader(reader, workers))

    def theirs(r):
        loader = torch.utils.data.DataLoader(reference, batch_size=batch, shuffle=True, num_workers=workers,
                                             generator=torch.Generator().manual_seed(r))
        return sum(len(yb) for _, yb in loader)

    rates = {"cnnspec": [], "hand-written": []}
    for r in range(rounds):
        for name, fn in (("cnnspec", ours), ("hand-written", theirs)):
            start = time.perf_counter()
            n = fn(r)
            rates[name].append(n / (time.perf_counter() - start))
    return {k: statistics.median(v) for k, v in rates.items()}


SPEC = """cnnspec: 1
name: bench-data
input: [3, 16, 16]
layers:
  - conv2d: {filters: 8, kernel: 3, padding: same, activation: relu}
  - batchnorm
  - maxpool2d: 2
  - flatten
  - dense: 10
"""
PEAK = textwrap.dedent("""
    import resource, sys
    from cnnspec.cli import main
    code = main(sys.argv[1:])
    print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
    sys.exit(code)
""")


def peak_rss(tmp: Path, folder: Path, workers: int) -> int:
    (tmp / "peak.py").write_text(PEAK)
    (tmp / "spec.yaml").write_text(SPEC)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "backends")])}
    proc = subprocess.run([sys.executable, "peak.py", "train", "spec.yaml", "--data", str(folder), "--epochs", "1",
                           "--batch-size", "64", "--workers", str(workers), "--val-fraction", "0", "--quiet",
                           "-o", str(tmp / f"out-{folder.name}")], cwd=tmp, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    return int(proc.stdout.split("PEAK")[1].split()[0]) * 1024


FREEZE_SPEC = """cnnspec: 1
name: bench-freeze
input: [1, 8, 8]
layers:
  - conv2d: {filters: 64, kernel: 3, padding: same, activation: relu}
  - batchnorm
  - conv2d: {filters: 64, kernel: 3, padding: same, activation: relu}
  - batchnorm
  - conv2d: {filters: 64, kernel: 3, padding: same, activation: relu}
  - batchnorm
  - global_avgpool2d
  - dense: 10
"""


def freeze_speed(tmp: Path, epochs: int):
    (tmp / "freeze.yaml").write_text(FREEZE_SPEC)
    out = {}
    for name, extra in (("all layers train", []), ("backbone frozen", ["--freeze-until", "batchnorm_3"])):
        subprocess.run([sys.executable, "-m", "cnnspec.cli", "train", "freeze.yaml", "--data", "digits", "--epochs",
                        str(epochs), "--quiet", "-o", str(tmp / name.replace(" ", "-")), *extra], cwd=tmp,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "backends")])},
                       check=True, capture_output=True)
        out[name] = json.loads((tmp / name.replace(" ", "-") / "metrics.json").read_text())["images_per_second"]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rss", action="store_true", help="also peak RSS of 20,000 against 2,000 images")
    parser.add_argument("--freeze", action="store_true", help="also the speed-up of a frozen backbone")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = write_folder(tmp / "pics", args.images, args.size)
        rates = throughput(folder, args.size, args.workers, args.batch_size, args.rounds)
        print(f"throughput, {args.images} {args.size}x{args.size} PNGs, {args.workers} workers, batch "
              f"{args.batch_size}: cnnspec {rates['cnnspec']:.0f} images/s, hand-written ImageFolder+DataLoader "
              f"{rates['hand-written']:.0f} images/s: ratio {rates['cnnspec'] / rates['hand-written']:.2f}x "
              f"(target >= 0.9x)")
        if args.rss:
            small, large = write_folder(tmp / "small", 2000, 16), write_folder(tmp / "large", 20000, 16)
            a, b = peak_rss(tmp, small, args.workers), peak_rss(tmp, large, args.workers)
            print(f"peak RSS, one epoch: 2,000 images {a / 2**20:.0f} MB, 20,000 images {b / 2**20:.0f} MB: ratio "
                  f"{b / a:.2f}x (acceptance: <= 1.25x + 200 MB: {'met' if b <= 1.25 * a + 200 * 2**20 else 'NOT met'})")
        if args.freeze:
            speed = freeze_speed(tmp, 3)
            print(f"--freeze-until (backbone frozen): {speed['backbone frozen']:.0f} images/s against "
                  f"{speed['all layers train']:.0f} with every layer training: "
                  f"{speed['backbone frozen'] / speed['all layers train']:.2f}x")


if __name__ == "__main__":
    main()
