"""Marvin & Linzen (2018) agreement templates: one critical verb per pair, agreeing with the right noun."""

import collections
import json

import pytest

from textlstm.probes import templates

ATTRACTOR_CONDITIONS = {"sentential_complement", "across_prepositional_phrase", "across_subject_relative_clause",
                        "across_object_relative_clause", "across_object_relative_clause_no_that",
                        "within_object_relative_clause"}
# The noun the critical verb agrees with: the last lexicon noun of the prefix here, the first elsewhere.
CONTROLLED_BY_LAST_NOUN = {"sentential_complement", "within_object_relative_clause"}
NOUN_NUMBER = {noun[index]: number for noun in templates.SUBJECTS + templates.ATTRACTORS + templates.MATRIX_SUBJECTS
               for index, number in enumerate(templates.NUMBERS)}
VERB_PAIRS = {verb[:2] for verb in templates.INTRANSITIVE_VERBS + templates.TRANSITIVE_VERBS
              + templates.LONG_VERB_PHRASES}
VERB_NUMBER = {verb[index]: number for verb in VERB_PAIRS for index, number in enumerate(templates.NUMBERS)}


@pytest.fixture(scope="module")
def all_pairs():
    return templates.generate_pairs()


def test_exactly_the_nine_conditions_each_with_every_number_combination(all_pairs):
    assert templates.CONDITIONS == (
        "simple_agreement", "sentential_complement", "short_vp_coordination", "long_vp_coordination",
        "across_prepositional_phrase", "across_subject_relative_clause", "across_object_relative_clause",
        "across_object_relative_clause_no_that", "within_object_relative_clause")
    assert tuple(templates.count_by_condition(all_pairs)) == templates.CONDITIONS
    for condition in templates.CONDITIONS:
        combinations = {(pair["subject_number"], pair["attractor_number"]) for pair in all_pairs
                        if pair["UID"] == condition}
        attractor_numbers = templates.NUMBERS if condition in ATTRACTOR_CONDITIONS else (None,)
        assert combinations == {(number, attractor_number) for number in templates.NUMBERS
                                for attractor_number in attractor_numbers}, condition


def test_every_pair_differs_only_in_the_critical_verb_right_after_the_prefix(all_pairs):
    for pair in all_pairs:
        prefix, good, bad = pair["one_prefix_prefix"], pair["one_prefix_word_good"], pair["one_prefix_word_bad"]
        rest = pair["sentence_good"][len(f"{prefix} {good}"):]
        assert pair["sentence_good"] == f"{prefix} {good}{rest}", pair
        assert pair["sentence_bad"] == f"{prefix} {bad}{rest}", pair
        assert rest == "" or rest.startswith(" "), pair
        good_words, bad_words = pair["sentence_good"].split(), pair["sentence_bad"].split()
        differing = [index for index, (word_good, word_bad) in enumerate(zip(good_words, bad_words))
                     if word_good != word_bad]
        assert len(good_words) == len(bad_words) and differing == [len(prefix.split())], pair
        assert pair["sentence_good"] == pair["sentence_good"].lower() and pair["sentence_good"][-1].isalpha()


def test_the_two_verbs_are_the_singular_and_plural_of_one_lemma(all_pairs):
    for pair in all_pairs:
        verbs = (pair["one_prefix_word_good"], pair["one_prefix_word_bad"])
        assert verbs in VERB_PAIRS or verbs[::-1] in VERB_PAIRS, pair


def test_the_good_verb_agrees_with_its_subject_and_the_attractor_is_the_other_noun(all_pairs):
    for pair in all_pairs:
        nouns = [word for word in pair["one_prefix_prefix"].split() if word in NOUN_NUMBER]
        assert len(nouns) == (2 if pair["UID"] in ATTRACTOR_CONDITIONS else 1), pair
        subject = nouns.pop(-1 if pair["UID"] in CONTROLLED_BY_LAST_NOUN else 0)
        assert VERB_NUMBER[pair["one_prefix_word_good"]] == NOUN_NUMBER[subject] == pair["subject_number"], pair
        assert pair["attractor_number"] == (NOUN_NUMBER[nouns[0]] if nouns else None), pair


