"""Subject-verb agreement minimal pairs from templates, after Marvin & Linzen (2018).

Marvin, R. and Linzen, T. (2018). Targeted Syntactic Evaluation of Language
Models. In Proceedings of EMNLP 2018, pages 1192-1202.

Each pair differs in one word, the critical verb: the good sentence has the
verb form that agrees with its subject, the bad one the other form. The nine
conditions (the pair's `UID`), after M&L's Table 1 and appendix:

=======================================  ==============================================================
condition                                example (good / bad; critical verb in capitals)
=======================================  ==============================================================
simple_agreement                         the author WORKS / WORK
sentential_complement                    the banker said the author WORKS / WORK
short_vp_coordination                    the author is tall and WORKS / WORK
long_vp_coordination                     the author knows many people in foreign countries and
                                         LIKES / LIKE to watch television shows
across_prepositional_phrase              the author next to the guards WORKS / WORK
across_subject_relative_clause           the author that likes the guards WORKS / WORK
across_object_relative_clause            the author that the guards like WORKS / WORK
across_object_relative_clause_no_that    the author the guards like WORKS / WORK
within_object_relative_clause            the author that the guards LIKE / LIKES works
=======================================  ==============================================================

Every condition is generated for both subject numbers and, where another noun
precedes the critical verb, both numbers of that noun (`attractor_number`;
null otherwise), over all combinations of the lexicon's slots, in a fixed
order. In `within_object_relative_clause` the critical verb agrees with the
embedded subject: `subject_number` is that noun's number and
`attractor_number` the head noun's. In `sentential_complement` the
"attractor" is the matrix subject.

The lexicon follows M&L's (their nouns, verbs, prepositions and long verb
phrases), with words missing from the Penn Treebank training vocabulary
replaced by ones a PTB-trained word language model knows (laughs, swims,
smiles -> works, agrees, complains; admires, hates, loves -> knows, helps,
supports; surgeon, chef, skater, dancer, assistant -> doctor, judge, editor,
broker, student; mechanic -> lawyer; the long verb phrases with "languages"
and with a spelled-out age rephrased). Sentences are lowercase, without final
punctuation, and written as JSONL in BLiMP's format, so the minimal-pair probe
that scores BLiMP scores them.

Example:
>>> pairs = generate_pairs(["simple_agreement"])
>>> pairs[0]["sentence_good"], pairs[0]["sentence_bad"], pairs[0]["one_prefix_prefix"]
('the author works', 'the author work', 'the author')
>>> count_by_condition(pairs)
{'simple_agreement': 140}
"""

import itertools
import json
import logging
import random

from textlstm.runs import write_text

logger = logging.getLogger(__name__)

NUMBERS = ("singular", "plural")

# Nouns are (singular, plural); verbs are (singular, plural, the words after the verb).
SUBJECTS = (("author", "authors"), ("pilot", "pilots"), ("doctor", "doctors"), ("farmer", "farmers"),
            ("manager", "managers"), ("customer", "customers"), ("officer", "officers"),
            ("teacher", "teachers"), ("senator", "senators"), ("consultant", "consultants"))
ATTRACTORS = (("guard", "guards"), ("judge", "judges"), ("architect", "architects"), ("editor", "editors"),
              ("broker", "brokers"), ("minister", "ministers"), ("driver", "drivers"),
              ("student", "students"), ("executive", "executives"), ("parent", "parents"))
MATRIX_SUBJECTS = (("lawyer", "lawyers"), ("banker", "bankers"))
MATRIX_VERBS = ("said", "thought", "knew")
INTRANSITIVE_VERBS = (("works", "work", ""), ("agrees", "agree", ""), ("complains", "complain", ""),
                      ("is", "are", "tall"), ("is", "are", "old"), ("is", "are", "young"), ("is", "are", "short"))
TRANSITIVE_VERBS = (("likes", "like"), ("knows", "know"), ("helps", "help"), ("supports", "support"))
LONG_VERB_PHRASES = (("knows", "know", "many people in foreign countries"),
                     ("likes", "like", "to watch television shows"),
                     ("has", "have", "worked at the company for many years"),
                     ("enjoys", "enjoy", "playing tennis with colleagues"),
                     ("writes", "write", "in a journal every day"))
PREPOSITIONS = ("next to", "behind", "in front of", "near", "to the side of", "across from")


def _form(forms, number):
    """The form of a noun or verb `(singular, plural, ...)` for `number`."""
    return forms[NUMBERS.index(number)]


def _join(*parts):
    """Joins the non-empty parts with spaces."""
    return " ".join(part for part in parts if part)


