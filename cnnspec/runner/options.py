"""ONNX Runtime session settings for cnnspec's CNNs, each with what it was measured to buy
(ResNet-18 fp32 and int8, ONNX Runtime 1.32, this project's 2-core AVX2 machine shared with other
jobs; ``bench/bench_quantize.py`` part 2, over several sessions, speed relative to these settings):

- graph optimisation ``ORT_ENABLE_ALL`` (ONNX Runtime's default, kept explicit): the NCHWc layout
  for fp32 convolutions and the QDQ fusions (QLinearConv, NHWC) for int8; ``EXTENDED`` ran fp32 at
  0.5-0.8x.
- CPU memory arena on (the default, kept explicit): off ran at 0.78-0.96x.
- intra-op threads: the cores this process may use (``os.sched_getaffinity``, which honours
  taskset and cpusets), or ``--threads``; ONNX Runtime's own default counts the machine's physical
  cores, too many in a container limited to fewer. One thread instead of two: 0.4-1.16x at batch 1
  (the machine's load decides), 0.84-0.92x at batch 32.
- thread spinning off: a thread that spins while it waits holds a core that another job, or its
  own sibling, needs. Timed with a pause between turns (a spinning session also slows whatever runs
  right after it, which inflated the figures of earlier sessions): with one other busy process on
  the 2 cores, spinning ran fp32 at 0.67x and int8 at 0.70x at batch 1 (0.97-1.01x at 32); on a
  quiet machine it was 1.04x and 1.14x faster at batch 1 (1.01-1.03x at 32). Shared machines (CI
  runners, laptops) are the common case, so it stays off. Waiting actively is also what made ORT
  fp32 against PyTorch eager swing between runs (README, deployment section).
"""
from __future__ import annotations

import os

SPINNING_KEY = "session.intra_op.allow_spinning"


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def session_options(threads: int | None = None, spinning: bool = False):
    """cnnspec's SessionOptions: errors-only logging and the settings above."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: warnings would interleave with the results
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = True
    options.intra_op_num_threads = threads or default_threads()
    options.add_session_config_entry(SPINNING_KEY, "1" if spinning else "0")
    return options
