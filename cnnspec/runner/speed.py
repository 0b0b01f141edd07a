"""Honest speed figures on a shared, noisy machine: every model is timed in the same rounds, in
alternation, so a change in the machine's load hits all of them alike, and a ratio is taken round by
round (the median of the per-round ratios), never between two runs made at different moments.

Framework-free: a model here is any ``step()`` callable that runs one batch; numpy only for the
percentiles. ``cnnspec bench``, ``cnnspec quantize`` and ``bench/bench_quantize.py`` share it.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class Timing:
    """One model at one batch size: per-call latencies (seconds) from every round."""

    name: str
    batch: int
    latencies: tuple[float, ...]
    round_medians: tuple[float, ...]

    def percentile(self, p: float) -> float:
        import numpy as np

        return float(np.percentile(np.asarray(self.latencies), p))

    @property
    def images_per_second(self) -> float:
        """From the median latency: one slow call (another process's burst) does not move it."""
        return self.batch / self.percentile(50)

    def to_json(self) -> dict:
        return {"batch": self.batch, "calls": len(self.latencies),
                **{f"p{p}_ms": round(self.percentile(p) * 1e3, 6) for p in PERCENTILES},
                "images_per_second": round(self.images_per_second, 2)}


@dataclass(frozen=True)
class Comparison:
    """Several models timed together at one batch size."""

    batch: int
    timings: dict[str, Timing] = field(default_factory=dict)

    def ratio(self, faster: str, slower: str) -> float:
        """How many times faster ``faster`` runs than ``slower``: the median of per-round ratios of
        round-median latencies (each round saw both under the same load)."""
        a, b = self.timings[faster].round_medians, self.timings[slower].round_medians
        return statistics.median(y / x for x, y in zip(a, b))


def compare(steps: dict, batch: int, seconds: float = 2.0, rounds: int = 5, warmup: int = 3,
            settle: float = 0.0) -> Comparison:
    """Time every ``step()`` (one batch each) for about ``seconds`` in all, in ``rounds`` rounds; in
    each round the models take turns (the order rotates), each running for ``seconds / (rounds *
    len(steps))``, at least one call.

    ``settle``: seconds to sleep before each turn. An ONNX Runtime session with spinning on (its
    default) keeps its threads spinning for a while after ``run`` returns, which slowed whichever
    model took the next turn: an identical second session measured 1.44x faster at batch 1 (1.09x at
    32) than the first, which always followed a spinning one (ResNet-18 int8, 2 shared cores). Give
    a settle (0.05 s is ample) whenever a spinning session is among the steps."""
    names = list(steps)
    for name in names:
        for _ in range(warmup):
            steps[name]()
    share = seconds / (max(rounds, 1) * max(len(names), 1))
    latencies = {n: [] for n in names}
    medians = {n: [] for n in names}
    for r in range(max(rounds, 1)):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            step, mine = steps[name], []
            if settle > 0:
                time.sleep(settle)
            start = time.perf_counter()
            while True:
                t0 = time.perf_counter()
                step()
                mine.append(time.perf_counter() - t0)
                if time.perf_counter() - start >= share:
                    break
            latencies[name].extend(mine)
            medians[name].append(statistics.median(mine))
    return Comparison(batch, {n: Timing(n, batch, tuple(latencies[n]), tuple(medians[n])) for n in names})


def session_step(session, batch_input):
    """``step()`` for an ONNX Runtime session on one fixed batch."""
    name = session.get_inputs()[0].name
    feed = {name: batch_input}
    return lambda: session.run(None, feed)


def tile_batch(images, batch: int):
    """A batch of ``batch`` images from ``images`` (repeated where there are fewer), contiguous float32."""
    import numpy as np

    reps = -(-batch // len(images))
    return np.ascontiguousarray(np.concatenate([images] * reps, axis=0)[:batch], dtype=np.float32)
