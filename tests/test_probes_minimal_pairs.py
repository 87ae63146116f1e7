"""Minimal pairs: reading, the two methods, unk policy, identical pairs, intervals, and a model that learns agreement."""

import json

import keras
import numpy as np
import pytest

from textlstm.data import stream_dataset
from textlstm.models import LanguageModel, LSTMBackbone
from textlstm.preprocessors import LanguageModelPreprocessor
from textlstm.probes import KerasScorer
from textlstm.probes.minimal_pairs import (
    MinimalPair,
    evaluate_minimal_pairs,
    read_blimp,
    read_minimal_pairs,
    write_minimal_pairs_report,
)
from textlstm.probes.templates import generate_pairs
from textlstm.reports import bootstrap_interval
from textlstm.tokenizers import WordTokenizer


def test_reader_names_file_line_and_field(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"sentence_good": "a b", "sentence_bad": "a c"}\n\n{"sentence_good": "x"}\n')
    with pytest.raises(ValueError, match=r"pairs.jsonl:3: field `sentence_bad` must be a string, received None"):
        read_minimal_pairs(str(path))
    path.write_text('{"sentence_good": "a b", "sentence_bad": "a c"}\n{"sentence_good": "a b",\n')
    with pytest.raises(ValueError, match=r"pairs.jsonl:2: not JSON"):
        read_minimal_pairs(str(path))
    path.write_text('{"sentence_good": "a b", "sentence_bad": "a c", "one_prefix_prefix": "a"}\n')
    with pytest.raises(ValueError, match=r"pairs.jsonl:1: one_prefix_prefix, one_prefix_word_good"):
        read_minimal_pairs(str(path))
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        read_minimal_pairs(str(tmp_path / "missing.jsonl"))


def test_blimp_reader_filters_by_term(shared_data):
    pairs = read_blimp(str(shared_data / "blimp"), linguistics_terms=["subject_verb_agreement"])
    assert len(pairs) == 6000 and {p.uid for p in pairs} >= {"regular_plural_subject_verb_agreement_1"}
    assert all(p.linguistics_term == "subject_verb_agreement" for p in pairs)
    with pytest.raises(ValueError, match="no_such_paradigm"):
        read_blimp(str(shared_data / "blimp"), paradigms=["no_such_paradigm"])


def test_full_method_counts_identical_and_unk_pairs(tiny_lm, tmp_path):
    scorer = KerasScorer(tiny_lm)
    pairs = [MinimalPair("the company says", "the company say", uid="a", field="f", linguistics_term="t"),
             MinimalPair("the company is", "the company is", uid="a", source="x:2"),
             MinimalPair("The company said.", "the company said", uid="a", source="x:3"),  # same once prepared
             MinimalPair("the zyzzyva sleeps", "the zyzzyvas sleep", uid="b")]  # <unk> in critical words
    result = evaluate_minimal_pairs(scorer, pairs, unk="score")
    statuses = [item["status"] for item in result["items"]]
    assert statuses == ["scored", "identical", "identical", "scored"]
    assert result["identical_pairs"] == ["x:2", "x:3"]
    assert result["overall"]["num_scored"] == 2 and result["overall"]["num_unk"] == 1
    assert result["overall"]["coverage"] == pytest.approx(0.5)
    good, bad = scorer.score(["the company says", "the company say"])
    assert result["items"][0]["score_good"] == pytest.approx(good.total_log_prob, abs=1e-6)
    assert result["items"][0]["correct"] == (good.total_log_prob > bad.total_log_prob)
    skipped = evaluate_minimal_pairs(scorer, pairs, unk="skip")
    assert skipped["overall"]["num_scored"] == 1 and skipped["items"][3]["status"] == "skipped_unk"
    protocol = skipped["protocol"]
    assert protocol["unk_policy"] == "skip" and protocol["start_token"] == "</s>" and protocol["method"] == "full"
    paths = write_minimal_pairs_report(result, str(tmp_path), stem="pairs")
    assert all((tmp_path / name).exists() for name in ("pairs.json", "pairs.md", "pairs.png", "pairs_items.jsonl"))
    assert "unk_policy" in (tmp_path / "pairs.md").read_text() and len(open(paths[3]).readlines()) == 4
    with pytest.raises(ValueError, match="`unk` must be one of .* received 'keep'"):
        evaluate_minimal_pairs(scorer, pairs, unk="keep")


