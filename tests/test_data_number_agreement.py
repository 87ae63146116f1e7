import collections
import pathlib

import pytest

from textlstm.data import (
    NumberItem,
    attractor_bucket,
    extract_number_items,
    load_number_items,
    other_number_form,
    read_conllu,
    read_number_items,
    write_number_items,
)

EWT = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ud_english_ewt"

# Word lines are whitespace-separated here and tab-separated in the file; every column is filled.
SNIPPET = """\
# sent_id = simple
# text = The dog barks.
1 The the DET DT Definite=Def|PronType=Art 2 det _ _
2 dog dog NOUN NN Number=Sing 3 nsubj _ _
3 barks bark VERB VBZ Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin 0 root _ _
4 . . PUNCT . _ 3 punct _ _

# sent_id = attractor
# text = The keys to the cabinets in the kitchen are on the table.
1 The the DET DT Definite=Def|PronType=Art 2 det _ _
2 keys key NOUN NNS Number=Plur 12 nsubj _ _
3 to to ADP IN _ 5 case _ _
4 the the DET DT Definite=Def|PronType=Art 5 det _ _
5 cabinets cabinet NOUN NNS Number=Plur 2 nmod _ _
6 in in ADP IN _ 8 case _ _
7 the the DET DT Definite=Def|PronType=Art 8 det _ _
8 kitchen kitchen NOUN NN Number=Sing 5 nmod _ _
9 are be AUX VBP Mood=Ind|Number=Plur|Person=3|Tense=Pres|VerbForm=Fin 12 cop _ _
10 on on ADP IN _ 12 case _ _
11 the the DET DT Definite=Def|PronType=Art 12 det _ _
12 table table NOUN NN Number=Sing 0 root _ _
13 . . PUNCT . _ 12 punct _ _

# sent_id = copula
# text = Her sisters are tall.
1 Her she PRON PRP$ Case=Gen|Gender=Fem|Number=Sing|Person=3|Poss=Yes|PronType=Prs 2 nmod:poss _ _
2 sisters sister NOUN NNS Number=Plur 4 nsubj _ _
3 are be AUX VBP Mood=Ind|Number=Plur|Person=3|Tense=Pres|VerbForm=Fin 4 cop _ _
4 tall tall ADJ JJ Degree=Pos 0 root _ _
5 . . PUNCT . _ 4 punct _ _

# sent_id = first_person
# text = I think it works.
1 I I PRON PRP Case=Nom|Number=Sing|Person=1|PronType=Prs 2 nsubj _ _
2 think think VERB VBP Mood=Ind|Number=Sing|Person=1|Tense=Pres|VerbForm=Fin 0 root _ _
3 it it PRON PRP Case=Nom|Gender=Neut|Number=Sing|Person=3|PronType=Prs 4 nsubj _ _
4 works work VERB VBZ Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin 2 ccomp _ _
5 . . PUNCT . _ 2 punct _ _

# sent_id = coordination
# text = John and Mary are happy.
1 John John PROPN NNP Number=Sing 5 nsubj _ _
2 and and CCONJ CC _ 3 cc _ _
3 Mary Mary PROPN NNP Number=Sing 1 conj _ _
4 are be AUX VBP Mood=Ind|Number=Plur|Person=3|Tense=Pres|VerbForm=Fin 5 cop _ _
5 happy happy ADJ JJ Degree=Pos 0 root _ _
6 . . PUNCT . _ 5 punct _ _

# newpar id = p2
# sent_id = multiword
# text = The cat doesn't sleep.
1 The the DET DT Definite=Def|PronType=Art 2 det _ _
2 cat cat NOUN NN Number=Sing 5 nsubj _ _
3-4 doesn't _ _ _ _ _ _ _ _
3 does do AUX VBZ Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin 5 aux _ _
4 n't not PART RB Polarity=Neg 5 advmod _ _
5 sleep sleep VERB VB VerbForm=Inf 0 root _ _
5.1 sleeps sleep VERB VBZ Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin _ _ 5:conj CopyOf=5
6 . . PUNCT . _ 5 punct _ _

# sent_id = modal
# text = The dog can swim.
1 The the DET DT Definite=Def|PronType=Art 2 det _ _
2 dog dog NOUN NN Number=Sing 4 nsubj _ _
3 can can AUX MD VerbForm=Fin 4 aux _ _
4 swim swim VERB VB VerbForm=Inf 0 root _ _
5 . . PUNCT . _ 4 punct _ _
"""


