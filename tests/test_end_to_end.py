"""Train on a slice of PTB from the command line and check the model learned something real."""

import json
import math
import os
from collections import Counter

import numpy as np

from textlstm.data import read_lines
from textlstm.preprocessors import LanguageModelPreprocessor
from textlstm.probes import KerasScorer
from textlstm.recipes.language_model import load_language_model
from textlstm.tokenizers import load_tokenizer


def unigram_perplexity(train_ids, eval_ids, vocabulary_size):
    """Add-one unigram model of the training slice, evaluated on the validation slice."""
    counts = Counter(np.concatenate(train_ids).tolist())
    total = sum(counts.values()) + vocabulary_size
    eval_stream = np.concatenate(eval_ids).tolist()
    return math.exp(-sum(math.log((counts[i] + 1) / total) for i in eval_stream) / len(eval_stream))


def test_trained_lm_beats_the_unigram_model_of_its_slice(trained_run, ptb_dir):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    tokenizer = load_tokenizer(str(trained_run / "tokenizer"))
    preprocessor = LanguageModelPreprocessor.for_mode(tokenizer, "stream")
    train_ids = preprocessor.encode_lines(read_lines(str(ptb_dir / "ptb.train.txt"), max_lines=3000),
                                          add_start_token=False)
    valid_ids = preprocessor.encode_lines(read_lines(str(ptb_dir / "ptb.valid.txt"), max_lines=400),
                                          add_start_token=False)
    unigram = unigram_perplexity(train_ids, valid_ids, tokenizer.vocabulary_size())
    assert metrics["valid_perplexity"] < 0.8 * unigram, (metrics["valid_perplexity"], unigram)
    assert metrics["test_perplexity"] < unigram
    # Nearly every validation token is scored: the stream opens with one </s> (the start token), trimming
    # to a multiple of eval_batch_size (20) loses < 20, and the first token of each of the 20 rows is no target.
    assert 19 <= sum(len(ids) for ids in valid_ids) - metrics["valid_tokens"] < 40


def test_run_directory_is_complete_and_reloadable(trained_run):
    for name in ("config.json", "model.keras", "metrics.json", "history.csv", "curves.png", "samples.txt",
                 "tokenizer/config.json", "tokenizer/vocabulary.txt", "checkpoints/best.weights.h5"):
        assert (trained_run / name).exists(), name
    assert any(name.startswith("events") for _, _, files in os.walk(trained_run / "logs") for name in files)
    config = json.loads((trained_run / "config.json").read_text())
    assert config["hidden_dim"] == 64 and config["max_train_lines"] == 3000
    lm = load_language_model(str(trained_run))
    assert lm.backbone.hidden_dim == 64 and lm.tokenizer.vocabulary_size() == lm.backbone.vocabulary_size
    assert len((trained_run / "samples.txt").read_text().splitlines()) == 2
    # The XLA choice is recorded once in progress.json (a resumed run keeps it) and reported in metrics.json.
    metrics = json.loads((trained_run / "metrics.json").read_text())
    choice = json.loads((trained_run / "progress.json").read_text())["jit_compile"]
    assert metrics["jit_compile"] == choice and choice["setting"] == "false" and choice["chosen"] is False
    assert metrics["cudnn"]["eligible"] and metrics["cudnn"]["kernel"] in ("hoisted", "cudnn")


def test_sentence_by_sentence_scores_agree_with_the_stream_perplexity(trained_run, ptb_dir):
    """score() opens each sentence with the start token the stream trained on, so scoring the test
    sentences one by one costs only the lost cross-sentence context (BENCHMARKS.md: +4.8% on PTB small)."""
    metrics = json.loads((trained_run / "metrics.json").read_text())
    lm = load_language_model(str(trained_run))
    scores = KerasScorer(lm, prepare="none").score(read_lines(str(ptb_dir / "ptb.test.txt"), max_lines=400))
    log_probs = [lp for s in scores for lp in s.log_probs]
    per_sentence = math.exp(-sum(log_probs) / len(log_probs))
    assert abs(per_sentence / metrics["test_perplexity"] - 1) < 0.10, (per_sentence, metrics["test_perplexity"])
