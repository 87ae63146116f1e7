"""`LSTM`: Keras's LSTM layer, same weights, with a faster CPU kernel beside the cuDNN one.

Keras's generic LSTM loop (what a CPU runs) multiplies each time step's input
by the input kernel inside the loop, one small GEMM per step, and pays TF's
per-iteration loop overhead on every op. On a CPU this layer instead

    x (batch, time, input_dim) ──► x @ W + b, ONE matmul for all steps ──► zx (time, batch, 4*units)
    for t in time:   z = zx[t] + h @ U          (only the recurrent GEMM stays in the loop)
                     i, f, g, o = split(z)       (Keras's gate order and bias layout)
                     c = σ(f)*c + σ(i)*tanh(g);  h = σ(o)*tanh(c)

the input projection hoisted out of the recurrence as cuDNN itself does
(Appleyard et al. 2016, "Optimizing performance of recurrent neural networks
on GPUs"), and the loop unrolled: no `tf.while_loop` overhead per op. In
training its gradient is written out (`hoisted_recurrence`) so that, as in that paper,
the backward pass runs only dz_t -> dh_{t-1} in the loop and the gradient of
U is ONE matmul over all steps, [h_0 .. h_{T-1}]^T @ [dz_1 .. dz_T], instead
of TF's per-step outer products summed afterwards. The kernel
runs on unmasked inputs whose number of steps is known when tracing, at most
`MAX_UNROLLED_STEPS`: the truncated-BPTT windows of language-model training.
Padded batches (the classifiers', whose lengths also vary from batch to
batch, so that every new length would trace an unrolled graph again) take
Keras's loop. Weights, `go_backwards` and the returned values are Keras's
exactly, so checkpoints and `model.keras` files are interchangeable with
`keras.layers.LSTM`'s. On a GPU, where Keras runs the fused cuDNN kernel,
nothing changes: this path is taken only where the cuDNN one is not
(`kernel_path()` says which one runs here).

TensorFlow is imported only where the TensorFlow backend runs, so that
`LSTMBackbone` and `cudnn_report` also run under Keras's JAX and torch
backends, whose LSTM has a fused cuDNN path of its own for unmasked
batches (`benchmarks/gpu_backends_speed.py`).
"""

import keras
import numpy as np

# Longer (or unknown: a batch shape that varies) lengths run Keras's own loop. A hoisted projection in a
# tf.while_loop measured no faster than Keras's loop at 2x200 (BENCHMARKS.md): the unrolling is what gains there.
MAX_UNROLLED_STEPS = 128
CPU_KERNELS = ("hoisted", "keras")


def gpu_available():
    """Whether Keras's backend sees a GPU (where Keras's LSTM runs a fused cuDNN kernel)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.default_backend() == "gpu"
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def kernel_path(masked=False, eligible=True):
    """The recurrent kernel textlstm's LSTM layers run on this machine.

    "cudnn" on a GPU if the layers are cuDNN-eligible (and, under Keras's JAX
    or torch backend, unmasked: their cuDNN paths take no mask, and there
    Keras tries cuDNN but falls back to its loop if the call fails); "hoisted"
    on a CPU under TensorFlow for unmasked fixed-length windows; else
    "keras loop".
    """
    tensorflow = keras.backend.backend() == "tensorflow"
    if gpu_available():
        return "cudnn" if eligible and (tensorflow or not masked) else "keras loop"
    return "hoisted" if tensorflow and eligible and not masked else "keras loop"


@keras.saving.register_keras_serializable(package="textlstm")
class LSTM(keras.layers.LSTM):
    """`keras.layers.LSTM` with the hoisted-projection CPU kernel described in this module.

    Args:
        units: int, size of h and c.
        cpu_kernel: "hoisted" (this module's kernel) or "keras" (Keras's
            generic loop, kept for comparison, e.g. in
            `benchmarks/training_speed.py`). Where neither applies (a GPU, or
            a setting the hoisted kernel does not cover: a mask, dropout
            inside the cell, activations other than tanh and sigmoid,
            `unroll=True`, `use_cudnn=True`, a
            non-TensorFlow backend, a length unknown when tracing or above
            `MAX_UNROLLED_STEPS`) Keras's own path runs.
        **kwargs: `keras.layers.LSTM`'s arguments.

    Example:
    >>> import numpy as np
    >>> layer = LSTM(4, return_sequences=True)
    >>> reference = keras.layers.LSTM(4, return_sequences=True)
    >>> x = np.random.RandomState(0).randn(2, 5, 3).astype("float32")
    >>> _ = layer(x), reference(x)
    >>> reference.set_weights(layer.get_weights())
    >>> bool(np.allclose(layer(x), reference(x), atol=1e-6))
    True
    """

    def __init__(self, units, cpu_kernel="hoisted", **kwargs):
        if cpu_kernel not in CPU_KERNELS:
            raise ValueError(f"`cpu_kernel` must be one of {CPU_KERNELS}, received {cpu_kernel!r}.")
        super().__init__(units, **kwargs)
        self.cpu_kernel = cpu_kernel

    def uses_hoisted_kernel(self, steps, masked=False):
        """Whether a call on `steps` time steps (None: unknown), with or without a mask, runs this module's
        kernel, else Keras's own."""
        return (self.cpu_kernel == "hoisted" and keras.backend.backend() == "tensorflow" and not gpu_available()
                and self.use_cudnn is not True  # Keras's own path raises on a CPU then
                and not self.unroll and not self.dropout and not self.recurrent_dropout and not masked
                and _activation_name(self.cell.activation) == "tanh"  # the derivatives hoisted_recurrence
                and _activation_name(self.cell.recurrent_activation) == "sigmoid"  # writes out
                and steps is not None and steps <= MAX_UNROLLED_STEPS)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not self.uses_hoisted_kernel(sequences.shape[1], masked=mask is not None):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        import tensorflow as tf  # the hoisted kernel runs on the TensorFlow backend only

        cell = self.cell
        h, c = initial_state  # (batch, units) each
        if self.go_backwards:
            sequences = tf.reverse(sequences, [1])
        kernel = tf.cast(cell.kernel, sequences.dtype)
        recurrent_kernel = tf.cast(cell.recurrent_kernel, sequences.dtype)
        projected = tf.einsum("btd,dg->tbg", sequences, kernel)  # (time, batch, 4*units)
        if cell.use_bias:
            projected += tf.cast(cell.bias, sequences.dtype)
        outputs, h, c = hoisted_recurrence(projected, h, c, recurrent_kernel, training=bool(training))
        return h, outputs, [h, c]  # last output, (batch, time, units), states

    def get_config(self):
        return {**super().get_config(), "cpu_kernel": self.cpu_kernel}


