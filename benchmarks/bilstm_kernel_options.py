"""Three kernels for the classifiers' masked BiLSTM batches, against Keras's masked loop, in one run.

    python benchmarks/bilstm_kernel_options.py [--batch 64] [--steps 64] [--units 256] [--repetitions 3]
        [--calls 5]

One bidirectional layer over right-padded rows of `steps // 2` to `steps`
real tokens, forward + backward of a sum of squares of its outputs:

- "keras masked loop": `Bidirectional(keras.layers.LSTM)` with the mask,
  what textlstm's classifiers run on a CPU today;
- "while_loop, written-out gradient": the input projection hoisted, the
  recurrence in a `tf.while_loop` (any length, as `fit` traces a bucketed
  dataset), each direction unmasked over its rows reversed within their
  lengths (`tf.reverse_sequence`), the LSTM gradient written out as in
  `hoisted_recurrence`;
- "unrolled (hoisted_recurrence)": the same with textlstm's unrolled kernel,
  which needs the number of steps when tracing;
- "while_loop, both directions batched": the while_loop kernel with the two
  directions stacked, one loop of batched matmuls `(2, batch, units) @ (2,
  units, 4*units)` instead of two loops (the issue's "both directions of a
  BiLSTM in one batched step").

None of the alternatives is in textlstm (BENCHMARKS.md, "On an AMD EPYC
machine", says why); this script keeps the measurement reproducible.
Prints the CPU model and ms per step of each repetition; the variants
alternate so that drift hits all alike.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from torch_reference import time_call  # noqa: E402  (imports torch only where its runners run)

from textlstm.models.recurrent import hoisted_recurrence  # noqa: E402
from textlstm.reports import markdown_table  # noqa: E402
from textlstm.training import cpu_description  # noqa: E402


def while_loop_recurrence(projected, h0, c0, recurrent_kernel):
    """`hoisted_recurrence`'s maths in a `tf.while_loop`: `(time, batch, 4*units)` -> h of every step, last h, c.

    With a leading directions axis on everything (`projected` `(time, 2, batch,
    4*units)`, state `(2, batch, units)`, `recurrent_kernel` `(2, units,
    4*units)`), the same loop runs both directions in batched matmuls and
    returns h of every step as `(time, 2, batch, units)`.
    """
    batched = len(recurrent_kernel.shape) == 3

    @tf.custom_gradient
    def recurrence(projected, h0, c0, recurrent_kernel):
        steps = tf.shape(projected)[0]

        def step(t, h, c, hs, cs, gates):
            z = projected[t] + tf.matmul(h, recurrent_kernel)  # ([2,] batch, 4*units)
            i, f, g, o = tf.split(z, 4, axis=-1)
            i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
            c = f * c + i * g
            h = o * tf.tanh(c)
            return t + 1, h, c, hs.write(t, h), cs.write(t, c), gates.write(t, tf.concat([i, f, g, o], -1))

        arrays = [tf.TensorArray(tf.float32, size=steps) for _ in range(3)]
        _, h, c, hs, cs, gates = tf.while_loop(lambda t, *_: t < steps, step, (0, h0, c0, *arrays))
        hs, cs, gates = hs.stack(), cs.stack(), gates.stack()  # (time, [2,] batch, units | 4*units)

        def gradient(d_outputs, d_h, d_c):
            d_hs = d_outputs if batched else tf.transpose(d_outputs, [1, 0, 2])  # (time, [2,] batch, units)
            c_previous = tf.concat([c0[None], cs[:-1]], 0)  # (time, [2,] batch, units)

            def back(k, d_h, d_c, d_zs):
                t = steps - 1 - k
                i, f, g, o = tf.split(gates[t], 4, axis=-1)
                tanh_c = tf.tanh(cs[t])
                d_h = d_hs[t] + d_h
                d_c = d_c + d_h * o * (1 - tanh_c * tanh_c)
                d_z = tf.concat([d_c * g * i * (1 - i), d_c * c_previous[t] * f * (1 - f), d_c * i * (1 - g * g),
                                 d_h * tanh_c * o * (1 - o)], -1)  # ([2,] batch, 4*units)
                return k + 1, tf.matmul(d_z, recurrent_kernel, transpose_b=True), d_c * f, d_zs.write(t, d_z)

            _, d_h, d_c, d_zs = tf.while_loop(lambda k, *_: k < steps, back,
                                              (0, d_h, d_c, tf.TensorArray(tf.float32, size=steps)))
            d_z = d_zs.stack()  # (time, [2,] batch, 4*units)
            h_previous = tf.concat([h0[None], hs[:-1]], 0)  # (time, [2,] batch, units)
            d_recurrent = tf.einsum("t...bu,t...bg->...ug", h_previous, d_z)  # ([2,] units, 4*units)
            return d_z, d_h, d_c, d_recurrent

        return (hs if batched else tf.transpose(hs, [1, 0, 2]), h, c), gradient

    return recurrence(projected, h0, c0, recurrent_kernel)


def bidirectional_step(weights, recurrence, units):
    """A traced training step: both directions unmasked on rows reversed within their lengths."""

    @tf.function
    def step(x, mask):
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), 1)  # (batch,)
        with tf.GradientTape() as tape:
            outputs = []
            for direction, inputs in enumerate((x, tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0))):
                kernel, recurrent_kernel, bias = weights[3 * direction: 3 * direction + 3]
                projected = tf.einsum("btd,dg->tbg", inputs, kernel) + bias  # (time, batch, 4*units)
                zeros = tf.zeros((tf.shape(x)[0], units))
                hs = recurrence(projected, zeros, zeros, recurrent_kernel)[0]  # (batch, time, units)
                outputs.append(tf.reverse_sequence(hs, lengths, seq_axis=1, batch_axis=0) if direction else hs)
            y = tf.concat(outputs, -1) * tf.cast(mask, tf.float32)[..., None]  # padded steps zeroed
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, weights)

    return step


def batched_bidirectional_step(weights, units):
    """A traced training step: both directions in one `while_loop_recurrence` of batched matmuls."""

    @tf.function
    def step(x, mask):
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), 1)  # (batch,)
        with tf.GradientTape() as tape:
            kernel, recurrent_kernel, bias = (tf.stack([weights[k], weights[k + 3]]) for k in range(3))
            inputs = tf.stack([x, tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0)])  # (2, batch, time, in)
            projected = tf.einsum("kbtd,kdg->tkbg", inputs, kernel) + bias[:, None]  # (time, 2, batch, 4*units)
            zeros = tf.zeros((2, tf.shape(x)[0], units))
            hs = tf.transpose(while_loop_recurrence(projected, zeros, zeros, recurrent_kernel)[0],
                              [1, 2, 0, 3])  # (2, batch, time, units)
            backward = tf.reverse_sequence(hs[1], lengths, seq_axis=1, batch_axis=0)
            y = tf.concat([hs[0], backward], -1) * tf.cast(mask, tf.float32)[..., None]  # padded steps zeroed
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, weights)

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--units", type=int, default=256, help="inputs and units per direction")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--calls", type=int, default=5, help="steps timed per repetition")
    args = parser.parse_args()

    rng = np.random.RandomState(0)
    x = tf.constant(rng.randn(args.batch, args.steps, args.units).astype("float32"))
    lengths = rng.randint(args.steps // 2, args.steps + 1, size=args.batch)
    mask = tf.constant(np.arange(args.steps)[None, :] < lengths[:, None])  # right padding
    layer = keras.layers.Bidirectional(keras.layers.LSTM(args.units, return_sequences=True))
    layer(x, mask=mask)
    weights = [tf.Variable(v) for v in layer.trainable_variables]  # forward kernel, recurrent, bias; backward

    @tf.function
    def keras_step(x, mask):
        with tf.GradientTape() as tape:
            y = layer(x, mask=mask) * tf.cast(mask, tf.float32)[..., None]  # the same loss: padded steps zeroed
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, layer.trainable_variables)

    def unrolled(projected, h, c, recurrent_kernel):
        return hoisted_recurrence(projected, h, c, recurrent_kernel, training=True)

    variants = {
        "keras masked loop": keras_step,
        "while_loop, written-out gradient": bidirectional_step(weights, while_loop_recurrence, args.units),
        "unrolled (hoisted_recurrence)": bidirectional_step(weights, unrolled, args.units),
        "while_loop, both directions batched": batched_bidirectional_step(weights, args.units),
    }
    reference = [g.numpy() for g in keras_step(x, mask)]
    for name, step in variants.items():
        difference = max(float(np.abs(g.numpy() - r).max() / (np.abs(r).max() + 1e-6))
                         for g, r in zip(step(x, mask), reference))
        if difference > 1e-3:
            raise SystemExit(f"{name}: gradients differ from Keras's by {difference} (relative)")
    rows = []
    for repetition in range(args.repetitions):
        for name, step in variants.items():
            seconds = time_call(lambda: [[g.numpy() for g in step(x, mask)] for _ in range(args.calls)])
            rows.append({"repetition": repetition + 1, "variant": name,
                         "ms per step": round(seconds / args.calls * 1000, 1)})
    print(f"CPU: {cpu_description()}; TF {tf.__version__}; batch {args.batch}, {args.steps} steps "
          f"({lengths.min()}-{lengths.max()} real), {args.units} units per direction")
    print(markdown_table(rows, ["repetition", "variant", "ms per step"]))


if __name__ == "__main__":
    main()
