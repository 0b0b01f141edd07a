"""``cnnspec bench``: latency percentiles and images/s of any ONNX model with one [N, C, H, W] float
input, per batch size, on the provider asked for; with another model, the ratio measured in the same
rounds (:mod:`cnnspec.runner.speed`), so load on a shared machine hits both alike.

Inputs are uniform [0, 1) noise of the model's input size, drawn with a fixed seed: a CNN does the
same work whatever the pixels. With ``--provider cuda``, each call includes the copies to and from
the GPU, as ``cnnspec run`` does.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError, plural

MAX_BATCH = 4096
MAX_INPUT_BYTES = 2 * 1024 ** 3
INPUT_SEED = 0


@dataclass(frozen=True)
class Bench:
    """One model file, opened for timing."""

    path: str
    name: str
    session: object
    chw: tuple[int, int, int]
    fixed_batch: int | None
    model: object = None  # the parsed file: its shapes size each batch's activations before it runs


def parse_batches(text: str) -> tuple[int, ...]:
    """'1,8,32' -> (1, 8, 32); one line naming what is wrong otherwise."""
    try:
        batches = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UsageError(f"--batch takes whole numbers separated by commas, like 1,8,32; got '{text}'") from None
    if not batches or any(not 1 <= b <= MAX_BATCH for b in batches):
        raise UsageError(f"--batch sizes must be 1 to {MAX_BATCH}; got '{text}'")
    return tuple(dict.fromkeys(batches))


def open_bench(path: str, provider: str, threads: int | None) -> Bench:
    from ..onnxfile.boundary import metadata
    from .session import input_layout, open_session

    model, session = open_session(path, provider, threads)
    meta = metadata(model)
    batch, chw = input_layout(path, session, meta)
    return Bench(path, meta.get("cnnspec.name", model.graph.name) or path, session, tuple(chw), batch, model)


def batch_input(bench: Bench, batch: int):
    import numpy as np

    if bench.fixed_batch is not None and batch != bench.fixed_batch:
        raise UsageError(f"{bench.path}: the model takes batches of exactly {bench.fixed_batch}; use --batch "
                         f"{bench.fixed_batch}")
    size = 4 * batch
    for d in bench.chw:
        size *= d
    if size > MAX_INPUT_BYTES:
        raise UsageError(f"{bench.path}: a batch of {batch} is {size} bytes of input, more than the "
                         f"{MAX_INPUT_BYTES} cnnspec bench allocates; use a smaller --batch")
    if bench.model is not None:
        from .footprint import require_batch_fits

        require_batch_fits(bench.model, bench.path, batch)
    rng = np.random.default_rng(INPUT_SEED)
    return rng.random((batch, *bench.chw), dtype=np.float32)


def run_bench(model: str, batches, provider: str = "cpu", threads: int | None = None, seconds: float = 3.0,
              against: str | None = None) -> dict:
    """Time ``model`` (and ``against``) at every batch size; a JSON-ready result."""
    import onnxruntime as ort

    from .cpuinfo import int8_isa
    from .options import default_threads
    from .speed import compare, session_step

    if not seconds > 0:
        raise UsageError(f"--seconds must be more than 0, got {seconds}")
    benches = {"model": open_bench(model, provider, threads)}
    if against is not None:
        benches["against"] = open_bench(against, provider, threads)
    rows = []
    for batch in batches:
        steps = {role: session_step(b.session, batch_input(b, batch)) for role, b in benches.items()}
        c = compare(steps, batch, seconds=seconds * len(steps))
        row = {"batch": batch, **{role: c.timings[role].to_json() for role in benches}}
        if against is not None:
            row["ratio"] = round(c.ratio("model", "against"), 4)
        rows.append(row)
    return {
        "model": model, "name": benches["model"].name, "against": against, "provider": provider,
        "threads": threads or default_threads(), "cpu": int8_isa(), "onnxruntime": ort.__version__,
        "input_shape": list(benches["model"].chw), "seconds_per_batch": seconds, "results": rows,
    }


def format_bench(result: dict) -> str:
    lines = [f"{result['model']} ({result['name']}) on {result['provider']}, {result['threads']} threads, "
             f"CPU {result['cpu']}, onnxruntime {result['onnxruntime']}"]
    if result["against"]:
        lines.append(f"against {result['against']}, timed in the same alternating rounds")
    roles = ("model", "against") if result["against"] else ("model",)
    for row in result["results"]:
        for role in roles:
            t = row[role]
            who = "" if not result["against"] else ("  this " if role == "model" else "  other")
            lines.append(f"batch {row['batch']:>4}{who}  p50 {t['p50_ms']:9.3f} ms  p90 {t['p90_ms']:9.3f} ms  "
                         f"p99 {t['p99_ms']:9.3f} ms  {t['images_per_second']:10.1f} images/s  ({plural(t['calls'], 'call')})")
        if "ratio" in row:
            lines.append(f"batch {row['batch']:>4}  {result['model']} {speed_words(row['ratio'])} "
                         f"{result['against']} (median of per-round ratios) on {result['cpu']}")
    lines.append(f"timed {result['seconds_per_batch']:g} s per batch size and model; for steadier figures, "
                 f"measure longer (--seconds 5) and at more sizes (--batch 1,8,32)")
    return "\n".join(lines)


def speed_words(ratio: float) -> str:
    """How a model's speed compares with another's, from the ratio of their speeds (>1: faster)."""
    if ratio >= 1.005:
        return f"runs {ratio:.2f}x faster than"
    if ratio <= 0.995:
        return f"runs {1 / ratio:.2f}x slower than"
    return "runs as fast as"
