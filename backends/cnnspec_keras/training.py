"""The Keras training loop behind ``cnnspec train --backend keras`` (a ``cnnspec.backend.interface.Trainer``).

A custom loop (a compiled ``tf.function`` step with a gradient tape) rather than ``model.fit``: the
batches, the learning rate of every step and the augmentation come from the framework-free
orchestrator (:class:`cnnspec.training.EpochPlan`), so both backends see the same shuffling and the
same schedule for the same seed, and ``fit``'s own shuffling, callbacks and logs would only get in
the way. The model takes the contract's NCHW input; the backend transposes to channels-last inside it.

``--precision bf16`` builds the model under Keras' ``mixed_bfloat16`` policy (weights stay fp32)
and scores it on an fp32 twin, so the reported accuracy is the exported model's. fp16 is refused:
it needs a GPU and loss scaling, which the torch backend provides.
"""
from __future__ import annotations

import os

from cnnspec.backend.interface import EpochStats
from cnnspec.errors import BackendUnavailable, UsageError

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
        self.device = "/GPU:0" if config.device == "cuda" else "/CPU:0"
        keras.utils.set_random_seed(config.seed)  # dropout's seed generators are drawn from it
        with tf.device(self.device):
            self.model = self._build(weights, POLICIES[config.precision], config.seed)
            # mixed precision: scores come from an fp32 copy, as the exported model computes them
            self.scorer = self.model if POLICIES[config.precision] is None else self._build(None, None, None)
            self.optimizer = OPTIMIZERS[config.optimizer](keras, config)
            self.optimizer.build(self.model.trainable_variables)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
        c, h, w = graph.input_shape
        spec = (tf.TensorSpec([None, c, h, w], tf.float32), tf.TensorSpec([None], tf.int64))
        self._train_step = tf.function(self._step, input_signature=spec + (tf.TensorSpec([], tf.float32),))
        self._eval_step = tf.function(self._eval, input_signature=spec)

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
            loss_sum = self._loss_sum(yb, logits)
            loss = loss_sum / tf.cast(tf.shape(yb)[0], loss_sum.dtype)
        variables = self.model.trainable_variables
        grads = tape.gradient(loss, variables)
        decay = self.config.decay
        if decay and self.config.optimizer in L2_IN_STEP:
            grads = [g + decay * v for g, v in zip(grads, variables)]
        self.optimizer.apply_gradients(zip(grads, variables))
        return loss_sum, self._correct(logits, yb)

    def _eval(self, xb, yb):
        logits = self.scorer(xb, training=False)
        return self.loss_fn(yb, logits), self.tf.argmax(logits, axis=1)

    def _correct(self, logits, yb):
        tf = self.tf
        return tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, axis=1), yb), tf.int64))

    def train_epoch(self, x, y, plan, bar) -> EpochStats:
        loss_sum, correct, seen = 0.0, 0, 0
        with self.tf.device(self.device):
            for step, idx in enumerate(plan.batches):
                xb = x[idx] if plan.augment is None else plan.augment(step, x[idx])
                batch_loss, batch_correct = self._train_step(xb, y[idx], self.tf.constant(plan.lrs[step], self.tf.float32))
                loss_sum += float(batch_loss)
                correct += int(batch_correct)
                seen += len(idx)
                bar.update(loss_sum / seen, correct / seen)
        return EpochStats(loss_sum / seen, correct / seen, seen)

    def evaluate(self, x, y, indices):
        """(loss, accuracy, confusion matrix), always in fp32."""
        from cnnspec.training.scores import confusion

        if self.scorer is not self.model:
            for mine, theirs in zip(self.scorer.variables, self.model.variables):
                mine.assign(theirs.value)
        loss_sum, matrix = 0.0, 0
        with self.tf.device(self.device):
            for start in range(0, len(indices), EVAL_BATCH):
                idx = indices[start:start + EVAL_BATCH]
                batch_loss, predicted = self._eval_step(x[idx], y[idx])
                loss_sum += float(batch_loss)
                matrix = matrix + confusion(y[idx], predicted.numpy(), self.classes)
        return loss_sum / len(indices), int(matrix.trace()) / len(indices), matrix

    def weights(self) -> dict:
        return self.backend.get_weights(self.model, self.graph)

    def state(self):
        """(tensors, json): every model variable (dropout's seed generator states included) and every
        optimizer slot, by position; their paths go in the json so a mismatch is caught."""
        import numpy as np

        tensors = {f"model.{i}": np.asarray(v.numpy()) for i, v in enumerate(self.model.variables)}
        tensors.update({f"optim.{i}": np.asarray(v.numpy()) for i, v in enumerate(self.optimizer.variables)})
        return tensors, {"model": [v.path for v in self.model.variables],
                         "optim": [v.path for v in self.optimizer.variables]}

    def load_state(self, tensors, meta) -> None:
        for prefix, variables in (("model", self.model.variables), ("optim", self.optimizer.variables)):
            if meta.get(prefix) != [v.path for v in variables]:
                raise UsageError(f"--resume: the checkpoint's {prefix} variables do not match this Keras model")
            for i, v in enumerate(variables):
                v.assign(tensors[f"{prefix}.{i}"])

    def close(self) -> None:
        pass
