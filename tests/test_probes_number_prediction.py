"""LM number prediction: verb against other form after the prefix, unk policy, report by attractors."""

import pytest

from textlstm.data.number_agreement import NumberItem
from textlstm.probes import KerasScorer
from textlstm.probes.number_prediction import evaluate_number_prediction, write_number_prediction_report


def item(prefix, verb, other_form, label, attractors):
    words = prefix.split()
    nouns = [i for i, word in enumerate(words[2:], start=2) if word in ("report", "cabinets")][:attractors]
    return NumberItem(sentence_id="s", prefix=prefix, verb=verb, other_form=other_form, label=label,
                      attractors=attractors, intervening_noun_indices=nouns, attractor_indices=nouns,
                      subject=words[1], subject_index=1, verb_index=len(words),
                      distance=len(words) - 1)


def test_lm_number_prediction_compares_the_two_forms(tiny_lm, tmp_path):
    scorer = KerasScorer(tiny_lm)
    items = [item("the company", "says", "say", "singular", 0),
             item("the companies in the report", "are", "is", "plural", 1),
             item("the zyzzyvas", "glorp", "glorps", "plural", 0)]  # both forms <unk>: a tie
    result = evaluate_number_prediction(scorer, items)
    expected = scorer.candidate_log_probs([i.prefix for i in items], [[i.verb, i.other_form] for i in items])
    assert [r["correct"] for r in result["items"]] == [a > b for a, b in expected]
    assert result["items"][2]["correct"] is False and result["protocol"]["items_with_unk_verb_form"] == 1
    assert [row["num_items"] for row in result["by_attractors"]] == [2, 1, 0, 0]
    assert result["by_attractors"][2]["accuracy"] is None
    skipped = evaluate_number_prediction(scorer, items, unk="skip")
    assert skipped["overall"]["num_items"] == 2 and skipped["protocol"]["items_not_scored"] == "1 of 3"
    paths = write_number_prediction_report(result, str(tmp_path))
    assert "3+ attractors" in open(paths[1]).read() and len(open(paths[3]).readlines()) == 3
    with pytest.raises(ValueError, match="`unk` must be one of"):
        evaluate_number_prediction(scorer, items, unk="drop")
