"""The scorer interface: spans, end token, candidates, text preparation, Keras vs SavedModel parity."""

import json
import math

import keras
import numpy as np
import pytest

from textlstm.cli import main
from textlstm.export import export_model
from textlstm.models import LanguageModel, LSTMBackbone
from textlstm.preprocessors import LanguageModelPreprocessor
from textlstm.probes import KerasScorer, SavedModelScorer, load_scorer, prepare_ptb
from textlstm.tokenizers import train_sentencepiece


@pytest.fixture(scope="module")
def sentencepiece_lm(sst_lines):
    tokenizer = train_sentencepiece(sst_lines, vocabulary_size=400)
    keras.utils.set_random_seed(0)
    return LanguageModel(LSTMBackbone(tokenizer.vocabulary_size(), 16, 16, num_layers=1),
                         preprocessor=LanguageModelPreprocessor.for_mode(tokenizer, "stream"))


def test_offsets_tokenize_like_tokenize(word_tokenizer, sentencepiece_lm, sst_lines):
    texts = sst_lines[:200] + ["  two  spaces\tand a tab ", "", "naïve café"]
    for tokenizer in (word_tokenizer, sentencepiece_lm.tokenizer):
        ids, starts, ends = tokenizer.tokenize_with_offsets(texts)
        assert ids.to_list() == tokenizer.tokenize(texts).to_list()
        assert all(s <= e for row_s, row_e in zip(starts.to_list(), ends.to_list()) for s, e in zip(row_s, row_e))


def test_word_spans_index_the_text(tiny_lm):
    text = "the  company said\tit"
    scores = KerasScorer(tiny_lm, prepare="none").score([text])[0]
    assert [text[s:e] for s, e in scores.spans] == ["the", "company", "said", "it", ""]
    assert scores.spans[-1] == (len(text), len(text)) and scores.tokens[-1] == "</s>"


def test_sentencepiece_spans_are_character_offsets(sentencepiece_lm):
    text = "a naïve café film"  # non-ASCII: byte offsets differ from character offsets
    scores = KerasScorer(sentencepiece_lm).score([text])[0]
    assert "".join(text[s:e] for s, e in scores.spans).replace(" ", "") == text.replace(" ", "")
    for token, (start, end) in zip(scores.tokens[:-1], scores.spans[:-1]):
        assert token.replace("▁", "") == text[start:end].strip() or token == "<unk>"


def test_end_token_only_drops_the_last_score(tiny_lm):
    scorer = KerasScorer(tiny_lm)
    with_end, without = scorer.score(["the company said", "shares rose"]), scorer.score(
        ["the company said", "shares rose"], end_token=False)
    for a, b in zip(with_end, without):
        assert a.tokens[:-1] == b.tokens and a.log_probs[:-1] == b.log_probs
        assert math.isclose(a.surprisals[0], -a.log_probs[0] / math.log(2))


def test_batching_and_order_do_not_change_scores(tiny_lm):
    scorer = KerasScorer(tiny_lm)
    texts = ["the company said it would", "n't", "shares rose sharply in tokyo", "the"]
    one_batch = scorer.score(texts)
    small_batches = scorer.score(texts, batch_size=1)
    for a, b in zip(one_batch, small_batches):
        assert a.text == b.text
        np.testing.assert_allclose(a.log_probs, b.log_probs, atol=1e-5)
    assert scorer.tracing_count() == 1  # batches of every size and length ran the one graph


def test_candidate_log_probs_sum_the_pieces_after_the_prefix(sentencepiece_lm):
    scorer = KerasScorer(sentencepiece_lm)
    prefix, words = "the film", ["is", "unforgettably"]
    candidates = scorer.candidate_log_probs([prefix], [words])[0]
    for word, value in zip(words, candidates):
        full = scorer.score([f"{prefix} {word}"], end_token=False)[0]
        prefix_tokens = len(scorer.score([prefix], end_token=False)[0].tokens)
        assert len(full.tokens) > prefix_tokens
        assert value == pytest.approx(sum(full.log_probs[prefix_tokens:]), abs=1e-5)
    assert len(scorer.score_continuations([prefix], ["unforgettably"])[0][1]) > 1  # several pieces, summed


def test_prepare_ptb_spells_raw_text_as_the_penn_treebank():
    vocabulary = {"the", "dogs", "do", "n't", "bark", "'s", "N", "dog"}
    assert prepare_ptb("The dogs don't bark.", vocabulary) == "the dogs do n't bark"
    assert prepare_ptb("The dog's 3 bones, 12.5 kg!", vocabulary) == "the dog 's N bones N kg"
    assert prepare_ptb("Keep , this", vocabulary | {","}) == "keep , this"


def test_auto_preparation_follows_the_tokenizer(tiny_lm, sentencepiece_lm):
    assert KerasScorer(tiny_lm).protocol()["text_preparation"].startswith("PTB")
    assert KerasScorer(sentencepiece_lm).protocol()["text_preparation"].startswith("raw")
    with pytest.raises(ValueError, match="`prepare`.*'ptb-ish'"):
        KerasScorer(tiny_lm, prepare="ptb-ish")


def assert_same_scores(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x.text, x.tokens, x.token_ids, x.spans) == (y.text, y.tokens, y.token_ids, y.spans)
        assert np.max(np.abs(np.subtract(x.log_probs, y.log_probs))) <= 1e-5


TEXTS = ["The company said it would buy shares.", "Mr. Smith isn't the chairman", "naïve café", ""]


def test_run_directory_and_its_savedmodel_score_alike(trained_run, tmp_path, export_without_extras):
    """The two implementations of the scorer interface: a run dir, and its export through the CLI."""
    assert main(["export", str(trained_run), "--base-dir", str(tmp_path), "--name", "lm"]) == 0
    keras_scorer = load_scorer(run_dir=str(trained_run))
    saved_scorer = load_scorer(saved_model=str(tmp_path / "lm" / "1"))
    assert isinstance(saved_scorer, SavedModelScorer)
    assert_same_scores(keras_scorer.score(TEXTS), saved_scorer.score(TEXTS))
    np.testing.assert_allclose(keras_scorer.candidate_log_probs(["the company"], [["says", "say"]]),
                               saved_scorer.candidate_log_probs(["the company"], [["says", "say"]]), atol=1e-5)
    protocol = saved_scorer.protocol()
    assert protocol["implementation"] == "saved_model" and protocol["start_token"] == "</s>"
    assert protocol["test_perplexity"] == keras_scorer.protocol()["test_perplexity"] > 1
    with pytest.raises(ValueError, match="exactly one"):
        load_scorer(run_dir=str(trained_run), saved_model=str(tmp_path / "lm" / "1"))


def test_sentencepiece_export_scores_like_the_model(sentencepiece_lm, tmp_path, export_without_extras):
    export_dir = export_model(sentencepiece_lm, str(tmp_path), "lm", description={"model": "test"})
    keras_scores = KerasScorer(sentencepiece_lm).score(TEXTS)  # made after the export: a fresh op resource
    assert_same_scores(keras_scores, SavedModelScorer(export_dir).score(TEXTS))
    with open(tmp_path / "lm" / "1" / "assets.extra" / "textlstm_scorer.json") as f:
        assert json.load(f)["tokenizer"] == "sentencepiece"
