"""Diagnostic classifiers on a tiny trained LM: positions, decoding above chance, controls at chance."""

import dataclasses
import random

import numpy as np
import pytest

from conftest import template_number_items
from textlstm.probes.diagnostic import (
    collect_states,
    control_labels,
    diagnostic_classifiers,
    last_token_of,
    prepare_words,
)


@pytest.fixture(scope="module")
def samples(template_lm):
    lm, pairs = template_lm
    items = template_number_items(pairs)
    random.Random(0).shuffle(items)
    half = len(items) // 2
    return collect_states(lm, items[:half]), collect_states(lm, items[half:])


def test_prepare_words_keeps_byte_spans():
    prefix = prepare_words(["The", "café", ",", "owners"], lambda w: "" if w == "," else w.lower())
    assert prefix.text == "the café owners"
    assert prefix.spans == [(0, 3), (4, 9), None, (10, 16)]  # "é" is two bytes
    assert last_token_of([0, 4, 10], [3, 9, 16], prefix.spans[1]) == 1
    assert last_token_of([0, 4, 7], [3, 7, 9], (4, 9)) == 2  # a word in two pieces: its last one


def test_states_are_read_at_the_right_tokens(template_lm, samples):
    lm, _ = template_lm
    train, _ = samples
    assert train.words["subject"][:1] and all(w.startswith(("author", "pilot", "doctor", "farmer", "manager",
                                                            "customer", "officer", "teacher", "senator", "consultant"))
                                              for w in train.words["subject"])
    # "the author next to the guards": the intervening noun is the prefix's last word, so its state is the
    # state before the verb.
    rows = np.flatnonzero(np.isin(train.item_rows["before_verb"], train.item_rows["intervening_noun"]))
    np.testing.assert_array_equal(train.features["intervening_noun"][(0, "c")],
                                  train.features["before_verb"][(0, "c")][rows])
    plural = train.labels["subject"] == 1
    assert all(word.endswith("s") for word in np.asarray(train.words["subject"])[plural])
    assert len(train.mean_h) == 1 and train.mean_h[0].shape == (32,)


def test_decodes_number_above_chance_and_a_random_label_control_at_chance(samples):
    train, test = samples
    rows = {(r["position"], r["layer"], r["state"]): r for r in diagnostic_classifiers(train, test)}
    noun = rows[("intervening_noun", 0, "c")]
    attractor = test.attractor["intervening_noun"]
    assert noun["test_attractors"] == attractor.sum() > 50 and (~attractor).sum() > 50
    assert noun["attractor_accuracy"] is not None and noun["agreeing_noun_accuracy"] is not None
    share = attractor.mean()  # the overall accuracy is the two parts weighted by their counts
    assert noun["accuracy"] == pytest.approx(share * noun["attractor_accuracy"]
                                             + (1 - share) * noun["agreeing_noun_accuracy"])
    subject = rows[("subject", 0, "h")]
    assert subject["test_items"] == len(test.labels["subject"]) and 0.4 < subject["majority"] < 0.6
    assert subject["accuracy"] > 0.95 and subject["interval"][0] > 0.9
    assert subject["selectivity"] == pytest.approx(subject["accuracy"] - subject["control_accuracy"])
    # Labels drawn at random per item carry nothing a probe could learn: held-out accuracy is at chance.
    rng = np.random.default_rng(0)
    shuffled = [dataclasses.replace(sample, labels={name: rng.integers(0, 2, len(labels))
                                                    for name, labels in sample.labels.items()})
                for sample in (train, test)]
    control = {(r["position"], r["layer"], r["state"]): r for r in diagnostic_classifiers(*shuffled)}
    assert abs(control[("subject", 0, "h")]["accuracy"] - 0.5) < 0.08
    assert abs(control[("before_verb", 0, "c")]["accuracy"] - 0.5) < 0.08


def test_control_task_gives_one_label_per_word_type():
    words = ["cat", "cats", "dog", "cat", "dogs", "cat"] * 50
    labels = control_labels(words, plural_rate=0.3, seed=0, position="subject")
    by_type = {}
    for word, label in zip(words, labels):
        by_type.setdefault(word, set()).add(int(label))
    assert all(len(values) == 1 for values in by_type.values())
    many = control_labels([f"w{i}" for i in range(4000)], plural_rate=0.3, seed=0, position="subject")
    assert abs(many.mean() - 0.3) < 0.03  # drawn with the training labels' plural rate
    assert not np.array_equal(many, control_labels([f"w{i}" for i in range(4000)], 0.3, seed=1, position="subject"))


def test_a_gru_has_no_cell_state_to_read(template_lm):
    from textlstm.models import LanguageModel, LSTMBackbone
    from textlstm.probes.number_units import rank_units

    lm, pairs = template_lm
    gru = LanguageModel(LSTMBackbone(lm.backbone.vocabulary_size, 8, 8, num_layers=2, cell_type="gru"),
                        preprocessor=lm.preprocessor)
    items = template_number_items(pairs[:300])
    train, test = collect_states(gru, items[::2]), collect_states(gru, items[1::2])
    assert sorted(train.features["before_verb"]) == [(0, "h"), (1, "h")]
    ranking = rank_units(train, test)
    assert len(ranking) == 16 and {row["state"] for row in ranking} == {"h"}
    with pytest.raises(ValueError, match=r"`state` must be one of \['h'\] for this model, received 'c'"):
        rank_units(train, test, state="c")