def write_conllu(path, text):
    lines = [line if line.startswith("#") else "\t".join(line.split()) for line in text.splitlines()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def snippet_path(tmp_path):
    return write_conllu(tmp_path / "snippet.conllu", SNIPPET)


def test_read_conllu_keeps_syntactic_words_and_comments(snippet_path):
    sentences = read_conllu(snippet_path)
    assert [sentence.sent_id for sentence in sentences] == [
        "simple", "attractor", "copula", "first_person", "coordination", "multiword", "modal"]
    multiword = sentences[5]
    assert multiword.text == "The cat doesn't sleep."
    assert [token.form for token in multiword.tokens] == ["The", "cat", "does", "n't", "sleep", "."]
    assert [token.index for token in multiword.tokens] == [1, 2, 3, 4, 5, 6]
    does = multiword.tokens[2]
    assert (does.lemma, does.upos, does.xpos, does.head, does.deprel) == ("do", "AUX", "VBZ", 5, "aux")
    assert does.feats == {"Mood": "Ind", "Number": "Sing", "Person": "3", "Tense": "Pres", "VerbForm": "Fin"}
    assert sentences[0].tokens[3].feats == {}


def test_extracts_exact_items_and_skip_reasons(snippet_path):
    items, skipped = extract_number_items(read_conllu(snippet_path))
    assert [(item.sentence_id, item.prefix, item.verb, item.other_form, item.label, item.attractors)
            for item in items] == [
        ("simple", "The dog", "barks", "bark", "singular", 0),
        ("attractor", "The keys to the cabinets in the kitchen", "are", "is", "plural", 1),
        ("copula", "Her sisters", "are", "is", "plural", 0),
        ("first_person", "I think it", "works", "work", "singular", 0),
        ("multiword", "The cat", "does", "do", "singular", 0),
    ]
    attractor = items[1]
    assert (attractor.subject, attractor.subject_index, attractor.verb_index, attractor.distance) == ("keys", 1, 8, 7)
    assert attractor.intervening_noun_indices == [4, 7]  # "cabinets" (agrees with "keys"), "kitchen"
    assert attractor.attractor_indices == [7]  # "kitchen", singular
    assert attractor.intervening and not items[0].intervening
    assert skipped == collections.Counter(
        {"1st/2nd person subject": 1, "subject and verb differ in number": 1, "modal": 1})


@pytest.mark.parametrize("bad_line, message", [
    ("2 dog dog NOUN", r"bad.conllu:4: expected 10 tab-separated columns, got 4"),
    ("2 dog dog NOUN NN Number=Sing x nsubj _ _", r"bad.conllu:4: HEAD must be a non-negative integer, got 'x'"),
    ("2 dog dog NOUN NN Number 3 nsubj _ _", r"bad.conllu:4: bad FEATS 'Number'"),
    ("3 dog dog NOUN NN Number=Sing 3 nsubj _ _", r"bad.conllu:4: ID '3' out of order, expected 2"),
])
def test_malformed_line_names_file_line_and_value(tmp_path, bad_line, message):
    path = write_conllu(tmp_path / "bad.conllu", SNIPPET.replace(SNIPPET.splitlines()[3], bad_line, 1))
    with pytest.raises(ValueError, match=message):
        read_conllu(path)


def test_missing_file_names_path_and_data_source(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing.conllu.*shared/data/ud_english_ewt \(UD English EWT v2.16\)"):
        read_conllu(tmp_path / "nothing.conllu")


@pytest.mark.parametrize("singular, plural", [
    ("is", "are"), ("has", "have"), ("does", "do"), ("goes", "go"), ("tries", "try"),
    ("watches", "watch"), ("runs", "run"), ("Is", "Are"), ("HAS", "HAVE"), ("'s", "'re"), ("’s", "’re"),
])
def test_inflection_round_trips(singular, plural):
    assert other_number_form(singular, "VBZ") == plural
    assert other_number_form(plural, "VBP") == singular


def test_inflection_uses_the_lemma_and_rejects_what_it_cannot_inflect():
    assert other_number_form("'s", "VBZ", lemma="have") == "'ve"
    assert other_number_form("'ve", "VBP", lemma="have") == "'s"
    assert other_number_form("uses", "VBZ", lemma="use") == "use"
    assert other_number_form("focuses", "VBZ", lemma="focus") == "focus"
    assert other_number_form("reccomend", "VBP", lemma="recommend") is None
    assert other_number_form("am", "VBP") is None
    for form, lemma in [("am", "be"), ("'m", "be"), ("r", "be"), ("let's", "let")]:
        assert other_number_form(form, "VBP", lemma=lemma) is None
    with pytest.raises(ValueError, match=r"`xpos` must be 'VBZ' or 'VBP', got 'MD'"):
        other_number_form("can", "MD")


def test_jsonl_round_trip_and_bad_line(snippet_path, tmp_path):
    items, _ = extract_number_items(read_conllu(snippet_path))
    path = tmp_path / "items.jsonl"
    write_number_items(items, path)
    assert load_number_items(path) == items
    path.write_text(items[0].to_json() + "\n" + '{"prefix": "The dog"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"items.jsonl:2: not a number item: `text` must be a JSON object"):
        load_number_items(path)
    with pytest.raises(ValueError, match=r"`label` must be 'singular' or 'plural', got 'dual'"):
        NumberItem.from_json(items[0].to_json().replace('"singular"', '"dual"'))


def test_attractor_buckets():
    assert [attractor_bucket(count) for count in (0, 1, 2, 3, 9)] == ["0", "1", "2", "3+", "3+"]
    with pytest.raises(ValueError, match=r"`attractors` must be >= 0, got -1"):
        attractor_bucket(-1)


@pytest.mark.parametrize("split, minimum", [("train", 1000), ("test", 150)])
def test_real_ewt_items_are_plausible_and_silent(capsys, split, minimum):
    path = EWT / f"en_ewt-ud-{split}.conllu"
    items = read_number_items(path)
    sentences = {sentence.sent_id: sentence for sentence in read_conllu(path)}
    assert len(items) > minimum
    assert {item.label for item in items} == {"singular", "plural"}
    for item in items:
        words = [token.form for token in sentences[item.sentence_id].tokens]
        assert words[item.verb_index] == item.verb and words[item.subject_index] == item.subject
        assert item.prefix == " ".join(words[:item.verb_index])
        assert item.distance == item.verb_index - item.subject_index >= 1
        assert item.attractors >= 0 and item.other_form not in ("", item.verb)
    assert capsys.readouterr() == ("", "")
