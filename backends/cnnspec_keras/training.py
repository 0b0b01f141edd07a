"""The Keras training loop behind ``cnnspec train --backend keras`` (a ``cnnspec.backend.interface.Trainer``).

A custom loop (a compiled ``tf.function`` step with a gradient tape) rather than ``model.fit``: the
batches, the learning rate of every step and the augmentation come from the framework-free
orchestrator (:class:`cnnspec.training.EpochPlan`), so both backends see the same shuffling and the
same schedule for the same seed, and ``fit``'s own shuffling, callbacks and logs would only get in
the way. The model takes the contract's NCHW input; the backend transposes to channels-last inside it.

Image files (:class:`cnnspec.data.stream.ImageFiles`) are read by a ``tf.data`` pipeline: the steps
of the core's :class:`cnnspec.data.stream.BatchReader` mapped with ``--workers`` parallel calls
(decode, resize and augment a whole batch, in order) and prefetched, so the next batches are being
decoded while this one trains, and they are the same bytes whatever the parallelism.

``--precision bf16`` builds the model under Keras' ``mixed_bfloat16`` policy (weights stay fp32)
and scores it on an fp32 twin, so the reported accuracy is the exported model's. fp16 is refused:
it needs a GPU and loss scaling, which the torch backend provides.
"""
from __future__ import annotations

import os

from cnnspec.backend.interface import EpochStats
from cnnspec.backend.trainconfig import IGNORE_INDEX
from cnnspec.data.stream import BatchReader, eval_batches, is_lazy
from cnnspec.errors import BackendUnavailable, CnnspecError, InputError, UsageError

EVAL_BATCH = 1024
# keras.optimizers constructors by --optimizer; adam and sgd take weight decay as L2 on the gradient
# (in the step, as PyTorch does), adamw decays the weights itself (decoupled, as PyTorch's AdamW)
OPTIMIZERS = {
    "adam": lambda keras, c: keras.optimizers.Adam(learning_rate=c.learning_rate),
    "adamw": lambda keras, c: keras.optimizers.AdamW(learning_rate=c.learning_rate, weight_decay=c.decay),
    "sgd": lambda keras, c: keras.optimizers.SGD(learning_rate=c.learning_rate, momentum=c.sgd_momentum,
                                                 nesterov=c.nesterov),
}
L2_IN_STEP = ("adam", "sgd")
POLICIES = {"fp32": None, "bf16": "mixed_bfloat16"}


def make_trainer(backend, graph, weights, config, world):
    if world.size > 1:
        raise UsageError("distributed training (torchrun) runs with --backend torch; "
                         "the keras backend trains in one process")
    if config.precision not in POLICIES:
        raise UsageError(f"--precision {config.precision} trains with --backend torch on CUDA (loss scaling); "
                         f"the keras backend offers {', '.join(POLICIES)}")
    return KerasTrainer(backend, graph, weights, config)