def hoisted_recurrence(projected, h, c, recurrent_kernel, training=True):
    """The unrolled LSTM recurrence over pre-projected inputs, with its gradient written out for training.

    Args:
        projected: `(time, batch, 4*units)`, x_t @ W + b for every step.
        h, c: `(batch, units)` each, the initial state.
        recurrent_kernel: `(units, 4*units)`, U in Keras's gate order i, f, g, o.
        training: True: with the written-out gradient. False (inference): plain
            ops, which TF differentiates itself if asked. TF registers a traced
            function's custom gradient globally and never frees it (with the
            graph it holds), so it is kept to the few traces of training.

    Returns:
        `(outputs, h, c)`: every step's h `(batch, time, units)`, and the last h and c.
    """
    import tensorflow as tf

    if not training:
        return _unrolled_steps(projected, h, c, recurrent_kernel)[:3]

    @tf.custom_gradient
    def recurrence(projected, h0, c0, recurrent_kernel):
        outputs, h, c, states, activations = _unrolled_steps(projected, h0, c0, recurrent_kernel)

        def gradient(d_outputs, d_h, d_c):
            d_outputs = tf.unstack(d_outputs, num=len(activations), axis=1)  # (batch, units) per step
            d_z = [None] * len(activations)
            for t in reversed(range(len(activations))):  # back through time: only dz_t @ U^T in the loop
                c_previous, i, f, g, o, tanh_c = activations[t]
                d_h = d_outputs[t] + d_h
                d_c = d_c + d_h * o * (1 - tanh_c * tanh_c)
                d_z[t] = tf.concat([d_c * g * i * (1 - i), d_c * c_previous * f * (1 - f), d_c * i * (1 - g * g),
                                    d_h * tanh_c * o * (1 - o)], axis=1)  # (batch, 4*units), gates i, f, g, o
                d_h = tf.matmul(d_z[t], recurrent_kernel, transpose_b=True)  # (batch, units)
                d_c = d_c * f
            d_z = tf.stack(d_z)  # (time, batch, 4*units)
            h_previous = tf.stack(states[:-1])  # (time, batch, units)
            d_recurrent_kernel = tf.matmul(tf.reshape(h_previous, [-1, h_previous.shape[-1]]),
                                           tf.reshape(d_z, [-1, d_z.shape[-1]]), transpose_a=True)  # (units, 4*units)
            return d_z, d_h, d_c, d_recurrent_kernel

        return (outputs, h, c), gradient

    return recurrence(projected, h, c, recurrent_kernel)


def _unrolled_steps(projected, h, c, recurrent_kernel):
    """`hoisted_recurrence`'s forward pass: `(outputs, h, c)`, plus [h_0 .. h_T] and each step's
    (c_{t-1}, i, f, g, o, tanh c_t) for the gradient."""
    import tensorflow as tf

    states, activations = [h], []
    # Steps are read with unstack, never by indexing: were TF to differentiate this (inference), the gradient
    # of `projected[t]` would be a full (time, batch, 4*units) tensor per step.
    for projected_t in tf.unstack(projected):
        i, f, g, o = tf.split(projected_t + tf.matmul(h, recurrent_kernel), 4, axis=1)  # (batch, units) each
        i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
        c_previous, c = c, f * c + i * g
        tanh_c = tf.tanh(c)
        h = o * tanh_c
        states.append(h)
        activations.append((c_previous, i, f, g, o, tanh_c))
    return tf.stack(states[1:], axis=1), h, c, states, activations  # outputs (batch, time, units)


