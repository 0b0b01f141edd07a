"""``cnnspec bench``: honest speed figures for any model: warm-up, latency p50/p90/p99 and images/s
per batch size, and with --against the ratio measured in the same run."""
from __future__ import annotations

import json

NAME = "bench"
# defaults that answer in a few seconds (the README's int8-against-fp32 example: ~5 s on 2 cores);
# --seconds and --batch measure longer
DEFAULT_BATCHES = "1,32"
DEFAULT_SECONDS = 1.0
HELP = "time an ONNX model: latency p50/p90/p99 and images/s per batch size; --against for a ratio in one run"


def add_arguments(parser):
    parser.add_argument("model", metavar="MODEL.onnx", help="any ONNX model with one [N, C, H, W] float input")
    parser.add_argument("--batch", "--batch-size", dest="batch", default=DEFAULT_BATCHES, metavar="B,B,...",
                        help=f"batch sizes (default {DEFAULT_BATCHES}; more for a fuller picture: 1,8,32)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="ONNX Runtime intra-op threads (default: the cores this process may use)")
    parser.add_argument("--provider", choices=("cpu", "cuda"), default="cpu",
                        help="ONNX Runtime execution provider; cuda never falls back to the CPU silently")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, metavar="S",
                        help=f"time per batch size and model, after warm-up (default {DEFAULT_SECONDS:g}, an "
                             f"answer in seconds; measure longer, --seconds 5, for steadier figures)")
    parser.add_argument("--against", metavar="OTHER.onnx",
                        help="time this model too, in alternating rounds, and print the ratio")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args) -> int:
    from ..errors import UsageError
    from ..runner.benchmark import format_bench, parse_batches, run_bench

    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be 1 or more, got {args.threads}")
    result = run_bench(args.model, parse_batches(args.batch), provider=args.provider, threads=args.threads,
                       seconds=args.seconds, against=args.against)
    print(json.dumps(result, indent=2) if args.json else format_bench(result))
    return 0
