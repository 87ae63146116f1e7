"""Training a language model on several replicas with `tf.distribute`, textlstm's own loop.

Two strategies, one trainer (`DistributedTrainer`):

- `strategy=multi_worker`: `MultiWorkerMirroredStrategy`, the worker
  processes `TF_CONFIG` names, one device (replica) each;
- `strategy=mirrored`: `MirroredStrategy`, one process, a replica on each of
  its GPUs (or logical CPUs, where the process split its CPU).

Keras 3.15's `fit` does not run under `MultiWorkerMirroredStrategy`
(keras-team/keras#20585, open), so the trainer drives the run's Keras
callbacks itself around a step run with `strategy.run`. Each replica takes
its rows of every global batch of B streams and carries their LSTM state,
so R replicas together compute exactly the gradient of one device training
on the whole batch:

    global batch: B streams x T steps           R = 2 replicas (workers, or devices of one process)
    ┌────────────────────────────┐
    │ s0  s1  ...  s(B/2 - 1)    │ ──► replica 0: its B/2 streams, their carried LSTM state
    │ s(B/2)  ...  s(B - 1)      │ ──► replica 1: its B/2 streams, their carried LSTM state
    └────────────────────────────┘
    each: loss = Σ its tokens' losses / Σ all replicas' tokens ──► gradient
    all-reduce(SUM) of the gradients ──► clipped as the optimizer clips ──► the same update everywhere

A process keeps the carried state of its rows in plain (unmirrored)
variables, `(its rows, hidden_dim)` each: the step reads them before
`strategy.run`, hands each local replica its block of rows, and writes the
replicas' final states back after it, so checkpoints hold every stream's
state (resuming on another number of devices is untested).

Every replica holds the same weights, optimizer state, seed states (so the
sampled-softmax negatives are the same set for the whole batch, as on one
device) and logs. The chief (worker 0) evaluates the validation data and every
worker takes its numbers, so the callbacks (learning-rate schedule, early
stopping, best weights) decide the same on each; whether to stop, and whether
to train at all on a resumed run, is the chief's decision or agreed. Each
worker keeps its own run directory (the chief: `run_dir`; worker i:
`run_dir.worker-i`) with its own checkpoints (`textlstm.checkpoints`), which
hold its streams' carried state; a resumed run restarts every worker from the
newest step that all of them checkpointed. An error on one worker where the
others would wait for it (restoring) is raised on every worker.

The cluster of `strategy=multi_worker` comes from `TF_CONFIG`, as for any `tf.distribute` job:

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
"""

import json
import logging
import math
import os
import zlib

import keras
import numpy as np
import tensorflow as tf

from textlstm.checkpoints import checkpoint_step

logger = logging.getLogger(__name__)


def cluster_from_environment():
    """(this worker's index, the number of workers) from `TF_CONFIG`; a ValueError naming what is wrong with it."""
    raw = os.environ.get("TF_CONFIG", "")
    example = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}')
    if not raw:
        raise ValueError(f"strategy=multi_worker needs the environment variable TF_CONFIG, e.g. TF_CONFIG='{example}' "
                         f"(the same cluster on every worker, each with its own index); it is not set.")
    try:
        tf_config = json.loads(raw)
        workers = tf_config["cluster"]["worker"]
        task = tf_config["task"]
        index = task["index"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"TF_CONFIG must be JSON like {example}; reading it failed ({error!r}), received "
                         f"{raw!r}.") from None
    if task.get("type") != "worker" or set(tf_config["cluster"]) != {"worker"}:
        raise ValueError(f"TF_CONFIG: textlstm runs a cluster of workers only (worker 0 is the chief), "
                         f"received cluster jobs {sorted(tf_config['cluster'])} and task type {task.get('type')!r}.")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(workers):
        raise ValueError(f"TF_CONFIG: task index must be an int in [0, {len(workers)}), received {index!r}.")
    return index, len(workers)


def make_strategy():
    """The `MultiWorkerMirroredStrategy` of `TF_CONFIG`, made before any other TensorFlow work (it must be).

    Returns:
        (strategy, worker index, number of workers).

    Raises:
        ValueError: `TF_CONFIG` is missing or malformed, or a worker has
            more than one device (textlstm runs one replica per worker).
    """
    index, count = cluster_from_environment()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    if strategy.num_replicas_in_sync != count:
        raise ValueError(f"strategy=multi_worker runs one replica per worker, but {count} workers make "
                         f"{strategy.num_replicas_in_sync} replicas; give each worker process one device "
                         f"(e.g. CUDA_VISIBLE_DEVICES).")
    logger.info("multi-worker training: worker %d of %d", index, count)
    return strategy, index, count