# What Keras's fused cuDNN kernel needs of a layer (keras.src.backend.tensorflow.rnn.cudnn_ok).
CUDNN_REQUIREMENTS = {
    "activation": "tanh",
    "recurrent_activation": "sigmoid",
    "recurrent_dropout": 0.0,
    "use_bias": True,
    "unroll": False,
}


def _activation_name(value):
    return getattr(value, "__name__", value)


def layer_cudnn_problems(layer):
    """Why `layer` (LSTM, GRU or another RNN) cannot run the fused cuDNN kernel; [] if it can."""
    if not isinstance(layer, (keras.layers.LSTM, keras.layers.GRU)):
        cell = getattr(layer, "cell", None)
        return [f"cell {type(cell).__name__ if cell is not None else type(layer).__name__} has no cuDNN kernel"]
    problems = []
    for name, needed in CUDNN_REQUIREMENTS.items():
        value = getattr(layer, name, None)
        if name.endswith("activation"):
            value = _activation_name(getattr(layer.cell, name))
        if value != needed:
            problems.append(f"{name}={value!r} (cuDNN needs {needed!r})")
    if isinstance(layer, keras.layers.GRU) and not layer.reset_after:
        problems.append("reset_after=False (cuDNN needs True)")
    if getattr(layer, "use_cudnn", "auto") is False:
        problems.append("use_cudnn=False")
    return problems


def padding_problems(token_ids, pad_id=0):
    """What in a batch of ids `(batch, time)` keeps Keras's cuDNN path from running it.

    The kernel takes a mask only as right padding (sequence lengths); a row
    padded on the left or in the middle makes Keras raise on a GPU, and a
    row with no real token at all (a fully masked row) has no length.
    """
    real = np.asarray(token_ids) != pad_id  # (batch, time)
    lengths = real.sum(axis=1)  # (batch,)
    right_padded = (real == (np.arange(real.shape[1]) < lengths[:, None])).all(axis=1)  # (batch,)
    problems = [f"row {row} is not right padded (padding before a real token)"
                for row in np.flatnonzero(~right_padded)[:3]]
    problems += [f"row {row} is fully padded (no real token)" for row in np.flatnonzero(lengths == 0)[:3]]
    return problems


def cudnn_report(backbone, sample_ids=None, masked=True):
    """Which recurrent layers of an `LSTMBackbone` can run the fused cuDNN kernel on a GPU, and why not.

    Args:
        backbone: an `LSTMBackbone` (or a task with a `.backbone`).
        sample_ids: optional ids `(batch, time)` the model is fed (e.g. a
            training batch), checked for right padding and empty rows.
        masked: whether the backbone gets a mask (every padded batch; not
            the stream windows of LM training), for `kernel`.

    Returns:
        A dict: `kernel` (what runs on this machine: `kernel_path`),
        `eligible` (every layer and the sample can use cuDNN), `layers`
        (one entry per recurrent layer and direction: name, class,
        eligible, problems) and `data_problems`.

    Example:
    >>> from textlstm.models import LSTMBackbone
    >>> report = cudnn_report(LSTMBackbone(50, embedding_dim=8, hidden_dim=8, num_layers=1, bidirectional=True))
    >>> report["eligible"], [layer["name"] for layer in report["layers"]]
    (True, ['bidirectional_0/forward', 'bidirectional_0/backward'])
    """
    backbone = getattr(backbone, "backbone", backbone)
    layers = []
    for layer in backbone.recurrent_layers:
        if isinstance(layer, keras.layers.Bidirectional):  # Keras copies each direction: check both (keras #21533)
            parts = [(f"{layer.name}/forward", layer.forward_layer), (f"{layer.name}/backward", layer.backward_layer)]
        else:
            parts = [(layer.name, layer)]
        for name, part in parts:
            problems = layer_cudnn_problems(part)
            layers.append({"name": name, "class": type(part).__name__, "eligible": not problems, "problems": problems})
    data_problems = [] if sample_ids is None else padding_problems(sample_ids)
    eligible = all(entry["eligible"] for entry in layers) and not data_problems
    hoistable = all(entry["class"] == "LSTM" for entry in layers)  # textlstm's LSTM, not a GRU or another RNN
    return {"kernel": kernel_path(masked=masked or not hoistable, eligible=eligible), "eligible": eligible,
            "layers": layers, "data_problems": data_problems}


def describe_cudnn_report(report):
    """One line for logs and run reports."""
    if report["eligible"]:
        return f"cuDNN-eligible: all {len(report['layers'])} recurrent layers (running here: {report['kernel']} kernel)"
    problems = [f"{entry['name']}: {', '.join(entry['problems'])}" for entry in report["layers"] if entry["problems"]]
    return (f"NOT cuDNN-eligible (GPUs fall back to Keras's generic loop): "
            f"{'; '.join(problems + report['data_problems'])} (running here: {report['kernel']} kernel)")