def test_one_prefix_method_scores_the_critical_word_only(tiny_lm):
    scorer = KerasScorer(tiny_lm)
    pairs = [MinimalPair("the company says no", "the company say no", prefix="the company", word_good="says",
                         word_bad="say"),
             MinimalPair("the company says", "the company say")]  # no one_prefix fields: not covered
    result = evaluate_minimal_pairs(scorer, pairs, method="one_prefix")
    assert [item["status"] for item in result["items"]] == ["scored", "no_one_prefix_fields"]
    expected = scorer.candidate_log_probs(["the company"], [["says", "say"]])[0]
    assert [result["items"][0]["score_good"], result["items"][0]["score_bad"]] == pytest.approx(expected, abs=1e-6)


def test_bootstrap_interval_contains_the_estimate():
    rng = np.random.default_rng(1)
    for p, n in ((0.5, 40), (0.9, 1000), (1.0, 20), (0.0, 5)):
        outcomes = rng.random(n) < p
        low, high = bootstrap_interval(outcomes, seed=3)
        assert low <= outcomes.mean() <= high
        assert (high - low) < 0.5
    assert bootstrap_interval([]) is None


def test_a_tiny_lm_trained_on_agreement_beats_chance(tmp_path):
    """Trained on grammatical sentences (20 s), an LSTM prefers the agreeing verb on pairs it never saw."""
    pairs = generate_pairs(["simple_agreement", "sentential_complement", "short_vp_coordination"])
    rng = np.random.default_rng(0)
    held_out = rng.random(len(pairs)) < 0.2
    train_text = [p["sentence_good"] for p, out in zip(pairs, held_out) if not out]
    test_pairs = [MinimalPair(p["sentence_good"], p["sentence_bad"], uid=p["UID"])
                  for p, out in zip(pairs, held_out) if out]
    tokenizer = WordTokenizer.from_texts(train_text)
    keras.utils.set_random_seed(0)
    lm = LanguageModel(LSTMBackbone(tokenizer.vocabulary_size(), 32, 32, num_layers=1),
                       preprocessor=LanguageModelPreprocessor.for_mode(tokenizer, "stream"))
    lm.compile(keras.optimizers.Adam(0.01), carry_state=True)
    lm.fit(stream_dataset(lm.preprocessor, train_text, batch_size=16, sequence_length=20), epochs=4, verbose=0)
    result = evaluate_minimal_pairs(KerasScorer(lm), test_pairs)
    overall = result["overall"]
    assert overall["num_scored"] == len(test_pairs) > 300
    assert overall["accuracy"] > 0.75 and overall["interval"][0] > 0.5
    chance = evaluate_minimal_pairs(KerasScorer(LanguageModel(
        LSTMBackbone(tokenizer.vocabulary_size(), 32, 32, num_layers=1),
        preprocessor=LanguageModelPreprocessor.for_mode(tokenizer, "stream"))), test_pairs)
    assert chance["overall"]["accuracy"] < overall["accuracy"]
    json.dumps({k: v for k, v in result.items() if k != "items"})  # the report is JSON-serializable


def test_one_prefix_words_removed_or_equal_after_preparation_are_not_scored(tiny_lm):
    pairs = [MinimalPair("the company , no", "the company ; no", prefix="the company", word_good=",", word_bad=";"),
             MinimalPair("the company Says", "the company says", prefix="the company", word_good="Says",
                         word_bad="says")]
    result = evaluate_minimal_pairs(KerasScorer(tiny_lm), pairs, method="one_prefix")
    assert [item["status"] for item in result["items"]] == ["empty_after_preparation", "identical"]
    assert result["overall"]["num_scored"] == 0 and result["overall"]["accuracy"] is None
