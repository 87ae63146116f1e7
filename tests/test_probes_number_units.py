"""Number units: verb scoring with interventions, ranking, ablation against random units, patching."""

import random

import numpy as np
import pytest

from conftest import template_number_items
from textlstm.probes import KerasScorer
from textlstm.probes.diagnostic import collect_states
from textlstm.probes.gates import Intervention
from textlstm.probes.number_units import (
    _experiment_groups,
    ablation_experiment,
    agreement_correct,
    check_experiment,
    item_groups,
    number_item_choices,
    patch_spans,
    patched_log_probs,
    patching_experiment,
    rank_units,
    source_states,
    template_choices,
    verb_log_probs,
)
from textlstm.probes.templates import generate_pairs, number_swapped_prefixes


@pytest.fixture(scope="module")
def ranked(template_lm):
    lm, pairs = template_lm
    items = template_number_items(pairs)
    random.Random(0).shuffle(items)
    train, test = collect_states(lm, items[:1000]), collect_states(lm, items[1000:2000])
    return train, rank_units(train, test)


def test_verb_log_probs_equal_the_scorer(template_lm):
    lm, pairs = template_lm
    prefixes = [p["one_prefix_prefix"] for p in pairs[:40]]
    verbs = [(p["one_prefix_word_good"], p["one_prefix_word_bad"]) for p in pairs[:40]]
    expected = KerasScorer(lm, prepare="none").candidate_log_probs(prefixes, [list(v) for v in verbs])
    np.testing.assert_allclose(verb_log_probs(lm, prefixes, verbs, batch_size=16), expected, atol=1e-4)


def test_ablating_no_units_changes_nothing(template_lm):
    lm, pairs = template_lm
    choices = template_choices(pairs[:200])
    plain = verb_log_probs(lm, choices.prefixes, list(zip(choices.correct, choices.wrong)))
    same = verb_log_probs(lm, choices.prefixes, list(zip(choices.correct, choices.wrong)),
                          lambda *_: [Intervention(0, [], h=0.0)])
    np.testing.assert_array_equal(same, plain)
    baseline = agreement_correct(lm, choices).mean()
    ablated = agreement_correct(lm, choices, lambda *_: [Intervention(0, list(range(32)), h=0.0)])
    assert baseline > 0.8 and ablated.mean() < 0.7  # ablating every unit does hurt


def test_patch_spans_count_from_the_noun_to_the_end(template_lm):
    lm, _ = template_lm
    swapped = number_swapped_prefixes(["across_prepositional_phrase", "simple_agreement"], 300, seed=1)
    singular, plural, counts, kept = patch_spans(lm, swapped)
    assert kept == list(range(len(swapped))) and singular[0] == swapped[0]["singular_prefix"]
    for pair, count in zip(swapped, counts):
        # "the author in front of the guard": "author" and the 5 words after it
        assert count == len(pair["singular_prefix"].split(" ")) - pair["word_index"]
    assert {count for pair, count in zip(swapped, counts) if pair["condition"] == "simple_agreement"} == {1}
    assert len({*counts}) >= 4  # behind / near, next to / across from, in front of, to the side of


def test_patching(template_lm):
    lm, _ = template_lm
    swapped = number_swapped_prefixes(["across_prepositional_phrase"], 300, seed=1)
    singular, plural, counts, _ = patch_spans(lm, swapped)
    verbs = [(pair["singular_verb"], pair["plural_verb"]) for pair in swapped]
    unpatched = verb_log_probs(lm, singular, verbs)
    every_unit = [(0, unit) for unit in range(32)]
    itself = patched_log_probs(lm, singular, verbs, source_states(lm, singular), counts, every_unit)
    np.testing.assert_allclose(itself, unpatched, atol=1e-5)  # a run patched with its own values
    from_plural = patched_log_probs(lm, singular, verbs, source_states(lm, plural), counts, every_unit)
    np.testing.assert_allclose(from_plural, verb_log_probs(lm, plural, verbs), atol=1e-5)  # the whole state moved
    # One unit patched from the noun on equals an explicit intervention at those positions.
    sources = source_states(lm, plural)

    def explicit(owners, token_ids, prefix_lengths):
        positions = np.zeros(token_ids.shape, bool)
        h = np.zeros(token_ids.shape + (1,), "float32")
        c = np.zeros_like(h)
        for row, (owner, length) in enumerate(zip(owners, prefix_lengths)):
            noun = length - counts[owner]  # the noun's token; everything before it is left alone
            positions[row, noun:length] = True
            h[row, noun:length, 0] = sources[owner][0]["h"][-counts[owner]:, 7]
            c[row, noun:length, 0] = sources[owner][0]["c"][-counts[owner]:, 7]
        return [Intervention(0, [7], h=h, c=c, positions=positions)]

    np.testing.assert_allclose(patched_log_probs(lm, singular, verbs, sources, counts, [(0, 7)]),
                               verb_log_probs(lm, singular, verbs, explicit), atol=1e-6)
    with pytest.raises(ValueError, match=r"one entry per prefix; received 300, 300, 299 and 300"):
        patched_log_probs(lm, singular, verbs, sources[:-1], counts, [(0, 7)])


