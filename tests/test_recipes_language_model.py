"""The language-model recipe's pieces: where a run reads its corpus, per-word perplexity.

The run-directory behaviour every recipe shares is tested in test_runs.py.
"""

import math

import pytest

from textlstm.config import LanguageModelConfig, config_from_dict
from textlstm.preprocessors import LanguageModelPreprocessor
from textlstm.recipes.language_model import read_corpus, word_perplexity
from textlstm.tokenizers import train_tokenizer


def test_corpus_from_tfds_equals_the_text_files(ptb_tfds_dir, ptb_dir):
    sizes = {"max_train_lines": 50, "max_eval_lines": 20}
    files = config_from_dict(LanguageModelConfig, {
        "train_file": str(ptb_dir / "ptb.train.txt"), "valid_file": str(ptb_dir / "ptb.valid.txt"),
        "test_file": str(ptb_dir / "ptb.test.txt"), **sizes})
    tfds = config_from_dict(LanguageModelConfig, {"tfds_name": "textlstm_ptb", "tfds_data_dir": str(ptb_tfds_dir),
                                                  **sizes})
    from_files, from_tfds = read_corpus(files), read_corpus(tfds)
    assert [len(lines) for lines in from_tfds] == [50, 20, 20]
    assert from_tfds == from_files


def test_word_perplexity_rescales_subword_loss_by_tokens_per_word(ptb_lines, word_tokenizer):
    lines = ptb_lines[:200]
    stream = LanguageModelPreprocessor.for_mode(word_tokenizer, "stream")
    assert word_perplexity(1.5, stream, lines) == pytest.approx(math.exp(1.5))  # one token a word
    bpe = train_tokenizer("bpe", ptb_lines, vocabulary_size=500)
    tokens = sum(len(ids) for ids in bpe.tokenize(lines).to_list()) + len(lines)  # + each line's </s>
    words = sum(len(line.split()) for line in lines) + len(lines)
    assert tokens > 1.2 * words  # a 500-piece BPE splits many PTB words
    assert word_perplexity(1.5, LanguageModelPreprocessor.for_mode(bpe, "stream"), lines) == pytest.approx(math.exp(1.5 * tokens / words))


def test_reverse_lines_reads_each_line_backwards(ptb_dir):
    paths = {"train_file": str(ptb_dir / "ptb.train.txt"), "valid_file": str(ptb_dir / "ptb.valid.txt"),
             "test_file": str(ptb_dir / "ptb.test.txt"), "max_train_lines": 5, "max_eval_lines": 5}
    forward = read_corpus(config_from_dict(LanguageModelConfig, paths))
    backward = read_corpus(config_from_dict(LanguageModelConfig, {**paths, "reverse_lines": True}))
    for forward_lines, backward_lines in zip(forward, backward):
        assert [line.split()[::-1] for line in forward_lines] == [line.split() for line in backward_lines]


def test_a_run_streams_its_training_file_when_asked(tmp_path, ptb_dir, ptb_lines):
    """stream_from_file=true: the training text is read as training goes; the run learns and counts its tokens."""
    from textlstm.recipes.language_model import train_language_model

    train = tmp_path / "train.txt"
    train.write_text("\n".join(ptb_lines[:1000]) + "\n", encoding="utf-8")
    config = config_from_dict(LanguageModelConfig, {
        "train_file": str(train), "valid_file": str(ptb_dir / "ptb.valid.txt"),
        "test_file": str(ptb_dir / "ptb.test.txt"), "stream_from_file": True, "max_train_lines": 1000,
        "max_eval_lines": 100, "embedding_dim": 32, "hidden_dim": 32, "num_layers": 1, "batch_size": 8,
        "sequence_length": 20, "sampled_softmax": 100, "epochs": 2, "time_budget_minutes": 0, "num_samples": 0,
        "run_dir": str(tmp_path / "run"), "verbose": 0, "lr_decay_start_epoch": 3})
    metrics = train_language_model(config)
    tokens = sum(len(line.split()) + 1 for line in ptb_lines[:1000])
    assert 0.9 * tokens < metrics["train_tokens_per_epoch"] <= tokens + 1
    assert metrics["valid_perplexity"] < 1500  # a word model of PTB's first 1000 lines after 2 epochs
    with pytest.raises(ValueError, match="`stream_from_file=true` needs mode=stream, no tfds_name, "
                                         "reverse_lines=false and max_train_lines > 0"):
        config_from_dict(LanguageModelConfig, {"stream_from_file": True})
    with pytest.raises(ValueError, match="reverse_lines=True"):  # a backward LM would silently train forwards
        config_from_dict(LanguageModelConfig, {"stream_from_file": True, "max_train_lines": 10,
                                               "reverse_lines": True})
