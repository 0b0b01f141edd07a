"""``cnnspec quantize``: int8 from an fp32 model, calibrated on a data source's training part,
measured on its held-out part, refused when it loses more than --max-drop points."""
from __future__ import annotations

import sys

NAME = "quantize"
HELP = "static int8 quantisation (QDQ, per-channel) calibrated on training images; refused if accuracy drops"


def add_arguments(parser):
    from ..quantize.pipeline import DEFAULT_MAX_DROP, DEFAULT_SAMPLES, DEFAULT_SPEED_SECONDS
    from ..quantize.recipes import RECIPES

    parser.add_argument("model", metavar="MODEL.onnx", help="an fp32 model written by 'cnnspec build' or 'train'")
    parser.add_argument("--calibrate", metavar="SOURCE",
                        help="as train's --data ('digits', an MNIST .npz, an IDX folder, an image folder), or a "
                             "folder of unlabelled images; only its training part is read for calibration")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, metavar="N",
                        help=f"calibration images, drawn from the training part (default {DEFAULT_SAMPLES})")
    parser.add_argument("--max-drop", type=float, default=DEFAULT_MAX_DROP, metavar="P",
                        help=f"refuse when held-out accuracy drops by more than P points (default {DEFAULT_MAX_DROP:g})")
    parser.add_argument("--force", action="store_true", help="write the int8 model even past --max-drop")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default=None,
                        help="override the recipe chosen for this CPU (see 'bench/bench_quantize.py')")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="ONNX Runtime threads for the measurements (default: the cores this process may use)")
    parser.add_argument("--speed-seconds", type=float, default=DEFAULT_SPEED_SECONDS, metavar="S",
                        help=f"time spent on each speed figure (default {DEFAULT_SPEED_SECONDS:g}; 0 skips them)")
    parser.add_argument("--dynamic", action="store_true", help="(not offered: prints why)")
    parser.add_argument("-o", "--out", metavar="OUT.onnx", dest="out", help="default: MODEL.int8.onnx beside the model")
    parser.add_argument("--output", metavar="NAME", default=None,
                        help="for a model with several outputs, the one whose accuracy is judged, by layer name "
                             "(default: the first); the whole graph is calibrated either way")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON document")


def run(args) -> int:
    from ..errors import UsageError
    from ..quantize import DYNAMIC_REFUSAL, format_report, quantize_source, report_json, slower_warning

    if args.dynamic:
        raise UsageError(DYNAMIC_REFUSAL)
    if not args.calibrate:
        raise UsageError("--calibrate SOURCE is required: static quantisation needs training images to set its ranges")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be 1 or more, got {args.threads}")
    report = quantize_source(args.model, args.calibrate, output=args.out, judge=args.output, samples=args.samples,
                             max_drop=args.max_drop, force=args.force, recipe=args.recipe,
                             speed_seconds=args.speed_seconds, threads=args.threads)
    print(report_json(report) if args.json else format_report(report))
    warning = slower_warning(report)
    if warning:
        print(f"cnnspec: warning: {warning}", file=sys.stderr)
    return 0