def make_mirrored_strategy():
    """A `MirroredStrategy` over this process's GPUs, or, with none, its logical CPUs.

    A CPU is one logical device (which already uses every core), so on a
    CPU-only machine this is one replica unless the process split its CPU
    with `tf.config.set_logical_device_configuration` first (the tests do).

    Returns:
        (strategy, 0, 1): the worker index and number of workers of one process.
    """
    devices = [device.name for device in tf.config.list_logical_devices("GPU") or
               tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices)
    logger.info("mirrored training: %d replica(s) on %s", strategy.num_replicas_in_sync, ", ".join(devices))
    if strategy.num_replicas_in_sync == 1:
        logger.warning("strategy=mirrored found one device (%s): training runs as on one device", devices[0])
    return strategy, 0, 1


def check_batch_size(batch_size, strategy):
    """A ValueError unless `batch_size` streams split equally among the strategy's replicas."""
    if batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"field `batch_size` must be a multiple of the {strategy.num_replicas_in_sync} replicas "
                         f"(each takes an equal share of the streams), received {batch_size}.")


def worker_rows(batch_size, index, count):
    """(first, last + 1) of this worker's rows of a global batch; a ValueError when they cannot be equal."""
    if batch_size % count:
        raise ValueError(f"field `batch_size` must be a multiple of the {count} workers (each takes an equal "
                         f"share of the streams), received {batch_size}.")
    rows = batch_size // count
    return index * rows, (index + 1) * rows


def worker_shard(dataset, index, count):
    """Each global batch of `(x, y, weights)` cut to this worker's rows (its streams)."""
    batch_size = dataset.element_spec[0].shape[0]
    if batch_size is None:
        raise ValueError("`dataset` must have a fixed batch size (stream windows) to be split among workers, "
                         "received batches of unknown size.")
    first, end = worker_rows(batch_size, index, count)
    return dataset.map(lambda x, y, w: (x[first:end], y[first:end], w[first:end]))


def worker_run_dir(run_dir, index):
    """The run directory of worker `index`: `run_dir` for the chief (0), `run_dir.worker-INDEX` beside it else."""
    return run_dir if index == 0 else f"{run_dir.rstrip(os.sep)}.worker-{index}"


def check_same_vocabulary(strategy, tokenizer):
    """Raises a ValueError unless every worker's tokenizer has the same vocabulary (ids must mean the same)."""
    fingerprint = zlib.crc32("\n".join(tokenizer.get_vocabulary()).encode("utf-8"))
    per_replica = strategy.run(lambda: tf.constant([fingerprint], tf.float64))
    fingerprints = strategy.gather(per_replica, axis=0).numpy().astype(int).tolist()  # once: no tf.function
    if len(set(fingerprints)) != 1:
        raise ValueError(f"the workers' tokenizers differ (vocabulary CRC-32 by worker: {fingerprints}): give every "
                         f"worker the same train_file, max_train_lines and tokenizer fields.")


