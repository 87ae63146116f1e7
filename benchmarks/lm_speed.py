"""Training-step speed of the LanguageModel: XLA on/off, full vs sampled softmax.

    python benchmarks/lm_speed.py [--steps 30] [--batch-size 20] [--hidden-dim 200]

Times `fit` on random PTB-sized batches (vocabulary 10003, windows of 35)
after a warm-up, for each variant in one process, and prints a Markdown
table of ms/step and tokens/s. Results go in BENCHMARKS.md.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from textlstm.models import LanguageModel, LSTMBackbone  # noqa: E402
from textlstm.reports import markdown_table  # noqa: E402

VARIANTS = [  # (name, sampled_softmax, jit_compile)
    ("full softmax, no XLA", 0, False),
    ("full softmax, XLA", 0, True),
    ("sampled softmax 1024, no XLA", 1024, False),
]


def time_variant(sampled_softmax, jit_compile, batch_size, steps, hidden_dim, vocabulary_size=10002,
                 sequence_length=35):
    keras.utils.set_random_seed(0)
    lm = LanguageModel(LSTMBackbone(vocabulary_size, embedding_dim=hidden_dim, hidden_dim=hidden_dim, num_layers=2,
                                    dropout=0.1))
    lm.compile(keras.optimizers.SGD(1.0, global_clipnorm=0.25), carry_state=True,
               sampled_softmax=sampled_softmax, jit_compile=jit_compile)
    ids = np.random.RandomState(0).randint(4, vocabulary_size, size=(steps, batch_size, sequence_length + 1))
    data = tf.data.Dataset.from_tensor_slices((ids[:, :, :-1], ids[:, :, 1:])).repeat()
    lm.fit(data, steps_per_epoch=5, epochs=1, verbose=0)  # trace and compile
    start = time.perf_counter()
    lm.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = (time.perf_counter() - start) / steps
    return {"ms/step": seconds * 1000, "tokens/s": batch_size * sequence_length / seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--hidden-dim", type=int, default=200, help="200 = ptb_small, 650 = ptb_medium")
    args = parser.parse_args()
    rows = []
    for name, sampled_softmax, jit_compile in VARIANTS:
        row = {"variant": name, **time_variant(sampled_softmax, jit_compile, args.batch_size, args.steps, args.hidden_dim)}
        rows.append(row)
        print(row, flush=True)
    print(markdown_table(rows, ["variant", "ms/step", "tokens/s"]))


if __name__ == "__main__":
    main()