def test_ranking_and_experiments(template_lm, ranked):
    lm, pairs = template_lm
    train, ranking = ranked
    assert len(ranking) == 32 and ranking[0]["state"] == "c"
    strengths = [abs(row["train_auc"] - 0.5) for row in ranking]
    assert strengths == sorted(strengths, reverse=True) and strengths[0] > 0.2
    choices = number_item_choices(template_number_items(pairs[:150]), group="number prediction") + template_choices(
        generate_pairs(["simple_agreement", "across_prepositional_phrase"], 30))
    ablation = ablation_experiment(lm, choices, ranking, train.mean_h, top_units=2, group_sizes=(4,),
                                   random_draws=3, bootstrap_samples=200)
    assert set(ablation["baseline"]) == {"all", "number prediction", "templates", "templates/simple_agreement",
                                         "templates/across_prepositional_phrase"}
    top = [row for row in ablation["top"] if row["group"] == "all"]
    assert [(row["mode"], row["size"]) for row in top] == [("zero", 1), ("zero", 1), ("zero", 4),
                                                            ("mean", 1), ("mean", 1), ("mean", 4)]
    assert top[0]["units"] == [[ranking[0]["layer"], ranking[0]["unit"]]]
    for row in top:
        assert row["interval"][0] <= row["delta"] <= row["interval"][1]
    random_rows = [row for row in ablation["random"] if row["group"] == "all"]
    assert all(row["draws"] == 3 and 0 < row["p_value"] <= 1 for row in random_rows)

    swapped = number_swapped_prefixes(["across_prepositional_phrase"], 200)
    patching = patching_experiment(lm, swapped, ranking, top_units=1, group_sizes=(4,), random_draws=2)
    assert patching["pairs"] == len(swapped) and patching["pairs_skipped"] == 0
    assert 0 <= patching["top"][0]["flip_rate"] <= 1 and len(patching["random"]) == 2
    # Patching every unit turns each singular run into its plural run: a pair whose singular run prefers the
    # singular verb flips exactly when the plural run prefers the plural verb.
    verbs = [(pair["singular_verb"], pair["plural_verb"]) for pair in swapped]
    singular = verb_log_probs(lm, [pair["singular_prefix"] for pair in swapped], verbs)
    plural = verb_log_probs(lm, [pair["plural_prefix"] for pair in swapped], verbs)
    eligible = singular[:, 1] < singular[:, 0]
    assert patching["eligible"] == eligible.sum() > 20
    assert patching["all_units"] == pytest.approx((eligible & (plural[:, 1] > plural[:, 0])).sum() / eligible.sum())
    assert patching["plural_run_prefers_plural"] == pytest.approx((plural[:, 1] > plural[:, 0]).mean())


def test_item_groups():
    groups = item_groups(["number prediction", "templates/a", "templates/b", "templates/a"])
    assert {name: rows.tolist() for name, rows in groups.items()} == {
        "all": [0, 1, 2, 3], "number prediction": [0], "templates": [1, 2, 3], "templates/a": [1, 3],
        "templates/b": [2]}


def test_random_groups_match_layers_and_skip_top_units():
    ranking = [{"layer": layer, "unit": unit} for unit, layer in
               [(5, 1), (2, 0), (9, 1), (4, 0), (0, 0), (1, 1), (3, 0), (6, 1), (7, 0), (8, 1)]]
    groups = _experiment_groups(ranking, top_units=2, group_sizes=(3,), random_draws=50, seed=0)
    top = [(row["layer"], row["unit"]) for row in ranking]
    assert [units for kind, _, units in groups if kind == "top"] == [[top[0]], [top[1]], top[:3]]
    for kind, size, units in groups:
        if kind == "random":
            assert len(units) == size and not set(units) & set(top[:3])  # never a top-3 unit
            wanted = sorted(layer for layer, _ in top[:size])
            assert sorted(layer for layer, _ in units) == wanted  # the same layers as the top group
    drawn = {unit for kind, _, units in groups if kind == "random" for unit in units}
    assert drawn == set(top[3:])  # 50 draws reach every other unit
    with pytest.raises(ValueError, match=r"`random_draws` must be at least 1, received 0"):
        check_experiment(2, (3,), 0, ranking)
    with pytest.raises(ValueError, match=r"`top_units` must be in \[1, 10\].*received 11"):
        check_experiment(11, (3,), 5, ranking)
    with pytest.raises(ValueError, match=r"`group_sizes` must be positive and leave enough units.*\[6\]"):
        check_experiment(2, (6,), 5, ranking)  # 6 top units leave 4 to draw 6 matched ones from


def test_verb_log_probs_of_a_sentencepiece_model_equal_the_scorer(sst_lines):
    import keras

    from textlstm.models import LanguageModel, LSTMBackbone
    from textlstm.preprocessors import LanguageModelPreprocessor
    from textlstm.tokenizers import train_sentencepiece

    tokenizer = train_sentencepiece(sst_lines, vocabulary_size=400)
    keras.utils.set_random_seed(0)
    lm = LanguageModel(LSTMBackbone(tokenizer.vocabulary_size(), 16, 16, num_layers=2),
                       preprocessor=LanguageModelPreprocessor.for_mode(tokenizer, "stream"))
    prefixes = ["the film , which critics", "a movie", "its café scenes"]
    verbs = [("loves", "love"), ("is", "are"), ("work", "works")]
    expected = KerasScorer(lm, prepare="none").candidate_log_probs(prefixes, [list(v) for v in verbs])
    np.testing.assert_allclose(verb_log_probs(lm, prefixes, verbs), expected, atol=1e-4)
    with pytest.raises(ValueError, match=r"`verbs` must have one tuple per prefix: 3 prefixes, received 2"):
        verb_log_probs(lm, prefixes, verbs[:2])
