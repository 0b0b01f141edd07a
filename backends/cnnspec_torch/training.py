"""The PyTorch training loop behind ``cnnspec train --backend torch`` (a ``cnnspec.backend.interface.Trainer``).

Arrays in memory (digits, MNIST, CIFAR, ``--cache``) are stepped over as tensors with no DataLoader:
the data already sits in one array, and index batches come from the framework-free orchestrator.
Image files (:class:`cnnspec.data.stream.ImageFiles`) go through a ``torch.utils.data.DataLoader``
with ``--workers`` worker processes over the core's :class:`cnnspec.data.stream.BatchReader`: a
worker decodes, resizes and augments a whole step's batch, so the batches are the same bytes however
many workers there are (each rank reads its own share of every global batch, padded as
``DistributedSampler`` pads, the shares decided by the orchestrator). A worker that dies, or a batch
not delivered within ``DATA_TIMEOUT_SECONDS``, is one error, never a hang. Under ``torchrun`` it joins the process group
(gloo on CPU, nccl on CUDA) and wraps the model in DistributedDataParallel; each rank trains on its
slice of every global batch, gradients are averaged by DDP, and statistics are all-reduced.

The learning rate of every step, the batches and the augmentation come from the framework-free
:class:`cnnspec.training.EpochPlan`; this module only steps. ``--precision bf16`` runs forward and
loss under autocast (the weights stay fp32, so the export does too); ``fp16`` adds loss scaling
and runs on CUDA only.
"""
from __future__ import annotations

import os
from contextlib import nullcontext

from cnnspec.backend.interface import EpochStats
from cnnspec.backend.trainconfig import IGNORE_INDEX
from cnnspec.data.stream import DATA_TIMEOUT_SECONDS, BatchReader, eval_batches, is_lazy
from cnnspec.errors import BackendUnavailable, CnnspecError, InputError

from .losses import SEGMENTATION_LOSSES

EVAL_BATCH = 1024
# Below this many multiply-accumulates per batch, one intra-op thread is faster than several: the
# work per op is too small to split, and OpenMP's spinning threads collapse when the cores are
# shared (measured on the digits spec: 1 thread ~6000 images/s, 2 threads ~100 on a loaded 2-core box).
SMALL_BATCH_MACS = 200_000_000


def make_trainer(backend, graph, weights, config, world):
    return TorchTrainer(backend, graph, weights, config, world)


# torch.optim constructors by --optimizer: weight decay is L2 added to the gradient for adam and sgd,
# decoupled for adamw (as PyTorch and Keras define each)
OPTIMIZERS = {
    "adam": lambda torch, params, c: torch.optim.Adam(params, lr=c.learning_rate, weight_decay=c.decay),
    "adamw": lambda torch, params, c: torch.optim.AdamW(params, lr=c.learning_rate, weight_decay=c.decay),
    "sgd": lambda torch, params, c: torch.optim.SGD(params, lr=c.learning_rate, momentum=c.sgd_momentum,
                                                    nesterov=c.nesterov, weight_decay=c.decay),
}
AUTOCAST = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}


def _device(config, world):
    import torch

    if config.device == "cuda":
        if not torch.cuda.is_available():
            raise BackendUnavailable("--device cuda: no CUDA device is available to PyTorch "
                                     f"(torch {torch.__version__}, built with CUDA {torch.version.cuda or 'none'})")
        if world.local_rank >= torch.cuda.device_count():
            raise BackendUnavailable(f"--device cuda: process {world.local_rank} needs its own GPU but this machine "
                                     f"has {torch.cuda.device_count()}; start at most that many per node")
        return torch.device("cuda", world.local_rank)
    return torch.device("cpu")


