"""The recurrent stack alone, forward and backward: Keras's LSTM loop against textlstm's hoisted kernel with TF's
own gradient and with its written-out gradient, in one run.

    python benchmarks/recurrent_kernel_speed.py [--hidden-dims 200,650] [--layers 2] [--batch 20] [--steps 35]
        [--repetitions 15]

For each hidden size, a stack of `--layers` LSTM layers (input = hidden
size, as in PTB small and medium) over a `(batch, steps, hidden)` input,
one `tf.function` per variant computing the gradients of a loss on the
top layer's outputs with respect to every weight. The variants, interleaved
so the machine's drift hits all alike:

- "keras loop": `keras.layers.LSTM`, what a CPU runs without textlstm;
- "hoisted, TF's gradient": the input projection hoisted and the loop
  unrolled (`hoisted_recurrence(training=False)`: the same forward ops,
  differentiated by TF, whose gradient of the recurrent matrix is one outer
  product per step);
- "hoisted, written-out gradient": `hoisted_recurrence` as training runs it.

Prints the CPU model and each variant's median and spread in ms, and checks
that all give the same gradients.
"""

import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from torch_reference import time_call  # noqa: E402  (imports torch only where its runners run)

from textlstm.models.recurrent import hoisted_recurrence  # noqa: E402
from textlstm.reports import markdown_table  # noqa: E402
from textlstm.training import cpu_description  # noqa: E402


def hoisted_stack(layers, training):
    """inputs `(batch, steps, hidden)` -> the top layer's outputs, through `hoisted_recurrence`."""

    def stack(inputs):
        outputs = inputs
        for layer in layers:
            cell = layer.cell
            projected = tf.einsum("btd,dg->tbg", outputs, cell.kernel) + cell.bias  # (steps, batch, 4*hidden)
            zeros = tf.zeros((inputs.shape[0], cell.units))  # (batch, hidden)
            outputs, _, _ = hoisted_recurrence(projected, zeros, zeros, tf.identity(cell.recurrent_kernel),
                                               training=training)  # (batch, steps, hidden)
        return outputs

    return stack


def gradient_function(stack, variables, inputs):
    @tf.function
    def gradients():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(stack(inputs)))
        return tape.gradient(loss, variables)

    return gradients


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden-dims", default="200,650", help="comma-separated hidden sizes")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--steps", type=int, default=35)
    parser.add_argument("--repetitions", type=int, default=15)
    args = parser.parse_args()

    rows = []
    for hidden in [int(value) for value in args.hidden_dims.split(",")]:
        keras.utils.set_random_seed(0)
        inputs = tf.constant(np.random.default_rng(0).normal(size=(args.batch, args.steps, hidden)), tf.float32)
        layers = [keras.layers.LSTM(hidden, return_sequences=True) for _ in range(args.layers)]
        keras_stack = keras.Sequential(layers)
        keras_stack.build(inputs.shape)
        variables = [v.value for layer in layers for v in (layer.cell.kernel, layer.cell.recurrent_kernel,
                                                           layer.cell.bias)]
        variants = {
            "keras loop": gradient_function(keras_stack, variables, inputs),
            "hoisted, TF's gradient": gradient_function(hoisted_stack(layers, training=False), variables, inputs),
            "hoisted, written-out gradient": gradient_function(hoisted_stack(layers, training=True), variables,
                                                               inputs),
        }
        reference = [g.numpy() for g in variants["keras loop"]()]
        for name, function in variants.items():
            difference = max(float(np.abs(g.numpy() - r).max()) for g, r in zip(function(), reference))
            if difference > 1e-3:
                raise SystemExit(f"{name}: gradients differ from Keras's by {difference}")
        milliseconds = {name: [] for name in variants}
        for _ in range(args.repetitions):
            for name, function in variants.items():
                milliseconds[name].append(time_call(lambda: [g.numpy() for g in function()]) * 1000)
        for name, times in milliseconds.items():
            rows.append({"hidden": hidden, "variant": name, "ms (median)": round(statistics.median(times), 1),
                         "spread": f"{min(times):.1f}-{max(times):.1f}"})
    print(f"CPU: {cpu_description()}; TF {tf.__version__}; {args.layers} layers, batch {args.batch}, "
          f"{args.steps} steps, forward + backward")
    print(markdown_table(rows, ["hidden", "variant", "ms (median)", "spread"]))


if __name__ == "__main__":
    main()
