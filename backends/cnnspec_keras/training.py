"""The Keras training loop behind ``cnnspec train --backend keras`` (a ``cnnspec.backend_api.Trainer``).

A custom loop (a compiled ``tf.function`` step with a gradient tape) rather than ``model.fit``: the
batches come from the framework-free orchestrator, so both backends see the same shuffling for the
same seed, and ``fit``'s own shuffling, callbacks and logs would only get in the way. The model takes
the contract's NCHW input; the backend transposes to channels-last inside it.
"""
from __future__ import annotations

import os

from cnnspec.backend_api import EpochStats
from cnnspec.errors import BackendUnavailable, UsageError

EVAL_BATCH = 1024


def make_trainer(backend, graph, weights, config, world):
    if world.size > 1:
        raise UsageError("distributed training (torchrun) runs with --backend torch; "
                         "the keras backend trains in one process")
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
        self.backend, self.graph = backend, graph
        self.device = "/GPU:0" if config.device == "cuda" else "/CPU:0"
        keras.utils.set_random_seed(config.seed)  # dropout's seed generators are drawn from it
        with tf.device(self.device):
            self.model = backend.compile(graph, weights=weights, seed=config.seed)
            lr = config.learning_rate
            self.optimizer = (keras.optimizers.Adam(learning_rate=lr) if config.optimizer == "adam"
                              else keras.optimizers.SGD(learning_rate=lr, momentum=0.9))
            self.optimizer.build(self.model.trainable_variables)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
        c, h, w = graph.input_shape
        spec = (tf.TensorSpec([None, c, h, w], tf.float32), tf.TensorSpec([None], tf.int64))
        self._train_step = tf.function(self._step, input_signature=spec)
        self._eval_step = tf.function(self._eval, input_signature=spec)

    def _step(self, xb, yb):
        tf = self.tf
        with tf.GradientTape() as tape:
            logits = self.model(xb, training=True)
            loss_sum = self.loss_fn(yb, logits)
            loss = loss_sum / tf.cast(tf.shape(yb)[0], loss_sum.dtype)
        variables = self.model.trainable_variables
        grads = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        return loss_sum, self._correct(logits, yb)

    def _eval(self, xb, yb):
        logits = self.model(xb, training=False)
        return self.loss_fn(yb, logits), self._correct(logits, yb)

    def _correct(self, logits, yb):
        tf = self.tf
        return tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, axis=1), yb), tf.int64))

    def train_epoch(self, x, y, batches, bar) -> EpochStats:
        loss_sum, correct, seen = 0.0, 0, 0
        with self.tf.device(self.device):
            for idx in batches:
                batch_loss, batch_correct = self._train_step(x[idx], y[idx])
                loss_sum += float(batch_loss)
                correct += int(batch_correct)
                seen += len(idx)
                bar.update(loss_sum / seen, correct / seen)
        return EpochStats(loss_sum / seen, correct / seen, seen)

    def evaluate(self, x, y, indices):
        loss_sum, correct = 0.0, 0
        with self.tf.device(self.device):
            for start in range(0, len(indices), EVAL_BATCH):
                idx = indices[start:start + EVAL_BATCH]
                batch_loss, batch_correct = self._eval_step(x[idx], y[idx])
                loss_sum += float(batch_loss)
                correct += int(batch_correct)
        return loss_sum / len(indices), correct / len(indices)

    def weights(self) -> dict:
        return self.backend.get_weights(self.model, self.graph)

    def close(self) -> None:
        pass
