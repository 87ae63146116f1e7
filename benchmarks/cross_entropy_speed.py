"""Full-softmax cross-entropy, forward and backward, on a language model's logits: TF's fused op against
textlstm's `softmax_cross_entropy`, in one run.

    python benchmarks/cross_entropy_speed.py [--tokens 700] [--vocabulary 10002] [--repetitions 7] [--calls 10]

Times the gradient of the summed loss with respect to logits `(tokens,
vocabulary)` (PTB small and medium: batch 20 x 35 steps = 700 tokens,
10,002 words), each variant one `tf.function`, interleaved so drift hits all
alike: `tf.nn.sparse_softmax_cross_entropy_with_logits` (what Keras's
`sparse_categorical_crossentropy` runs) and
`textlstm.models.language_model.softmax_cross_entropy`, each without and with
XLA. Prints each variant's median and spread in ms with the CPU model, and
checks that all give the same gradient.
"""

import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from torch_reference import time_call  # noqa: E402  (imports torch only where its runners run)

from textlstm.models.language_model import softmax_cross_entropy  # noqa: E402
from textlstm.reports import markdown_table  # noqa: E402
from textlstm.training import cpu_description  # noqa: E402


def gradient_function(loss, logits, targets, jit_compile=False):
    """A traced function returning d(sum of `loss(logits, targets)`)/d logits."""

    @tf.function(jit_compile=jit_compile)
    def gradient():
        with tf.GradientTape() as tape:
            tape.watch(logits)
            total = tf.reduce_sum(loss(logits, targets))
        return tape.gradient(total, logits)

    return gradient


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=700, help="rows of logits (batch x time steps)")
    parser.add_argument("--vocabulary", type=int, default=10002)
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument("--calls", type=int, default=10, help="calls timed per repetition")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(size=(args.tokens, args.vocabulary)), tf.float32)  # (tokens, vocabulary)
    targets = tf.constant(rng.integers(0, args.vocabulary, size=args.tokens), tf.int32)  # (tokens,)
    fused = lambda x, y: tf.nn.sparse_softmax_cross_entropy_with_logits(y, x)  # noqa: E731
    variants = {
        "TF fused op": gradient_function(fused, logits, targets),
        "TF fused op, XLA": gradient_function(fused, logits, targets, jit_compile=True),
        "textlstm softmax_cross_entropy": gradient_function(softmax_cross_entropy, logits, targets),
        "textlstm softmax_cross_entropy, XLA": gradient_function(softmax_cross_entropy, logits, targets,
                                                                 jit_compile=True),
    }
    reference = variants["TF fused op"]().numpy()
    for name, function in variants.items():
        difference = float(np.abs(function().numpy() - reference).max())  # traces, then checks
        if difference > 1e-5:
            raise SystemExit(f"{name}: gradient differs from the fused op's by {difference}")
    milliseconds = {name: [] for name in variants}
    for _ in range(args.repetitions):
        for name, function in variants.items():
            seconds = time_call(lambda: [function().numpy() for _ in range(args.calls)])
            milliseconds[name].append(seconds / args.calls * 1000)
    print(f"CPU: {cpu_description()}; TF {tf.__version__}; logits ({args.tokens}, {args.vocabulary})")
    print(markdown_table([{"variant": name, "ms (median)": statistics.median(times),
                           "spread": f"{min(times):.1f}-{max(times):.1f}"}
                          for name, times in milliseconds.items()], ["variant", "ms (median)", "spread"]))


if __name__ == "__main__":
    main()