def test_counts_are_positive_and_generation_is_deterministic(all_pairs):
    counts = templates.count_by_condition(all_pairs)
    assert all(count > 0 for count in counts.values())
    assert templates.generate_pairs() == all_pairs
    assert [pair["pairID"] for pair in all_pairs if pair["UID"] == "simple_agreement"] == [
        str(index) for index in range(counts["simple_agreement"])]
    assert len({(pair["UID"], pair["sentence_good"], pair["sentence_bad"]) for pair in all_pairs}) == len(all_pairs)


def test_sampling_keeps_at_most_the_limit_and_follows_the_seed(all_pairs):
    full = {(pair["UID"], pair["pairID"]): pair for pair in all_pairs}
    sample = templates.generate_pairs(max_pairs_per_condition=150, seed=1)
    counts = templates.count_by_condition(all_pairs)
    assert templates.count_by_condition(sample) == {condition: min(150, count) for condition, count in counts.items()}
    assert all(full[pair["UID"], pair["pairID"]] == pair for pair in sample)
    assert templates.generate_pairs(max_pairs_per_condition=150, seed=1) == sample
    assert templates.generate_pairs(max_pairs_per_condition=150, seed=2) != sample
    within = [pair for pair in sample if pair["UID"] == "within_object_relative_clause"]
    assert templates.generate_pairs(["within_object_relative_clause"], 150, seed=1) == within


def test_unknown_condition_and_negative_limit_are_refused():
    with pytest.raises(ValueError, match=r"conditions.*'agreement_attraction'"):
        templates.generate_pairs(["simple_agreement", "agreement_attraction"])
    with pytest.raises(ValueError, match=r"max_pairs_per_condition.*-1"):
        templates.generate_pairs(max_pairs_per_condition=-1)


def test_the_lexicon_is_known_to_a_ptb_word_model(all_pairs, ptb_dir):
    vocabulary = set((ptb_dir / "ptb.train.txt").read_text(encoding="utf-8").split())
    words = {word for pair in all_pairs for sentence in (pair["sentence_good"], pair["sentence_bad"])
             for word in sentence.split()}
    known = words & vocabulary
    assert len(known) / len(words) >= 0.95, sorted(words - vocabulary)


def test_write_pairs_writes_blimp_jsonl(tmp_path):
    pairs = templates.generate_pairs(max_pairs_per_condition=3)
    path = tmp_path / "probes" / "marvin_linzen.jsonl"
    templates.write_pairs(pairs, str(path))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == pairs
    assert set(json.loads(lines[0])) == {
        "sentence_good", "sentence_bad", "one_prefix_prefix", "one_prefix_word_good", "one_prefix_word_bad", "UID",
        "linguistics_term", "field", "pairID", "subject_number", "attractor_number"}
    assert {pair["linguistics_term"] for pair in pairs} == {"subject_verb_agreement"}


def test_number_swapped_prefixes_differ_only_in_the_agreeing_noun():
    swapped = templates.number_swapped_prefixes()
    counts = collections.Counter(pair["condition"] for pair in swapped)
    # VP coordination and subject relative clauses hold a second agreeing verb in the prefix: no pairs.
    assert set(counts) == {"simple_agreement", "sentential_complement", "across_prepositional_phrase",
                           "across_object_relative_clause", "across_object_relative_clause_no_that",
                           "within_object_relative_clause"}
    nouns = dict(templates.SUBJECTS + templates.ATTRACTORS + templates.MATRIX_SUBJECTS)
    for pair in swapped:
        singular, plural = pair["singular_prefix"].split(" "), pair["plural_prefix"].split(" ")
        differing = [i for i, (a, b) in enumerate(zip(singular, plural)) if a != b]
        assert differing == [pair["word_index"]] and len(singular) == len(plural)
        assert nouns[singular[pair["word_index"]]] == plural[pair["word_index"]]
        assert pair["singular_verb"] != pair["plural_verb"]
    within = next(pair for pair in swapped if pair["condition"] == "within_object_relative_clause")
    assert within["singular_prefix"] == "the author that the guard" and within["word_index"] == 4
    assert len({(p["singular_prefix"], p["singular_verb"]) for p in swapped}) == len(swapped)  # no duplicates
    sampled = templates.number_swapped_prefixes(["across_prepositional_phrase"], 50, seed=3)
    assert len(sampled) == 50
    assert sampled == templates.number_swapped_prefixes(["across_prepositional_phrase"], 50, seed=3)
    assert sampled != templates.number_swapped_prefixes(["across_prepositional_phrase"], 50, seed=4)
