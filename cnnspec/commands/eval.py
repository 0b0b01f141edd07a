"""``cnnspec eval``: score an exported model on the held-out split of a data source (ONNX Runtime)."""
from __future__ import annotations

import argparse
import json

NAME = "eval"
HELP = "score an exported ONNX classifier on a data source's held-out split: accuracy, loss, per-class, confusion"


def add_arguments(parser):
    parser.add_argument("model", metavar="MODEL.onnx", help="a model written by 'cnnspec train' or 'build' "
                                                            "(fp32 or quantised)")
    parser.add_argument("--data", required=True, metavar="SOURCE",
                        help="as for train: 'digits', an MNIST .npz, an IDX folder or an image folder; the "
                             "held-out split is the one train holds out")
    parser.add_argument("--provider", choices=("cpu", "cuda"), default="cpu",
                        help="ONNX Runtime execution provider; cuda never falls back to the CPU silently")
    parser.add_argument("--batch-size", type=int, default=256, metavar="N",
                        help="images per run (default 256)")
    parser.add_argument("--output", metavar="NAME", default=None,
                        help="for a model with several outputs, the one judged, by layer name (default: the first)")
    parser.add_argument("--strict", action="store_true", help="an unreadable image is an error instead of being "
                                                               "skipped and counted")
    parser.add_argument("--json", action="store_true", help="print one JSON document (accuracy, loss, per_class, "
                                                            "confusion_matrix, ...)")
    parser.add_argument("--batch", type=int, dest="batch_size", default=argparse.SUPPRESS, metavar="N",
                        help="same as --batch-size")


def run(args) -> int:
    from ..training.evaluate import evaluate_model, format_evaluation

    result = evaluate_model(args.model, args.data, provider=args.provider, batch_size=args.batch_size,
                            output=args.output, strict=args.strict)
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else format_evaluation(result))
    return 0
