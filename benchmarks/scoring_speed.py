"""Scoring sentences/s and generation tokens/s of a language model run, in one process.

    python benchmarks/scoring_speed.py --lm-run runs/ptb_small [--sentences 4000] [--batch-size 256] [--repeats 3]

Scoring: `KerasScorer.score` on PTB validation lines (sorted into batches of
`--batch-size` by length), against, in the same run and interleaved, the way
textlstm scored before 2026-11-22: the masked backbone over the padded batch
and Keras's sparse cross-entropy over every position (`padded_full_softmax`
below). Both are traced once before timing; medians over `--repeats`.
Generation: tokens/s of `generate` (greedy, top-p, beam) for 32 empty prompts,
the compiled sampling loop against the same loop run op by op
(`tf.config.run_functions_eagerly`; with a SentencePiece LM it would also
run the tokenizer's functions eagerly), interleaved; the first call's time
includes tracing. Before 2026-11-22 `generate` ran eagerly with a masked
backbone, slower than this eager row.
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
    parser.add_argument("--generation-prompts", type=int, default=32)
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
    for sampler in ("greedy", "top_p", "beam"):
        prompts = [""] * args.generation_prompts

        def generate(length=40):
            return lm.generate(prompts, max_length=length, sampler=sampler, seed=1)

        start = time.perf_counter()
        generate(5)  # traces the compiled loop
        tracing = time.perf_counter() - start
        rates = {"compiled": [], "eager": []}
        for _ in range(args.repeats):
            for name in rates:
                tf.config.run_functions_eagerly(name == "eager")
                start = time.perf_counter()
                outputs = generate()
                elapsed = time.perf_counter() - start
                # Each text's tokens, plus its </s> unless it was cut at the 40th token.
                tokens = sum(min(len(lm.preprocessor.tokenizer.tokenize(text)) + 1, 40) for text in outputs)
                rates[name].append(tokens / elapsed)
        tf.config.run_functions_eagerly(False)
        for name, rate in rates.items():
            rows.append({"path": f"generate, {sampler}, {len(prompts)} prompts x <= 40 tokens, {name}"
                                 + (f" (first call {tracing:.1f} s)" if name == "compiled" else ""),
                         "sentences/s (median)": f"{statistics.median(rate):,.0f} tokens/s",
                         "spread": f"{min(rate):,.0f}-{max(rate):,.0f}"})
    print(f"{time.strftime('%Y-%m-%d')}, {cpu_description()}, {len(texts)} sentences of {args.data}, batches of "
          f"{args.batch_size}, {args.repeats} repeats; max |log-prob difference| between the paths: {worst:.2e}")
    print(markdown_table(rows, ["path", "sentences/s (median)", "spread"]))


if __name__ == "__main__":
    main()