def _pair(prefix, verb, number, attractor_number):
    """One minimal pair: `prefix`, then `verb` (singular, plural, rest) agreeing with `number` or not."""
    good, bad = _form(verb, number), _form(verb, NUMBERS[1 - NUMBERS.index(number)])
    return {"sentence_good": _join(prefix, good, verb[2]), "sentence_bad": _join(prefix, bad, verb[2]),
            "one_prefix_prefix": prefix, "one_prefix_word_good": good, "one_prefix_word_bad": bad,
            "subject_number": number, "attractor_number": attractor_number}


def _simple_agreement():
    for number, subject, verb in itertools.product(NUMBERS, SUBJECTS, INTRANSITIVE_VERBS):
        yield _pair(f"the {_form(subject, number)}", verb, number, None)


def _sentential_complement():
    for number, matrix_number, matrix_subject, matrix_verb, subject, verb in itertools.product(
            NUMBERS, NUMBERS, MATRIX_SUBJECTS, MATRIX_VERBS, SUBJECTS, INTRANSITIVE_VERBS):
        prefix = f"the {_form(matrix_subject, matrix_number)} {matrix_verb} the {_form(subject, number)}"
        yield _pair(prefix, verb, number, matrix_number)


def _vp_coordination(verb_phrases):
    """Coordinated verb phrases with different verbs; the critical verb is the second one."""
    ordered_pairs = [(first, second) for first, second in itertools.permutations(verb_phrases, 2)
                     if first[0] != second[0]]
    for number, subject, (first, second) in itertools.product(NUMBERS, SUBJECTS, ordered_pairs):
        yield _pair(_join(f"the {_form(subject, number)}", _form(first, number), first[2], "and"), second, number,
                    None)


def _across_prepositional_phrase():
    for number, attractor_number, subject, preposition, attractor, verb in itertools.product(
            NUMBERS, NUMBERS, SUBJECTS, PREPOSITIONS, ATTRACTORS, INTRANSITIVE_VERBS):
        prefix = f"the {_form(subject, number)} {preposition} the {_form(attractor, attractor_number)}"
        yield _pair(prefix, verb, number, attractor_number)


def _relative_clauses():
    """Every (number, attractor number, subject, attractor, transitive verb, main verb), in a fixed order."""
    return itertools.product(NUMBERS, NUMBERS, SUBJECTS, ATTRACTORS, TRANSITIVE_VERBS, INTRANSITIVE_VERBS)


def _across_subject_relative_clause():
    for number, attractor_number, subject, attractor, embedded_verb, verb in _relative_clauses():
        prefix = (f"the {_form(subject, number)} that {_form(embedded_verb, number)} "
                  f"the {_form(attractor, attractor_number)}")
        yield _pair(prefix, verb, number, attractor_number)


def _across_object_relative_clause(complementizer):
    for number, attractor_number, subject, attractor, embedded_verb, verb in _relative_clauses():
        prefix = _join(f"the {_form(subject, number)}", complementizer,
                       f"the {_form(attractor, attractor_number)} {_form(embedded_verb, attractor_number)}")
        yield _pair(prefix, verb, number, attractor_number)


def _within_object_relative_clause():
    for head_number, number, head, subject, embedded_verb, verb in _relative_clauses():
        prefix = f"the {_form(head, head_number)} that the {_form(subject, number)}"
        yield _pair(prefix, (*embedded_verb, _join(_form(verb, head_number), verb[2])), number, head_number)


_GENERATORS = {
    "simple_agreement": _simple_agreement,
    "sentential_complement": _sentential_complement,
    "short_vp_coordination": lambda: _vp_coordination(INTRANSITIVE_VERBS),
    "long_vp_coordination": lambda: _vp_coordination(LONG_VERB_PHRASES),
    "across_prepositional_phrase": _across_prepositional_phrase,
    "across_subject_relative_clause": _across_subject_relative_clause,
    "across_object_relative_clause": lambda: _across_object_relative_clause("that"),
    "across_object_relative_clause_no_that": lambda: _across_object_relative_clause(""),
    "within_object_relative_clause": _within_object_relative_clause,
}
CONDITIONS = tuple(_GENERATORS)