class KerasTrainer:
    def __init__(self, backend, graph, weights, config):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow's first import
        import keras
        import tensorflow as tf

        if config.device == "cuda" and not tf.config.list_physical_devices("GPU"):
            raise BackendUnavailable(f"--device cuda: TensorFlow {tf.__version__} sees no GPU "
                                     f"(tensorflow-cpu is installed, or no CUDA device is present)")
        self.tf, self.keras = tf, keras
        self.backend, self.graph, self.config = backend, graph, config
        self.classes = graph.output_shape[0]
        self.segment = len(graph.output_shape) == 3  # a [K, H, W] map: per-pixel classes, masks as targets
        self.device = "/GPU:0" if config.device == "cuda" else "/CPU:0"
        keras.utils.set_random_seed(config.seed)  # dropout's seed generators are drawn from it
        with tf.device(self.device):
            self.model = self._build(weights, POLICIES[config.precision], config.seed)
            # mixed precision: scores come from an fp32 copy, as the exported model computes them
            self.scorer = self.model if POLICIES[config.precision] is None else self._build(None, None, None)
            self._freeze(config.freeze)
            variables = self.model.trainable_variables
            self._head = self._head_mask(graph, variables, config)
            # --lr-backbone: the layers before the head step with their own optimizer at F x the rate
            self.optimizer = OPTIMIZERS[config.optimizer](keras, config)
            self.optimizer.build([v for v, head in zip(variables, self._head) if not head])
            self.head_optimizer = None
            if any(self._head):
                self.head_optimizer = OPTIMIZERS[config.optimizer](keras, config)
                self.head_optimizer.build([v for v, head in zip(variables, self._head) if head])
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
        c, h, w = graph.input_shape
        targets = [None, *graph.output_shape[1:]] if self.segment else [None]
        spec = (tf.TensorSpec([None, c, h, w], tf.float32), tf.TensorSpec(targets, tf.int64))
        self._train_step = tf.function(self._step, input_signature=spec + (tf.TensorSpec([], tf.float32),))
        self._eval_step = tf.function(self._eval, input_signature=spec)
        self.unreadable: set[str] = set()  # image files skipped so far (named in the run's summary)

    def _freeze(self, layers) -> None:
        """--freeze: the layers leave trainable_variables (no gradient, no optimizer slot); a frozen
        BatchNormalization runs in inference mode (Keras 3's rule for trainable=False)."""
        for model in {id(self.model): self.model, id(self.scorer): self.scorer}.values():
            for name in layers:
                try:
                    model.get_layer(name).trainable = False
                except ValueError:  # a layer without weights has no Keras layer of its own
                    continue

    def _head_mask(self, graph, variables, config) -> list[bool]:
        """Which trainable variables belong to the head (all False without --lr-backbone)."""
        from cnnspec.weights.partial import head_layers

        if config.lr_backbone is None:
            return [False] * len(variables)
        ids = set()
        for name in head_layers(graph):
            try:
                ids |= {id(v) for v in self.model.get_layer(name).trainable_variables}
            except ValueError:
                continue
        return [id(v) in ids for v in variables]

    def _optimizer_variables(self) -> list:
        return list(self.optimizer.variables) + (list(self.head_optimizer.variables) if self.head_optimizer else [])

    def _build(self, weights, policy, seed):
        """The model built under the dtype ``policy`` (None: the current one, left alone)."""
        if policy is None:
            return self.backend.compile(self.graph, weights=weights, seed=seed)
        before = self.keras.config.dtype_policy()
        self.keras.config.set_dtype_policy(policy)
        try:
            return self.backend.compile(self.graph, weights=weights, seed=seed)
        finally:
            self.keras.config.set_dtype_policy(before)

    def _pixel_terms(self, yb, logits):
        """(per-pixel cross-entropy [B, H, W], the pixels that count as 0/1 floats, softmax [B, H, W, K],
        the masks with ignored pixels set to class 0) of NCHW logits."""
        tf = self.tf
        nhwc = tf.transpose(logits, [0, 2, 3, 1])
        valid = tf.not_equal(yb, IGNORE_INDEX)
        labels = tf.where(valid, yb, tf.zeros_like(yb))
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=nhwc)
        return ce, tf.cast(valid, tf.float32), tf.nn.softmax(nhwc), labels

    def _segmentation_loss(self, yb, logits):
        """The batch's mean --loss (ce, dice or ce+dice; 255 ignored), as the torch backend computes it."""
        tf = self.tf
        ce, valid, probs, labels = self._pixel_terms(yb, logits)
        total = tf.constant(0.0)
        if "ce" in self.config.loss.split("+"):
            total += tf.reduce_sum(ce * valid) / tf.maximum(tf.reduce_sum(valid), 1.0)
        if "dice" in self.config.loss.split("+"):
            probs = probs * valid[..., None]
            onehot = tf.one_hot(labels, self.classes) * valid[..., None]
            inter = tf.reduce_sum(probs * onehot, axis=[0, 1, 2])
            denom = tf.reduce_sum(probs, axis=[0, 1, 2]) + tf.reduce_sum(onehot, axis=[0, 1, 2])
            total += 1 - tf.reduce_mean((2 * inter + 1) / (denom + 1))
        return total

    def _loss_sum(self, yb, logits):
        tf = self.tf
        smoothing = self.config.label_smoothing
        if not smoothing:
            return self.loss_fn(yb, logits)
        logp = tf.nn.log_softmax(logits)
        nll = -tf.gather(logp, yb, batch_dims=1)
        return tf.reduce_sum((1 - smoothing) * nll - smoothing * tf.reduce_mean(logp, axis=1))

    def _step(self, xb, yb, lr):
        tf = self.tf
        self.optimizer.learning_rate = lr
        with tf.GradientTape() as tape:
            logits = tf.cast(self.model(xb, training=True), tf.float32)
            if self.segment:
                loss = self._segmentation_loss(yb, logits)
                loss_sum = loss * tf.cast(tf.shape(yb)[0], loss.dtype)
            else:
                loss_sum = self._loss_sum(yb, logits)
                loss = loss_sum / tf.cast(tf.shape(yb)[0], loss_sum.dtype)
        variables = self.model.trainable_variables
        grads = tape.gradient(loss, variables)
        decay = self.config.decay
        if decay and self.config.optimizer in L2_IN_STEP:
            grads = [g + decay * v for g, v in zip(grads, variables)]
        if self.head_optimizer is None:
            self.optimizer.apply_gradients(zip(grads, variables))
        else:
            self.optimizer.learning_rate = lr * self.config.lr_backbone
            self.head_optimizer.learning_rate = lr
            for optimizer, head in ((self.optimizer, False), (self.head_optimizer, True)):
                pairs = [(g, v) for g, v, h in zip(grads, variables, self._head) if h == head]
                if pairs:
                    optimizer.apply_gradients(pairs)
        return (loss_sum,) + self._correct(logits, yb)

    def _eval(self, xb, yb):
        tf = self.tf
        logits = tf.cast(self.scorer(xb, training=False), tf.float32)
        if self.segment:  # per pixel: plain cross-entropy over the pixels that count
            ce, valid, _, _ = self._pixel_terms(yb, logits)
            return tf.reduce_sum(ce * valid), tf.argmax(logits, axis=1)
        return self.loss_fn(yb, logits), tf.argmax(logits, axis=1)

    def _correct(self, logits, yb):
        """(right answers, answers that count): images, or a segmentation's pixels (255 left out)."""
        tf = self.tf
        hits = tf.equal(tf.argmax(logits, axis=1), yb)
        if self.segment:
            valid = tf.not_equal(yb, IGNORE_INDEX)
            return (tf.reduce_sum(tf.cast(hits & valid, tf.int64)), tf.reduce_sum(tf.cast(valid, tf.int64)))
        return tf.reduce_sum(tf.cast(hits, tf.int64)), tf.shape(yb, out_type=tf.int64)[0]

    def _batches(self, x, y, batches, augment=None):
        """(images, targets) numpy batches for each step: indexed from the arrays, or read from image
        files by a tf.data pipeline (unreadable files dropped)."""
        if not is_lazy(x):
            for step, idx in enumerate(batches):
                if augment is None:
                    yield step, x[idx], y[idx].astype("int64")
                elif y.ndim == 1:
                    yield step, augment(step, x[idx]), y[idx]
                else:  # masks move with their images
                    xa, ya = augment(step, x[idx], y[idx])
                    yield step, xa, ya.astype("int64")
            return
        reader = BatchReader(x, y, tuple(batches), augment, self.config.strict)
        for step, (xb, yb, kept, error) in enumerate(self._load(reader)):
            if error:
                raise InputError(error.decode("utf-8", "replace"))
            self.unreadable.update(reader.skipped(step, kept))
            if len(yb):
                yield step, xb, yb

    def _load(self, reader):
        """The reader's steps through tf.data: parallel, in order, prefetched."""
        import numpy as np

        tf = self.tf
        workers = max(1, self.config.data_workers)

        def make(step):
            xb, yb, kept, error = reader[int(step)]
            return xb, yb, kept, np.bytes_(error.encode("utf-8"))

        def mapped(step):
            return tf.numpy_function(make, [step], (tf.float32, tf.int64, tf.bool, tf.string), stateful=False)

        pipeline = (tf.data.Dataset.range(len(reader))
                    .map(mapped, num_parallel_calls=workers, deterministic=True)
                    .prefetch(2))
        try:
            for xb, yb, kept, error in pipeline.as_numpy_iterator():
                yield xb, yb, kept, error
        except CnnspecError:
            raise
        except Exception as exc:  # noqa: BLE001 - tf.errors of every kind: one line
            first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise InputError(f"the data pipeline failed ({first[:200]})") from None

    def train_epoch(self, x, y, plan, bar) -> EpochStats:
        loss_sum, correct, seen, counted = 0.0, 0, 0, 0
        with self.tf.device(self.device):
            for step, xb, yb in self._batches(x, y, plan.batches, plan.augment):
                lr = self.tf.constant(plan.lrs[step], self.tf.float32)
                batch_loss, batch_correct, batch_counted = self._train_step(xb, yb, lr)
                loss_sum += float(batch_loss)
                correct += int(batch_correct)
                counted += int(batch_counted)
                seen += len(yb)
                bar.update(loss_sum / seen, correct / max(counted, 1))
        if not seen:
            raise InputError("no training image of this epoch could be read")
        return EpochStats(loss_sum / seen, correct / max(counted, 1), seen)

    def evaluate(self, x, y, indices):
        """(loss, accuracy, confusion matrix), always in fp32."""
        from cnnspec.training.scores import confusion

        if self.scorer is not self.model:
            for mine, theirs in zip(self.scorer.variables, self.model.variables):
                mine.assign(theirs.value)
        loss_sum, matrix = 0.0, 0
        batch = EVAL_BATCH if not self.segment else max(1, min(EVAL_BATCH, 2 ** 22 // self._map_size))
        with self.tf.device(self.device):
            for _, xb, yb in self._batches(x, y, eval_batches(indices, batch)):
                batch_loss, predicted = self._eval_step(xb, yb)
                loss_sum += float(batch_loss)
                valid = yb != IGNORE_INDEX
                matrix = matrix + confusion(yb[valid], predicted.numpy()[valid], self.classes)
        seen = int(matrix.sum()) if not isinstance(matrix, int) else 0
        if not seen:
            raise InputError("no held-out image (or pixel that counts) could be read")
        return loss_sum / seen, int(matrix.trace()) / seen, matrix

    @property
    def _map_size(self) -> int:
        k, h, w = self.graph.output_shape
        return max(1, k * h * w)

    def weights(self) -> dict:
        return self.backend.get_weights(self.model, self.graph)

    def state(self):
        """(tensors, json): every model variable (dropout's seed generator states included) and every
        optimizer slot, by position; their paths go in the json so a mismatch is caught."""
        import numpy as np

        tensors = {f"model.{i}": np.asarray(v.numpy()) for i, v in enumerate(self.model.variables)}
        optim = self._optimizer_variables()
        tensors.update({f"optim.{i}": np.asarray(v.numpy()) for i, v in enumerate(optim)})
        return tensors, {"model": [v.path for v in self.model.variables], "optim": [v.path for v in optim]}

    def load_state(self, tensors, meta) -> None:
        for prefix, variables in (("model", self.model.variables), ("optim", self._optimizer_variables())):
            if meta.get(prefix) != [v.path for v in variables]:
                raise UsageError(f"--resume: the checkpoint's {prefix} variables do not match this Keras model")
            for i, v in enumerate(variables):
                v.assign(tensors[f"{prefix}.{i}"])

    def close(self) -> None:
        pass
