"""``cnnspec train``: train a spec on a data source; write the best epoch's weights, ONNX, metrics, curves.

Under ``torchrun`` (WORLD_SIZE > 1) the torch backend trains with DistributedDataParallel; every
process runs this same command, and only rank 0 writes files or progress.
"""
from __future__ import annotations

import sys

NAME = "train"
HELP = "train a spec on a data source (digits, an MNIST .npz or IDX folder, an image folder)"


def add_arguments(parser):
    parser.add_argument("spec", metavar="SPEC")
    parser.add_argument("--backend", default="torch", help="torch or keras (default: torch)")
    parser.add_argument("--data", required=True, metavar="SOURCE",
                        help="'digits' (scikit-learn's 8x8 digits, no download), an MNIST .npz "
                             "(x_train, y_train, x_test, y_test), a folder of MNIST IDX files, "
                             "or an image folder with one subfolder per class")
    parser.add_argument("--epochs", type=int, default=10, metavar="N", help="default: 10")
    parser.add_argument("--batch-size", type=int, default=32, metavar="B",
                        help="global batch size, split across processes under torchrun (default: 32)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: 1e-3 adam, 1e-2 sgd)")
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam",
                        help="adam, or sgd with momentum 0.9 (default: adam)")
    parser.add_argument("--seed", type=int, default=0, help="initial weights, shuffling, dropout (default: 0)")
    parser.add_argument("--val-fraction", type=float, default=0.1, metavar="F",
                        help="share of the training images held out to choose the best epoch; the test "
                             "images never choose (0: keep the last epoch; default: 0.1)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="default: cpu")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--resume", metavar="FILE", help="start from this weights.safetensors (the weights only: the optimizer and "
                            "the epoch count start afresh)")
    start.add_argument("--weights", metavar="FILE", dest="resume", help="same as --resume")
    parser.add_argument("-o", "--output", metavar="DIR", default=None, help="output folder (default: runs/<name>)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or lines")


def run(args) -> int:
    import time

    from ..training import TrainConfig, train

    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                         seed=args.seed, device=args.device, quiet=args.quiet,
                         val_fraction=args.val_fraction)
    start = time.perf_counter()

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - start:6.2f}s] {message}", file=sys.stderr, flush=True)

    result = train(args.spec, args.backend, args.data, config, outdir=args.output, resume=args.resume,
                   progress=progress)
    if result.outdir is not None:
        m = result.metrics
        print(f"test_accuracy {m['test_accuracy']:.4f} (epoch {m['best_epoch']} of {m['epochs']}, chosen by "
              f"{m['selected_by']}), test_loss {m['test_loss']:.4f}")
        for path in result.written:
            print(path)
    return 0