class DistributedTrainer:
    """Trains a `LanguageModel` built and compiled inside `strategy.scope()`, on every replica of `strategy`.

    Args:
        model: the `LanguageModel` (stream mode: `compile(carry_state=True)`).
        strategy, index, count: from `make_strategy` or `make_mirrored_strategy`
            (this worker's index, the number of worker processes).
    """

    def __init__(self, model, strategy, index, count):
        if model.optimizer is None:
            raise ValueError("`model` must be compiled (inside strategy.scope()) before training.")
        if not model.carry_state:
            raise ValueError("`model` must be compiled with carry_state=True: replicas train on stream windows "
                             "(mode=stream), received carry_state=False.")
        if isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer):
            raise ValueError("a tf.distribute strategy does not take mixed_float16's loss scaling here; use "
                             "precision=float32 or mixed_bfloat16.")
        self.model = model
        self.strategy = strategy
        self.index = index
        self.count = count
        self.replicas = strategy.num_replicas_in_sync
        self.local_replicas = self.replicas // count  # this process's devices
        self._train_step = tf.function(self._distributed_step)
        self._eval_step = tf.function(self._local_eval_step)
        self._gather = tf.function(lambda value: strategy.gather(strategy.run(lambda: value), axis=0))  # a trace per count

    def chief_says(self, flag):
        """The chief's `flag`, on every worker (a collective)."""
        return bool(self.gather(float(flag))[0, 0])

    def any_says(self, flag):
        """Whether any worker's `flag` is true, on every worker (a collective)."""
        return bool(self.gather(float(flag))[:, 0].max())

    def gather(self, *values):
        """`values` (numbers) from every replica, as a numpy array `(replicas, len(values))` in replica order
        (a worker's local replicas give the same row): a collective, which every worker must call."""
        return self._gather(tf.constant([values], tf.float64)).numpy()

    def _replica_step(self, x, y, weights, states):
        """One replica's share of a step: its block of this process's rows `x, y, weights` `(rows, time)` and
        carried `states` (flat, `(rows, hidden_dim)` each). Returns the batch's loss sum and token count and
        this replica's final states."""
        model, context = self.model, tf.distribute.get_replica_context()
        local = context.replica_id_in_sync_group - self.index * self.local_replicas  # among this process's replicas

        def own_rows(value):  # (rows, ...) -> (rows / local_replicas, ...): this replica's block
            return tf.gather(tf.reshape(value, (self.local_replicas, -1, *value.shape[1:])), local)

        x, y, weights = own_rows(x), own_rows(y), own_rows(weights)
        per = model.backbone.states_per_layer
        initial_state = [[own_rows(s) for s in states[i : i + per]] for i in range(0, len(states), per)]
        total_weight = context.all_reduce("SUM", tf.reduce_sum(weights))  # every replica's tokens
        with tf.GradientTape() as tape:
            _, token_losses, weights, final = model._forward((x, y, weights), initial_state, training=True)
            loss_sum = tf.reduce_sum(token_losses * weights)
            loss = loss_sum / tf.maximum(total_weight, 1.0)  # this replica's share of the batch's mean loss
        gradients = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)  # dense: summed over the replicas
                     for g, v in zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables)]
        gradients = context.all_reduce("SUM", gradients)  # the whole batch's gradient
        optimizer = model.optimizer
        if optimizer.clipnorm:  # as the optimizer clips, but on the whole batch's gradient, not a replica's share
            gradients = [tf.clip_by_norm(g, optimizer.clipnorm) for g in gradients]
        if optimizer.global_clipnorm:
            gradients, _ = tf.clip_by_global_norm(gradients, optimizer.global_clipnorm)
        if optimizer.clipvalue:
            gradients = [tf.clip_by_value(g, -optimizer.clipvalue, optimizer.clipvalue) for g in gradients]
        # The optimizer sums the replicas' gradients once more: each gives 1/R of the (identical) gradient, which
        # its own clipping leaves alone (already below the limit), and the sum restores it.
        optimizer.apply([g / self.replicas for g in gradients], model.trainable_variables)
        return context.all_reduce("SUM", loss_sum), total_weight, [tf.stop_gradient(s) for s in sum(final, [])]

    def _distributed_step(self, x, y, weights):
        carried = self.model._carried.variables[("train", x.shape[0])]  # this process's rows
        loss_sum, total_weight, final = self.strategy.run(
            self._replica_step, args=(x, y, weights, [v.read_value() for v in carried]))
        local = self.strategy.experimental_local_results
        for variable, value in zip(carried, final):  # the local replicas' blocks, in their order
            variable.assign(tf.cast(tf.concat(local(value), axis=0), variable.dtype))
        return local(loss_sum)[0], local(total_weight)[0]  # already summed over the replicas

    def _local_eval_step(self, x, y, weights):
        _, token_losses, weights = self.model._step((x, y, weights), training=False)
        return tf.reduce_sum(token_losses * weights), tf.reduce_sum(weights)

    def evaluate(self, dataset):
        """{"loss", "perplexity"} of `dataset`: the chief evaluates all of it and every worker gets its numbers, so
        the callbacks that read them (schedules, early stopping, best weights) decide alike everywhere."""
        loss_sum = weight_sum = 0.0
        if self.index == 0:
            self.model._prepare_carried("test", dataset)
            self.model.reset_carried_state("test")
            for x, y, weights in dataset:
                batch_loss, batch_weight = self._eval_step(x, y, weights)
                loss_sum, weight_sum = loss_sum + float(batch_loss), weight_sum + float(batch_weight)
        loss_sum, weight_sum = self.gather(loss_sum, weight_sum)[0]  # the chief's
        loss = loss_sum / max(weight_sum, 1.0)
        return {"loss": loss, "perplexity": math.exp(loss)}

    def restore(self, checkpoint, steps_per_epoch):
        """`checkpoint.restore` at the newest step every worker checkpointed (a kill can cut one worker's last).

        Raises:
            RuntimeError: the workers' checkpoints have no step in common
                (a worker's `backup/` lost, a worker added): nothing is deleted.
        """
        steps = [checkpoint_step(name) for name in checkpoint.checkpoints()]
        newest = self.gather(max(steps, default=0))[:, 0].astype(int).tolist()
        agreed = min(newest)
        # A kill during the very first checkpoint leaves some workers one and others none: all start afresh.
        first_save = min(checkpoint.every_steps or steps_per_epoch, steps_per_epoch)
        has_agreed = (agreed in steps) if agreed else (not steps or max(newest) <= first_save)
        if not self.gather(float(has_agreed))[:, 0].all():  # every worker sees the same answer
            raise RuntimeError(
                f"the workers' checkpoints share no step (newest step by worker: {newest}; this worker, {self.index}, "
                f"has {sorted(steps)}): was a worker's run directory lost, or the number of workers changed? Restore "
                f"it, or train in a new run_dir; no checkpoint was deleted.")
        if steps and agreed != max(steps):
            logger.warning("worker %d: resuming from step %d, the newest every worker has (this one has %d)",
                           self.index, agreed, max(steps))
        position, error = None, None
        try:
            with self.strategy.scope():  # the optimizer's slot variables (Adam's moments) are made mirrored
                position = checkpoint.restore(self.model, steps_per_epoch, step=agreed)
        except (OSError, ValueError, RuntimeError) as caught:  # the others would wait for this worker forever
            error = caught
        failed = [index for index, ok in enumerate(self.gather(float(error is None))[:, 0]) if not ok]
        if error is not None:
            raise error
        if failed:
            raise RuntimeError(f"worker(s) {failed} could not restore their checkpoints (their logs say why); "
                               f"this worker, {self.index}, stops with them.")
        restored = self.gather(position.global_step)[:, 0]
        if len(set(restored.tolist())) != 1:
            raise RuntimeError(f"the workers resumed from different steps ({restored.astype(int).tolist()}, by "
                               f"worker): a checkpoint was unreadable on some and set aside; run the same command "
                               f"again on every worker to resume from an older common step.")
        return position

    def fit(self, train_data, checkpoint, epochs, callbacks=(), validation_data=None, verbose=1, shuffle=False):
        """`resumable_fit` for several replicas: trains from `checkpoint.position` to `epochs` epochs.

        `train_data` is a function returning a fresh dataset of global
        batches (every worker builds all of them and keeps its rows);
        `checkpoint` is this worker's `TrainingCheckpoint`, after `restore`.
        `shuffle` must be False (streams keep their order).
        """
        if shuffle:
            raise ValueError(f"`shuffle` must be False (the streams' order is what the carried state relies on), "
                             f"received {shuffle!r}.")
        model, steps = self.model, checkpoint.steps_per_epoch
        position = checkpoint.position
        data = worker_shard(train_data().repeat().skip(position.global_step), self.index, self.count)
        model._prepare_carried("train", data)
        callbacks = keras.callbacks.CallbackList(list(callbacks), add_history=True, add_progbar=verbose != 0,
                                                 model=model, verbose=verbose, epochs=epochs, steps=steps)
        checkpoint.set_model(model)
        model.stop_training = False
        batches = iter(data)
        callbacks.on_train_begin()
        logs = {}
        for epoch in range(position.epoch, epochs):
            model.reset_carried_state("train")  # before the checkpoint puts back a resumed epoch's state
            callbacks.on_epoch_begin(epoch)
            checkpoint.on_epoch_begin(epoch)
            loss_sum = weight_sum = 0.0
            for step in range(position.step_in_epoch if epoch == position.epoch else 0, steps):
                callbacks.on_train_batch_begin(step)
                batch_loss, batch_weight = self._train_step(*next(batches))
                loss_sum, weight_sum = loss_sum + float(batch_loss), weight_sum + float(batch_weight)
                loss = loss_sum / max(weight_sum, 1.0)
                logs = {"loss": loss, "perplexity": math.exp(min(loss, 700.0))}
                callbacks.on_train_batch_end(step, logs)
                checkpoint.on_train_batch_end(step, logs)
            if validation_data is not None:
                callbacks.on_test_begin()  # the epoch timer's train_seconds end here
                validation = {f"val_{name}": value for name, value in self.evaluate(validation_data).items()}
                callbacks.on_test_end(validation)
                logs.update(validation)
            callbacks.on_epoch_end(epoch, logs)
            # A time budget measures this worker's clock: stop when any worker's callbacks say so.
            model.stop_training = bool(self.gather(float(model.stop_training)).max())
            checkpoint.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
        callbacks.on_train_end(logs)


def plain_copy(model, build):
    """A copy of `model` outside any strategy (`build()` makes the same architecture), for evaluation and saving."""
    copy = build()
    copy.set_weights([np.asarray(w) for w in model.get_weights()])
    return copy
