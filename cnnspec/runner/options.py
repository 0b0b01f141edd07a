"""ONNX Runtime session settings for cnnspec's CNNs, each with what it was measured to buy
(ResNet-18, ONNX Runtime 1.32, this project's 2-core AVX2 machine shared with other jobs; figures
from ``bench/bench_quantize.py --sessions``, ratios within one run).

- graph optimisation ``ORT_ENABLE_ALL`` (ONNX Runtime's default, kept explicit): the NCHWc layout
  for fp32 convolutions and the QDQ fusions (QLinearConv, NHWC) for int8; ``EXTENDED`` ran fp32 at
  0.5-0.7x.
- CPU memory arena on (the default, kept explicit): off ran at 0.87-0.96x.
- intra-op threads: the cores this process may use (``os.sched_getaffinity``, which honours
  taskset and cpusets), or ``--threads``; ONNX Runtime's own default counts every physical core of
  the machine, too many in a container limited to fewer.
- thread spinning off: a thread that spins while waiting holds a core that another job, or its
  sibling thread, needs; on the shared machine fp32 batch 1 ran 1.5x faster without it, int8 2.3x,
  and it changed batch 32 by less than the noise. This is the setting behind ORT fp32's swings
  against PyTorch eager at batch 1 (see the README's deployment section).
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
