"""Scoring sentences/s and generation tokens/s of a language model run, in one process.

    python benchmarks/scoring_speed.py --lm-run runs/ptb_small [--sentences 4000] [--batch-size 256] [--repeats 3]

Scoring: `KerasScorer.score` on PTB validation lines (sorted into batches of
`--batch-size` by length), against, in the same run and interleaved, the way
textlstm scored before 2026-11-22: the masked backbone over the padded batch
and Keras's sparse cross-entropy over every position (`padded_full_softmax`
below). Both are traced once before timing; medians over `--repeats`.
Generation: tokens/s of `generate` (greedy and top-p) for 32 empty prompts.
Prints a Markdown table with the CPU model.
"""

import argparse
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from textlstm.data import read_lines
from textlstm.probes import KerasScorer
from textlstm.reports import markdown_table
from textlstm.tokenizers import PAD_ID
from textlstm.training import cpu_description


def padded_full_softmax(lm):
    """The former `score_strings`: mask, and the log-softmax of every padded position."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def score(texts):
        token_ids = lm.preprocessor.tokenize_with_offsets(texts)[0].to_tensor(PAD_ID)  # (batch, time)
        inputs, targets = token_ids[:, :-1], token_ids[:, 1:]
        logits = lm(inputs, training=False)  # (batch, time - 1, vocabulary)
        log_probs = -keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)
        return log_probs * tf.cast(tf.not_equal(targets, PAD_ID), log_probs.dtype)

    return score


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lm-run", required=True)
    parser.add_argument("--sentences", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", default="../shared/data/ptb/ptb.valid.txt")
    args = parser.parse_args()

    scorer = KerasScorer.from_run_dir(args.lm_run, prepare="none")
    lm = scorer.language_model
    texts = sorted(read_lines(args.data)[: args.sentences], key=len)
    batches = [texts[i : i + args.batch_size] for i in range(0, len(texts), args.batch_size)]
    before = padded_full_softmax(lm)
    new_scores = scorer.score(batches[-1], batch_size=args.batch_size)  # traces; the longest batch
    old_scores = before(tf.constant(batches[-1])).numpy()
    worst = max(float(np.max(np.abs(np.array(s.log_probs) - old_scores[row, : len(s.log_probs)])))
                for row, s in enumerate(new_scores))
    paths = {
        "KerasScorer.score (unmasked, softmax at tokens only)": lambda: [
            scorer.score(b, prepare=False, batch_size=args.batch_size) for b in batches],
        "before: masked, softmax at every padded position": lambda: [before(tf.constant(b)) for b in batches],
    }
    seconds = {name: [] for name in paths}
    for _ in range(args.repeats):
        for name, run in paths.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    rows = [{"path": name, "sentences/s (median)": f"{len(texts) / statistics.median(s):,.0f}",
             "spread": f"{len(texts) / max(s):,.0f}-{len(texts) / min(s):,.0f}"} for name, s in seconds.items()]
    for sampler in ("greedy", "top_p"):
        lm.generate([""] * 32, max_length=5, sampler=sampler, seed=1)  # warm-up
        start = time.perf_counter()
        outputs = lm.generate([""] * 32, max_length=40, sampler=sampler, seed=1)
        elapsed = time.perf_counter() - start
        tokens = sum(len(lm.preprocessor.tokenizer.tokenize(text)) for text in outputs)
        rows.append({"path": f"generate, {sampler}, 32 prompts x <= 40 tokens",
                     "sentences/s (median)": f"{tokens / elapsed:,.0f} tokens/s (one run)", "spread": ""})
    print(f"{time.strftime('%Y-%m-%d')}, {cpu_description()}, {len(texts)} sentences of {args.data}, batches of "
          f"{args.batch_size}, {args.repeats} repeats; max |log-prob difference| between the paths: {worst:.2e}")
    print(markdown_table(rows, ["path", "sentences/s (median)", "spread"]))


if __name__ == "__main__":
    main()
