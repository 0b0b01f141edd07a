"""``cnnspec run``: run an exported model with ONNX Runtime on .npy arrays or image files."""
from __future__ import annotations

NAME = "run"
HELP = "run an exported ONNX model on .npy arrays or images; print the top classes, or save map outputs as .npy"


def add_arguments(parser):
    parser.add_argument("model", metavar="MODEL.onnx", help="a model written by 'cnnspec build'")
    parser.add_argument("--input", "-i", nargs="+", required=True, metavar="FILE", dest="inputs",
                        help=".npy arrays ([N, C, H, W] or [C, H, W]) or images (resized to the model's input, "
                             "scaled to [0, 1]), or folders of them (every image and .npy array in it)")
    parser.add_argument("--provider", choices=("cpu", "cuda"), default="cpu",
                        help="ONNX Runtime execution provider; cuda never falls back to the CPU silently")
    parser.add_argument("--batch-size", "--batch", dest="batch_size", type=int, default=32, metavar="N",
                        help="samples per run (default 32)")
    parser.add_argument("--top", type=int, default=5, metavar="K", help="classes shown per sample (default 5)")
    parser.add_argument("--save", metavar="DIR", default=None,
                        help="write the raw outputs as .npy files, one per input file, into DIR; a model whose "
                             "output is a map (a segmentation) always does (default DIR: outputs)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args) -> int:
    from ..runner import format_results, run_model, to_json

    result = run_model(args.model, args.inputs, provider=args.provider, batch_size=args.batch_size, top=args.top,
                       save=args.save)
    print(to_json(result) if args.json else format_results(result))
    return 0