def stream_loader(reader, workers: int, pin: bool = False):
    """The steps of a :class:`cnnspec.data.stream.BatchReader` through a DataLoader with ``workers``
    worker processes (each makes whole batches); a dead or stuck worker is one line."""
    import torch

    workers = min(workers, len(reader))
    loader = torch.utils.data.DataLoader(
        reader, batch_size=None, shuffle=False, num_workers=workers,
        timeout=DATA_TIMEOUT_SECONDS if workers else 0, prefetch_factor=2 if workers else None,
        generator=torch.Generator().manual_seed(0),  # leaves the global generator (dropout's) alone
        pin_memory=pin)
    try:
        yield from loader
    except CnnspecError:
        raise
    except Exception as exc:  # a worker killed, timed out, or failing in a way the reader did not catch
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise InputError(f"the data pipeline failed ({first[:200]}); with --workers 0 images are read in "
                         f"this process, where the cause shows") from None


class TorchTrainer:
    def __init__(self, backend, graph, weights, config, world):
        import torch

        self.torch = torch
        self.backend, self.graph, self.world, self.config = backend, graph, world, config
        self.device = _device(config, world)
        self.classes = graph.output_shape[0]
        self.segment = len(graph.output_shape) == 3  # a [K, H, W] map: per-pixel classes, masks as targets
        self.distributed = world.size > 1
        self._check_precision(config)
        if self.distributed:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo")
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
        self._threads_before = torch.get_num_threads()
        if (self.device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ
                and graph.macs * max(1, config.batch_size // world.size) < SMALL_BATCH_MACS):
            torch.set_num_threads(1)
        self.model = backend.compile(graph, weights=weights, seed=config.seed).to(self.device)
        self.model.requires_grad_(True)  # compile() hands back an inference model
        self._frozen_norms = self._freeze(graph, config.freeze)
        self._train_mode()
        torch.manual_seed(config.seed * 1000 + world.rank)  # dropout masks: reproducible, distinct per rank
        self.net = self.model
        if self.distributed:
            import warnings

            from torch.nn.parallel import DistributedDataParallel

            # a conv over one input channel gets its gradient with another (equivalent) stride on
            # the size-1 axis; DDP warns about the copy that costs, which is nothing at that size
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")

            self.net = DistributedDataParallel(self.model, device_ids=[self.device.index]
                                               if self.device.type == "cuda" else None)
        self.optimizer = OPTIMIZERS[config.optimizer](torch, self._param_groups(graph, config), config)
        dtype = AUTOCAST[config.precision]
        self._autocast = ((lambda: torch.autocast(self.device.type, dtype=getattr(torch, dtype)))
                          if dtype else nullcontext)
        self.scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
        self._tensors = {}
        self.unreadable: set[str] = set()  # image files skipped so far (named in the run's summary)

    def _freeze(self, graph, layers):
        """--freeze: the layers' weights leave autograd (no gradient is computed for them, and none
        flows into the layers before them that only they feed); their batchnorms' modules, returned,
        run in inference mode, so their statistics do not move."""
        torch = self.torch
        frozen = set(layers)
        for key, param in self.model.named_parameters():
            if key.rsplit(".", 1)[0] in frozen:
                param.requires_grad_(False)
        norms = []
        for name in layers:
            try:
                module = self.model.layer(name)
            except KeyError:
                continue
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                norms.append(module)
        return norms

    def _train_mode(self):
        self.net.train() if hasattr(self, "net") else self.model.train()
        for module in self._frozen_norms:
            module.eval()

    def _param_groups(self, graph, config):
        """The trainable parameters (the frozen ones never reach the optimizer); with --lr-backbone F,
        two groups: the layers before the head at F times the learning rate, the head at 1."""
        from cnnspec.weights.partial import head_layers

        named = [(k, p) for k, p in self.model.named_parameters() if p.requires_grad]
        if config.lr_backbone is None:
            return [{"params": [p for _, p in named], "lr_factor": 1.0}]
        head = set(head_layers(graph))
        groups = [{"params": [p for k, p in named if k.rsplit(".", 1)[0] not in head], "lr_factor": config.lr_backbone},
                  {"params": [p for k, p in named if k.rsplit(".", 1)[0] in head], "lr_factor": 1.0}]
        return [g for g in groups if g["params"]]

    def _check_precision(self, config):
        torch = self.torch
        if config.precision == "bf16" and self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise BackendUnavailable(f"--precision bf16: {torch.cuda.get_device_name(self.device)} has no bfloat16; "
                                     f"use --precision fp16 on this GPU")

    def _on_device(self, array):
        """The whole array as a tensor on the device, made once per array."""
        key = id(array)
        if key not in self._tensors:
            self._tensors[key] = (array, self.torch.from_numpy(array).to(self.device))
        return self._tensors[key][1]

    def _sum(self, *values):
        if not self.distributed:
            return values
        import torch.distributed as dist

        t = self.torch.tensor(values, dtype=self.torch.float64, device=self.device)
        dist.all_reduce(t)
        return tuple(t.tolist())

    def _batches(self, x, y, batches, augment=None, training=False):
        """(images, targets) on the device for each step of ``batches``: indexed from the arrays on
        the device, or read from image files by the DataLoader (unreadable files dropped)."""
        torch = self.torch
        if not is_lazy(x):
            xt, yt = self._on_device(x), self._on_device(y)
            for step, idx in enumerate(batches):
                index = torch.from_numpy(idx).to(self.device)
                yb = yt[index].long()  # masks are kept as uint8
                if augment is None:
                    xb = xt[index]  # measured ~15% faster per step than index_select on CPU
                elif y.ndim == 1:
                    xb = torch.from_numpy(augment(step, x[idx])).to(self.device)
                else:  # masks move with their images
                    xa, ya = augment(step, x[idx], y[idx])
                    xb, yb = torch.from_numpy(xa).to(self.device), torch.from_numpy(ya).long().to(self.device)
                yield step, xb, yb
            return
        reader = BatchReader(x, y, tuple(batches), augment, self.config.strict)
        for step, (xb, yb, kept, error) in enumerate(self._load(reader)):
            if error:
                raise InputError(error)
            self.unreadable.update(reader.skipped(step, kept.numpy()))
            if len(yb):
                yield step, xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)
            elif self.distributed and training:  # the other ranks wait in this step's all-reduce
                raise InputError(f"every image of this process's share of step {step + 1} is unreadable; under "
                                 f"torchrun no rank can skip a step alone (remove the files, or run --strict to "
                                 f"find them)")

    def _load(self, reader):
        return stream_loader(reader, self.config.data_workers, pin=self.device.type == "cuda")

    def train_epoch(self, x, y, plan, bar) -> EpochStats:
        torch = self.torch
        F = torch.nn.functional
        smoothing = self.config.label_smoothing
        self._train_mode()
        loss_sum, correct, seen, counted = 0.0, 0, 0, 0
        for step, xb, yb in self._batches(x, y, plan.batches, plan.augment, training=True):
            for group in self.optimizer.param_groups:
                group["lr"] = plan.lrs[step] * group["lr_factor"]
            self.optimizer.zero_grad(set_to_none=True)
            with self._autocast():
                logits = self.net(xb)
                if self.segment:
                    loss = SEGMENTATION_LOSSES[self.config.loss](torch, logits.float(), yb)
                else:
                    loss = F.cross_entropy(logits.float(), yb, label_smoothing=smoothing)
            if self.scaler is None:
                loss.backward()
                self.optimizer.step()
            else:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            n = len(yb)
            loss_sum += loss.item() * n
            hits = logits.argmax(1) == yb
            if self.segment:  # pixel accuracy over the pixels that count
                valid = yb != IGNORE_INDEX
                correct += int((hits & valid).sum())
                counted += int(valid.sum())
            else:
                correct += int(hits.sum())
                counted += n
            seen += n
            bar.update(loss_sum / seen, correct / max(counted, 1))
        loss_sum, correct, seen, counted = self._sum(loss_sum, correct, seen, counted)
        if not seen:
            raise InputError("no training image of this epoch could be read")
        return EpochStats(loss_sum / seen, correct / max(counted, 1), int(seen))

    def evaluate(self, x, y, indices):
        """(loss, accuracy, confusion matrix) in fp32 whatever --precision is: the exported model is fp32."""
        torch = self.torch
        F = torch.nn.functional
        k = self.classes
        self.model.eval()
        loss_sum = 0.0
        counts = torch.zeros(k * k, dtype=torch.int64, device=self.device)
        with torch.inference_mode():
            for _, xb, yb in self._batches(x, y, eval_batches(indices, self._eval_batch)):
                logits = self.model(xb)
                if self.segment:  # per pixel: plain cross-entropy, the pixels that count
                    loss_sum += float(F.cross_entropy(logits, yb, ignore_index=IGNORE_INDEX, reduction="sum"))
                    valid = yb != IGNORE_INDEX
                    counts += torch.bincount(yb[valid] * k + logits.argmax(1)[valid], minlength=k * k)
                else:
                    loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
                    counts += torch.bincount(yb * k + logits.argmax(1), minlength=k * k)
        self._train_mode()
        if self.distributed:
            import torch.distributed as dist

            dist.all_reduce(counts)
        matrix = counts.cpu().numpy().reshape(k, k)
        (loss_sum,) = self._sum(loss_sum)
        seen = int(matrix.sum())
        if not seen:
            raise InputError("no held-out image (or pixel that counts) could be read")
        return loss_sum / seen, int(matrix.trace()) / seen, matrix

    @property
    def _eval_batch(self) -> int:
        """EVAL_BATCH images, fewer for maps (a U-Net's activations at batch 1024 would not fit)."""
        if not self.segment:
            return EVAL_BATCH
        k, h, w = self.graph.output_shape
        return max(1, min(EVAL_BATCH, 2 ** 22 // max(1, k * h * w)))

    def weights(self) -> dict:
        return self.backend.get_weights(self.model, self.graph)

    def state(self):
        """(tensors, json) holding everything the next step depends on: the model's parameters and
        buffers, the optimizer's state, every rank's random generators, the loss scaler."""
        tensors = {f"model.{k}": v.detach().cpu().numpy() for k, v in self.model.state_dict().items()}
        for index, slots in self.optimizer.state_dict()["state"].items():
            for name, value in slots.items():
                if isinstance(value, self.torch.Tensor):
                    tensors[f"optim.{index}.{name}"] = value.detach().cpu().numpy()
        tensors["rng.cpu"] = self._gather(self.torch.get_rng_state())
        if self.device.type == "cuda":
            tensors["rng.cuda"] = self._gather(self.torch.cuda.get_rng_state(self.device))
        return tensors, {"scaler": self.scaler.state_dict() if self.scaler is not None else None}

    def _gather(self, state):
        """Every rank's generator state, one row per rank (only rank 0 writes them, all need theirs)."""
        if not self.distributed:
            return state.numpy()[None]
        import torch.distributed as dist

        mine = state.to(self.device)
        rows = [self.torch.empty_like(mine) for _ in range(self.world.size)]
        dist.all_gather(rows, mine)
        return self.torch.stack(rows).cpu().numpy()

    def load_state(self, tensors, meta) -> None:
        import numpy as np

        torch = self.torch
        tensors = {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}  # writable copies
        model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(model)
        slots: dict = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                slots.setdefault(int(index), {})[name] = value
        self.optimizer.load_state_dict({"state": slots, "param_groups": self.optimizer.state_dict()["param_groups"]})
        torch.set_rng_state(tensors["rng.cpu"][self.world.rank].clone())
        if self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"][self.world.rank].clone(), self.device)
        if self.scaler is not None and meta.get("scaler"):
            self.scaler.load_state_dict(meta["scaler"])

    def close(self) -> None:
        self.torch.set_num_threads(self._threads_before)  # the thread choice was for this loop only
        if self.distributed:
            import gc

            import torch.distributed as dist

            if dist.is_initialized():
                # every rank past its last collective before any tears the group down: a rank that
                # destroyed it while a peer's gloo thread still exchanged the last all-reduce made
                # that peer abort ("terminate called without an active exception", seen once in CI)
                dist.barrier()
                # the DDP wrapper holds the group (its reducer, its hooks in reference cycles): left to
                # the interpreter's exit, gloo's threads were torn down during finalisation and a rank
                # aborted the same way after the barrier (1 run in 6 with both cores busy); let it go now
                self.net = self.model
                gc.collect()
                dist.destroy_process_group()