def generate_pairs(conditions=None, max_pairs_per_condition=0, seed=0):
    """Generates the minimal pairs of the given conditions, as BLiMP-format dicts.

    Args:
        conditions: names from `CONDITIONS`, in the order wanted; None for all.
        max_pairs_per_condition: keep at most this many pairs of each condition,
            sampled without replacement (in generation order); 0 keeps all.
        seed: the sampling seed; a condition's sample depends only on it and
            the condition's name.

    Returns:
        A list of dicts with `sentence_good`, `sentence_bad`, `one_prefix_prefix`,
        `one_prefix_word_good`, `one_prefix_word_bad`, `UID` (the condition),
        `linguistics_term`, `field`, `pairID` (the pair's index among all of its
        condition's pairs, as a string), `subject_number` and `attractor_number`.

    Raises:
        ValueError: a condition name is unknown, or `max_pairs_per_condition` is negative.
    """
    conditions = CONDITIONS if conditions is None else tuple(conditions)
    unknown = [name for name in conditions if name not in _GENERATORS]
    if unknown:
        raise ValueError(f"conditions: unknown condition(s) {unknown!r}; expected names from {CONDITIONS}.")
    if max_pairs_per_condition < 0:
        raise ValueError(f"max_pairs_per_condition must be >= 0 (0 keeps all), got {max_pairs_per_condition!r}.")
    pairs = []
    for condition in conditions:
        condition_pairs = list(_GENERATORS[condition]())
        kept = range(len(condition_pairs))
        if 0 < max_pairs_per_condition < len(condition_pairs):
            kept = sorted(random.Random(f"{seed}:{condition}").sample(kept, max_pairs_per_condition))
        for index in kept:
            pairs.append({**condition_pairs[index], "UID": condition, "linguistics_term": "subject_verb_agreement",
                          "field": "syntax", "pairID": str(index)})
    return pairs


def count_by_condition(pairs):
    """The number of pairs of each condition (`UID`), in order of first appearance."""
    counts = {}
    for pair in pairs:
        counts[pair["UID"]] = counts.get(pair["UID"], 0) + 1
    return counts


def write_pairs(pairs, path):
    """Writes `pairs` to `path` as JSONL (one pair per line), atomically."""
    write_text("".join(json.dumps(pair) + "\n" for pair in pairs), path)
    logger.info("Wrote %d minimal pairs (%s) to %s", len(pairs), count_by_condition(pairs), path)


def number_swapped_prefixes(conditions=None, max_pairs_per_condition=0, seed=0):
    """Pairs of prefixes that differ only in the number of the noun the critical verb agrees with.

    Two generated pairs of one condition, with the same attractor number,
    whose prefixes (`one_prefix_prefix`) are equal once every noun is put
    in the singular and whose critical verbs are two forms of one verb,
    differ only in the agreeing noun's number ("the author next to the
    guards" / "the authors next to the guards"). Conditions whose prefix
    holds another agreeing verb (VP coordination, subject relative clauses)
    have no such pairs. Activation patching (`textlstm.probes.number_units`)
    copies states from the plural prefix into the singular one.

    Args:
        conditions: names from `CONDITIONS`; None for all.
        max_pairs_per_condition: keep at most this many of each condition,
            sampled without replacement (in generation order); 0 keeps all.
        seed: the sampling seed.

    Returns:
        A list of dicts with `condition`, `singular_prefix`, `plural_prefix`,
        `singular_verb`, `plural_verb`, and `word_index`, the word position of
        the noun that differs; one per distinct singular prefix and verb
        (pairs that differ only after the critical verb give one).

    Example:
    >>> number_swapped_prefixes(["across_prepositional_phrase"], 1)[0]["plural_prefix"]
    'the teachers near the architect'
    """
    if max_pairs_per_condition < 0:
        raise ValueError(f"max_pairs_per_condition must be >= 0 (0 keeps all), got {max_pairs_per_condition!r}.")
    pairs = generate_pairs(conditions)
    singular_of = {plural: singular for nouns in (SUBJECTS, ATTRACTORS, MATRIX_SUBJECTS)
                   for singular, plural in nouns}

    def key(pair):
        words = tuple(singular_of.get(word, word) for word in pair["one_prefix_prefix"].split(" "))
        verbs = frozenset((pair["one_prefix_word_good"], pair["one_prefix_word_bad"]))
        return pair["UID"], pair["attractor_number"], words, verbs

    plurals = {key(pair): pair for pair in pairs if pair["subject_number"] == "plural"}
    by_condition, seen = {}, set()
    for pair in pairs:
        partner = plurals.get(key(pair)) if pair["subject_number"] == "singular" else None
        if partner is None or key(pair) in seen:
            continue
        seen.add(key(pair))
        singular_words, plural_words = pair["one_prefix_prefix"].split(" "), partner["one_prefix_prefix"].split(" ")
        differing = [i for i, (a, b) in enumerate(zip(singular_words, plural_words)) if a != b]
        by_condition.setdefault(pair["UID"], []).append({
            "condition": pair["UID"], "singular_prefix": pair["one_prefix_prefix"],
            "plural_prefix": partner["one_prefix_prefix"], "singular_verb": pair["one_prefix_word_good"],
            "plural_verb": partner["one_prefix_word_good"], "word_index": differing[0]})
    swapped = []
    for condition, members in by_condition.items():
        if 0 < max_pairs_per_condition < len(members):
            kept = sorted(random.Random(f"{seed}:{condition}").sample(range(len(members)), max_pairs_per_condition))
            members = [members[i] for i in kept]
        swapped += members
    return swapped
