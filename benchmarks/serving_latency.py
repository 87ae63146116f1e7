"""In-process SavedModel latency and throughput, beside the same model called through Keras in the same run.

    python benchmarks/serving_latency.py --classifier-run runs/sst2_bilstm --lm-run runs/ptb_small

Exports each run (to a temporary base dir), reloads it with `tf.saved_model.load` and times its
`serving_default` signature: one sentence at a time (p50, p99 over `--repeats` calls, after warm-up
calls) and batches of 64 (sentences per second). Beside it, in the same process, the Keras model:
`classifier.predict([text])` and a `tf.function` of the classifier on the preprocessor's ids (the
graph Keras runs, without `predict`'s per-call set-up); for the language model, `KerasScorer.score`.
Prints one Markdown table with the CPU model.
"""

import argparse
import statistics
import tempfile
import time

import numpy as np
import tensorflow as tf

from textlstm.probes import KerasScorer
from textlstm.recipes import export_run
from textlstm.recipes.run_steps import load_run_model
from textlstm.training import cpu_description

SENTENCE = "a gorgeous , witty , seductive movie that never forgets its audience ."
BATCH = 64


def latency(call, repeats):
    """(p50, p99) in milliseconds of `call()`, after 5 warm-up calls."""
    for _ in range(5):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), float(np.percentile(times, 99))


def throughput(call, texts, repeats):
    """Texts per second of `call(texts)`, the median of `repeats` timed calls."""
    call(texts)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        call(texts)
        rates.append(len(texts) / (time.perf_counter() - start))
    return statistics.median(rates)


def row(name, single, batch_rate):
    return f"| {name} | {single[0]:.2f} | {single[1]:.2f} | {batch_rate:.0f} |"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classifier-run", default="runs/sst2_bilstm")
    parser.add_argument("--lm-run", default="runs/ptb_small")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    batch = [SENTENCE] * BATCH
    rows = []
    with tempfile.TemporaryDirectory() as base_dir:
        classifier = load_run_model(args.classifier_run, "textlstm train classifier")
        served = tf.saved_model.load(export_run(args.classifier_run, "classifier", base_dir))
        signature = served.signatures["serving_default"]
        rows.append(row("classifier: SavedModel `serving_default`",
                        latency(lambda: signature(texts=tf.constant([SENTENCE])), args.repeats),
                        throughput(lambda t: signature(texts=tf.constant(t)), batch, 20)))
        graph = tf.function(lambda texts: classifier(classifier.preprocessor(texts), training=False),
                            input_signature=[tf.TensorSpec([None], tf.string)])
        rows.append(row("classifier: Keras model in a tf.function (same graph, in process)",
                        latency(lambda: graph(tf.constant([SENTENCE])), args.repeats),
                        throughput(lambda t: graph(tf.constant(t)), batch, 20)))
        rows.append(row("classifier: Keras `predict([text])`",
                        latency(lambda: classifier.predict([SENTENCE]), max(20, args.repeats // 10)),
                        throughput(lambda t: classifier.predict(t, batch_size=BATCH), batch, 5)))
        lm = load_run_model(args.lm_run, "textlstm train lm")
        served = tf.saved_model.load(export_run(args.lm_run, "lm", base_dir))
        signature = served.signatures["score"]
        rows.append(row("language model: SavedModel `score`",
                        latency(lambda: signature(texts=tf.constant([SENTENCE])), args.repeats),
                        throughput(lambda t: signature(texts=tf.constant(t)), batch, 20)))
        scorer = KerasScorer(lm, prepare="none")
        rows.append(row("language model: `KerasScorer.score` (Keras, in process)",
                        latency(lambda: scorer.score([SENTENCE]), args.repeats),
                        throughput(lambda t: scorer.score(t, batch_size=BATCH), batch, 20)))
    print(f"CPU: {cpu_description()}; TensorFlow {tf.__version__}; sentence: {SENTENCE!r}")
    print("| model and call | one sentence p50 (ms) | p99 (ms) | batch of 64 (sentences/s) |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
