"""``cnnspec train``: train a spec on a data source; write the best epoch's weights, ONNX, metrics,
curves, history, confusion matrix and the run's settings, and a checkpoint after every epoch.

Settings come from three places, later ones winning: a resumed run's checkpoint (``--resume``), a
settings file (``--config train.yaml``, as every run writes one), and the flags given. Options are
declared once, in OPTIONS; none has an argparse default, so "given on the command line" is known.

Under ``torchrun`` (WORLD_SIZE > 1) the torch backend trains with DistributedDataParallel; every
process runs this same command, and only rank 0 writes files or progress.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "train"
HELP = "train a spec on a data source (digits, an MNIST .npz or IDX folder, CIFAR binaries, image files)"


def _augment(text):
    from ..training.augment import parse_augment

    return parse_augment(text)


def _names(text):
    return tuple(part.strip() for part in text.split(",") if part.strip())


# (flags, argparse keywords): every option of a run; its dest is its train.yaml key
OPTIONS = (
    (("--backend",), dict(metavar="NAME", help="torch or keras (default: torch)")),
    (("--data",), dict(metavar="SOURCE", help="'digits' (scikit-learn's 8x8 digits, no download), an MNIST .npz "
                                              "(x_train, y_train, x_test, y_test), a folder of MNIST IDX files, "
                                              "a folder of CIFAR-10/100 binary batches, an image folder with "
                                              "one subfolder per class (or train/ and val/ folders of them), "
                                              "or a CSV of path,label rows")),
    (("--epochs",), dict(type=int, metavar="N", help="default: 10")),
    (("--batch-size", "--batch"), dict(type=int, metavar="B",
                             help="global batch size, split across processes under torchrun (default: 32)")),
    (("--optimizer",), dict(choices=("adam", "adamw", "sgd"), help="adam, adamw (decoupled weight decay) or sgd "
                                                                   "(default: adam)")),
    (("--lr",), dict(type=float, help="peak learning rate (default: 1e-3 adam and adamw, 1e-2 sgd)")),
    (("--momentum",), dict(type=float, metavar="M", help="sgd momentum (default: 0.9)")),
    (("--nesterov",), dict(action=argparse.BooleanOptionalAction, help="sgd with Nesterov momentum (default: off)")),
    (("--weight-decay",), dict(type=float, metavar="WD", help="L2 on the gradient for adam and sgd, decoupled "
                                                              "for adamw (default: 0; adamw 0.01)")),
    (("--schedule",), dict(choices=("constant", "step", "cosine", "onecycle"),
                           help="learning rate per step: constant, step (x gamma every --step-size epochs), "
                                "cosine (to 0), onecycle (rise to lr, then anneal) (default: constant)")),
    (("--warmup",), dict(type=float, metavar="EPOCHS", help="linear warm-up from 0 to lr over these epochs "
                                                            "(onecycle: its rise; default: 0)")),
    (("--step-size",), dict(type=int, metavar="EPOCHS", help="step schedule: epochs between drops "
                                                             "(default: a third of the epochs)")),
    (("--gamma",), dict(type=float, help="step schedule: factor of each drop (default: 0.1)")),
    (("--label-smoothing",), dict(type=float, metavar="EPS", help="cross-entropy label smoothing (default: 0)")),
    (("--patience",), dict(type=int, metavar="N", help="stop when the validation accuracy has not improved "
                                                       "for N epochs (default: off)")),
    (("--precision",), dict(choices=("fp32", "bf16", "fp16"), help="fp32; bf16 autocast (CPU or CUDA); fp16 "
                                                                   "with loss scaling (CUDA, torch); the exported "
                                                                   "model is fp32 (default: fp32)")),
    (("--augment",), dict(type=_augment, metavar="LIST", help="training images only, comma-separated: crop, "
                                                              "flip, affine, jitter, erase (default: none)")),
    (("--seed",), dict(type=int, help="initial weights, shuffling, dropout, augmentation (default: 0)")),
    (("--val-fraction",), dict(type=float, metavar="F",
                               help="share of the training images held out to choose the best epoch; the test "
                                    "images never choose (0: keep the last epoch; default: 0.1)")),
    (("--device",), dict(choices=("cpu", "cuda"), help="default: cpu")),
    (("--quantize",), dict(choices=("int8",), help="also write model.int8.onnx: static int8 (as 'cnnspec quantize'), "
                                                   "calibrated on training images, judged on the test images; "
                                                   "its report goes in metrics.json (default: off)")),
    (("--quantize-samples",), dict(type=int, metavar="N", help="--quantize: calibration images (default: 256)")),
    (("--quantize-max-drop",), dict(type=float, metavar="P",
                                    help="--quantize: no model.int8.onnx when int8 loses more than P points of "
                                         "test accuracy (default: 1.0; the fp32 files are written either way)")),
    (("--workers",), dict(type=int, metavar="N", help="image files: processes (torch) or parallel calls (keras) "
                                                       "decoding batches; 0: in this process (default: the cores)")),
    (("--cache",), dict(action=argparse.BooleanOptionalAction, help="image files: decode every image into memory "
                                                                    "up front instead of streaming them (default: "
                                                                    "off; array sources are always in memory)")),
    (("--strict",), dict(action=argparse.BooleanOptionalAction, help="an unreadable image is an error instead of "
                                                                     "being skipped and counted (default: off)")),
    (("--freeze",), dict(type=_names, metavar="NAMES", help="comma-separated layers, blocks or block calls whose "
                                                            "weights do not train (batchnorm statistics included)")),
    (("--freeze-until",), dict(metavar="NAME", help="freeze every layer up to and including this one")),
    (("--lr-backbone",), dict(type=float, metavar="F", help="learning-rate factor for every layer before the head "
                                                            "(default: 1)")),
    (("--allow-partial",), dict(action=argparse.BooleanOptionalAction,
                                help="--init: tensors that do not fit beyond the head start fresh, listed "
                                     "(default: refused)")),
    (("--loss",), dict(choices=("ce", "dice", "ce+dice"), help="segmentation ([K, H, W] output): per-pixel "
                                                               "cross-entropy ignoring 255, soft Dice, or both "
                                                               "(default: ce)")),
    (("-o", "--out"), dict(metavar="DIR", dest="output", help="output folder (default: runs/<name>)")),
    (("--output",), dict(metavar="NAME", dest="output_name",
                         help="for a spec with several outputs, the one trained and judged, by layer name (default: "
                              "the first; the exported model keeps them all)")),
)


def add_arguments(parser):
    from .specchoice import add_spec_choice

    parser.add_argument("spec", metavar="SPEC", nargs="?", default=argparse.SUPPRESS,
                        help="the spec (may come from --config or --resume instead)")
    add_spec_choice(parser)
    for flags, kwargs in OPTIONS:
        parser.add_argument(*flags, default=argparse.SUPPRESS, **kwargs)
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--init", metavar="WEIGHTS", default=argparse.SUPPRESS,
                       help="start from these weights (the weights only; the optimizer, schedule and epochs "
                            "start afresh): .safetensors, .pt/.pth/.bin, .weights.h5/.h5/.keras or .onnx")
    start.add_argument("--weights", metavar="WEIGHTS", dest="init", default=argparse.SUPPRESS,
                       help="same as --init")
    start.add_argument("--resume", metavar="RUN_DIR", help="carry on an interrupted run from its folder's checkpoint, "
                                                            "exactly (its settings; flags that differ are refused)")
    parser.add_argument("--config", metavar="FILE", help="read settings from a train.yaml (every run writes one); "
                                                         "flags given here win")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or lines")


def settings_from(args) -> dict:
    """The run's settings: the checkpoint's (--resume), then the file's (--config), then the flags'."""
    from ..errors import UsageError
    from ..training.checkpoint import resume_settings
    from ..training.settings import KEYS, read_config

    given = {k: v for k, v in vars(args).items() if k in KEYS}
    values = resume_settings(args.resume) if args.resume else {}
    values.update(read_config(args.config) if args.config else {})
    values.update(given)
    if args.resume:
        folder = Path(args.resume).parent if Path(args.resume).is_file() else Path(args.resume)
        if "output" in given and Path(given["output"]).resolve() != folder.resolve():
            raise UsageError(f"-o {given['output']}: a resumed run writes into its own folder, {args.resume}")
        values.pop("output", None)
    for key, flag in (("spec", "SPEC"), ("data", "--data SOURCE")):
        if not values.get(key):
            raise UsageError(f"train needs {flag} (on the command line, or from --config or --resume)")
    return values


def run(args) -> int:
    import time

    from ..training import train
    from .specchoice import spec_choice
    from ..training.settings import config_from

    values = settings_from(args)
    config = config_from({**values, "quiet": args.quiet})
    start = time.perf_counter()

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - start:6.2f}s] {message}", file=sys.stderr, flush=True)

    result = train(values["spec"], values.get("backend") or "torch", values["data"], config,
                   outdir=values.get("output"), init=values.get("init"), resume=args.resume, progress=progress,
                   output=values.get("output_name"), choice=spec_choice(args))
    if result.outdir is not None:
        m = result.metrics
        judged = f" of output '{m['output']}'" if len(m.get("model_outputs", ())) > 1 else ""
        if "test_miou" in m:
            print(f"test_miou {m['test_miou']:.4f}{judged}, pixel accuracy {m['test_accuracy']:.4f} (epoch "
                  f"{m['best_epoch']} of {m['epochs']}, chosen by {m['selected_by']}), test_loss {m['test_loss']:.4f}"
                  + (f"; {m['stop_reason']}" if m["stopped_early"] else ""))
        else:
            print(f"test_accuracy {m['test_accuracy']:.4f}{judged} (epoch {m['best_epoch']} of {m['epochs']}, chosen "
                  f"by {m['selected_by']}), test_loss {m['test_loss']:.4f}"
                  + (f"; {m['stop_reason']}" if m["stopped_early"] else ""))
        q = m.get("quantization")
        if q is not None:
            print(f"int8: {q['guard'].removeprefix('int8 ')}" if q["written"] else f"int8: not written: {q['refused']}")
        for path in result.written:
            print(path)
    return 0
