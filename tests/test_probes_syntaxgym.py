import json
import pathlib
import re

import pytest

from textlstm.probes.scorer import TokenScores
from textlstm.probes.syntaxgym import (
    Condition,
    Region,
    build_sentence,
    evaluate_suite,
    load_suite,
    parse_formula,
    region_surprisals,
    write_syntaxgym_report,
)

SUITES = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "syntaxgym_sample" / "json"
SUITE_NAMES = ("cleft", "npz_obj", "subordination")

CLEFT = "[(6;%np_mismatch%)-(6;%np_match%)]+[[(5;%vp_mismatch%)+(6;%vp_mismatch%)]-[(5;%vp_match%)+(6;%vp_match%)]]>0"
NPZ_OBJ = ("[(5;%no-obj_no-comma%) > (5;%no-obj_comma%) ] &  [(5;%no-obj_no-comma%) > (5;%obj_no-comma%) ] & "
           "[[(5;%no-obj_no-comma%) - (5;%no-obj_comma%) ] > [(5;%obj_no-comma%) - (5;%obj_comma%) ]]")
SUBORDINATION = "[(3;%sub_no-matrix%) > (3;%no-sub_no-matrix%) ] & [(3;%sub_matrix%) < (3;%no-sub_matrix%) ]"

# Each sample suite's prediction, written out in Python over v(condition, region).
EXPECTED_PREDICTIONS = {
    "cleft": lambda v: (v("np_mismatch", 6) - v("np_match", 6))
    + ((v("vp_mismatch", 5) + v("vp_mismatch", 6)) - (v("vp_match", 5) + v("vp_match", 6))) > 0,
    "npz_obj": lambda v: v("no-obj_no-comma", 5) > v("no-obj_comma", 5) and v("no-obj_no-comma", 5) > v(
        "obj_no-comma", 5) and (v("no-obj_no-comma", 5) - v("no-obj_comma", 5)) > (v("obj_no-comma", 5) - v(
            "obj_comma", 5)),
    "subordination": lambda v: v("sub_no-matrix", 3) > v("no-sub_no-matrix", 3) and v("sub_matrix", 3) < v(
        "no-sub_matrix", 3),
}


def fake_surprisal(word, index):
    """Made-up, context-dependent surprisal of the `index`-th word of a sentence."""
    return (sum(map(ord, word)) * 7 + index * 3) % 11 + 0.5


class FakeScorer:
    """Whitespace tokens scored by `fake_surprisal`; lowercases in `prepare`; records its calls."""

    def __init__(self):
        self.calls = []

    def prepare(self, text):
        return text.lower()

    def protocol(self):
        return {"implementation": "fake", "tokenizer": "whitespace"}

    def score(self, texts, end_token=True, prepare=True, batch_size=256):
        self.calls.append({"num_texts": len(texts), "end_token": end_token, "prepare": prepare,
                           "batch_size": batch_size})
        results = []
        for text in texts:
            matches = list(re.finditer(r"\S+", text))
            tokens = [match[0] for match in matches] + (["</s>"] if end_token else [])
            spans = [match.span() for match in matches] + ([(len(text), len(text))] if end_token else [])
            surprisals = [fake_surprisal(token, index) for index, token in enumerate(tokens)]
            results.append(TokenScores(text, tokens, list(range(len(tokens))),
                                           [-s * 0.6931471805599453 for s in surprisals], surprisals, spans))
        return results


def expected_region_values(condition, metric="sum"):
    """Region surprisals computed apart from the module: word by word over the regions, in order."""
    values, index = {}, 0
    for region in condition.regions:
        words = region.content.lower().split()
        surprisals = [fake_surprisal(word, index + offset) for offset, word in enumerate(words)]
        index += len(words)
        values[region.number] = (sum(surprisals) if metric == "sum" else sum(surprisals) / len(surprisals)) \
            if surprisals else 0.0
    return values


# Formulas ----------------------------------------------------------------------

@pytest.mark.parametrize("name", SUITE_NAMES)
def test_sample_suite_formulas_parse_with_their_references(name):
    text = json.loads((SUITES / f"{name}.json").read_text())["predictions"][0]["formula"]
    formula = parse_formula(text)
    conditions = {"cleft": ["np_mismatch", "np_match", "vp_mismatch", "vp_match"],
                  "npz_obj": ["no-obj_no-comma", "no-obj_comma", "obj_no-comma", "obj_comma"],
                  "subordination": ["sub_no-matrix", "no-sub_no-matrix", "sub_matrix", "no-sub_matrix"]}[name]
    assert {condition for _, condition in formula.references} == set(conditions)
    assert {region for region, _ in formula.references} == {"cleft": {5, 6}, "npz_obj": {5},
                                                             "subordination": {3}}[name]


def test_cleft_formula_evaluates_its_interaction():
    formula = parse_formula(CLEFT)
    values = {("np_mismatch", 6): 10.0, ("np_match", 6): 8.0, ("vp_mismatch", 5): 3.0, ("vp_mismatch", 6): 4.0,
              ("vp_match", 5): 4.0, ("vp_match", 6): 4.5}
    assert formula.evaluate(values)  # 2 + (7 - 8.5) = 0.5 > 0
    assert not formula.evaluate({**values, ("vp_match", 5): 5.0})  # 2 + (7 - 9.5) = -0.5


def test_npz_obj_formula_needs_all_three_conjuncts():
    formula = parse_formula(NPZ_OBJ)
    values = {("no-obj_no-comma", 5): 10.0, ("no-obj_comma", 5): 4.0, ("obj_no-comma", 5): 6.0,
              ("obj_comma", 5): 3.0}
    assert formula.evaluate(values)  # 10 > 4, 10 > 6, 6 > 3
    assert not formula.evaluate({**values, ("obj_comma", 5): 0.0})  # 6 > 6 fails
    assert not formula.evaluate({**values, ("obj_no-comma", 5): 11.0})  # 10 > 11 fails


def test_subordination_formula():
    formula = parse_formula(SUBORDINATION)
    values = {("sub_no-matrix", 3): 5.0, ("no-sub_no-matrix", 3): 2.0, ("sub_matrix", 3): 1.0,
              ("no-sub_matrix", 3): 3.0}
    assert formula.evaluate(values)
    assert not formula.evaluate({**values, ("sub_matrix", 3): 4.0})


@pytest.mark.parametrize("text, expected", [
    ("5 - 3 - 1 = 1", True),  # left-associative: (5 - 3) - 1; right would give 3
    ("[5 - [3 - 1]] = 3", True),
    ("(5 - (3 - 1)) = 3", True),
    ("1 + 1 > 1.5", True),  # + binds tighter than >
    ("1 > 0 | 1 > 0 & 0 > 1", True),  # & binds tighter than |: T | (T & F); left to right would be F
    ("0 > 1 & 1 > 0 | 1 > 0", True),
    ("0 > 1 | 1 > 0 & 0 > 1", False),
    ("  2>1&[3<4]  ", True),
])
def test_precedence_and_grouping(text, expected):
    assert parse_formula(text).evaluate({}) is expected


def test_signed_and_scientific_literals_as_in_syntaxgym():
    values = {("a", 1): 0.5, ("b", 1): 0.2}
    assert parse_formula("(1;%a%) - (1;%b%) > -1").evaluate(values) is True
    assert parse_formula("(1;%b%) - (1;%a%) > -2.5e-1").evaluate(values) is False  # -0.3 > -0.25
    assert parse_formula("-(1;%a%) < 0 & 1e3 > 999").evaluate(values) is True
    with pytest.raises(ValueError, match="unary '-' needs a number"):
        parse_formula("-[(1;%a%) > 0]")


@pytest.mark.parametrize("a, b, equal", [
    (1.0, 1.0009, True), (1.0, 1.002, False), (1000.0, 1000.009, True), (1000.0, 1000.02, False),
])
def test_equality_is_approximate_as_in_syntaxgym(a, b, equal):
    assert parse_formula("(1;%a%) = (1;%b.2%)").evaluate({("a", 1): a, ("b.2", 1): b}) is equal


@pytest.mark.parametrize("text, position, fragment", [
    ("[(1;%a%) > 0", 12, "expected ']' to close '['"),
    ("[(1;%a%) > 0)", 12, "expected ']' to close '['"),
    ("(1;%a%) > 0]", 11, "expected an operator or the end"),
    ("(1;%a%) > ", 10, "expected a region reference"),
    ("(1;%a%) > 0 &", 13, "expected a region reference"),
    ("(1;%a%) $ 0", 8, "unknown character '$'"),
    ("[(1;%a%) > 0] + 1 > 0", 14, "'+' needs a number on each side, received a truth value and a number"),
    ("(1;%a%) + 1", 0, "a prediction must be a comparison"),
    ("1 < 2 < 3", 6, "'<' needs a number on each side"),
    ("(1;%a b%) > 0", 0, "malformed region reference"),
    ("", 0, "expected a region reference"),
])
def test_malformed_formulas_raise_with_position(text, position, fragment):
    with pytest.raises(ValueError) as error:
        parse_formula(text)
    assert f"formula {text!r}, position {position}:" in str(error.value)
    assert fragment in str(error.value)


def test_evaluate_names_missing_region_values():
    with pytest.raises(ValueError, match=r"lacks \[\('b', 2\)\]"):
        parse_formula("(1;%a%) > (2;%b%)").evaluate({("a", 1): 1.0})


# Sentences and alignment -------------------------------------------------------

def test_build_sentence_strips_prepares_and_spans_regions():
    condition = Condition("obj", (Region(1, "As the Criminal"), Region(2, " shot"), Region(3, ""),
                                  Region(4, " the woman "), Region(5, "yelled")))
    sentence, spans = build_sentence(condition, str.lower)
    assert sentence == "as the criminal shot the woman yelled"
    assert spans == {1: (0, 15), 2: (16, 20), 3: (20, 20), 4: (21, 30), 5: (31, 37)}
    assert [sentence[start:end] for start, end in spans.values()] == ["as the criminal", "shot", "", "the woman",
                                                                       "yelled"]


def test_word_tokens_sum_and_mean():
    # "the cat sat on the mat": regions "the cat" | "sat" | "on the mat"
    token_spans = [(0, 3), (4, 7), (8, 11), (12, 14), (15, 18), (19, 22)]
    region_spans = {1: (0, 7), 2: (8, 11), 3: (12, 22)}
    surprisals = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert region_surprisals(token_spans, surprisals, region_spans, "sum") == {1: 3.0, 2: 3.0, 3: 15.0}
    assert region_surprisals(token_spans, surprisals, region_spans, "mean") == {1: 1.5, 2: 3.0, 3: 5.0}


def test_sentencepiece_piece_starting_on_the_space_counts_for_the_next_region():
    # "the cat sat" pieces: "▁the" (0, 3), "▁c" (3, 5) starts on the space, "at", a bare "▁" (7, 8), "sat".
    token_spans = [(0, 3), (3, 5), (5, 7), (7, 8), (8, 11)]
    region_spans = {1: (0, 3), 2: (4, 7), 3: (8, 11)}
    values = region_surprisals(token_spans, [1.0, 2.0, 4.0, 8.0, 16.0], region_spans, "sum")
    assert values == {1: 1.0, 2: 6.0, 3: 24.0}


def test_piece_across_a_region_boundary_counts_where_it_begins():
    token_spans = [(0, 2), (2, 6), (6, 8)]  # "ab" "cdef" "gh" over regions "abcd" | "efgh"
    values = region_surprisals(token_spans, [1.0, 2.0, 4.0], {1: (0, 4), 2: (4, 8)}, "sum")
    assert values == {1: 3.0, 2: 4.0}


@pytest.mark.parametrize("metric", ["sum", "mean"])
def test_empty_region_is_zero_and_loses_no_tokens(metric):
    # "abc def": region 2 is empty, at the end of region 1.
    values = region_surprisals([(0, 3), (3, 7)], [1.0, 2.0], {1: (0, 3), 2: (3, 3), 3: (4, 7)}, metric)
    assert values == {1: 1.0, 2: 0.0, 3: 2.0}


def test_region_surprisals_rejects_bad_arguments():
    with pytest.raises(ValueError, match="`metric` must be one of .*received 'max'"):
        region_surprisals([(0, 1)], [1.0], {1: (0, 1)}, "max")
    with pytest.raises(ValueError, match="2 spans and 1 surprisals"):
        region_surprisals([(0, 1), (2, 3)], [1.0], {1: (0, 3)}, "sum")


# Suite loading -----------------------------------------------------------------

def write_modified(tmp_path, change, name="npz_obj"):
    data = json.loads((SUITES / f"{name}.json").read_text())
    change(data)
    path = tmp_path / f"{name}_modified.json"
    path.write_text(json.dumps(data))
    return path


def item(data, number):
    return next(raw for raw in data["items"] if raw["item_number"] == number)


def region(data, item_number, condition, region_number):
    conditions = {raw["condition_name"]: raw for raw in item(data, item_number)["conditions"]}
    return next(raw for raw in conditions[condition]["regions"] if raw["region_number"] == region_number)


def test_load_suite_reads_the_samples():
    suite = load_suite(SUITES / "npz_obj.json")
    assert (suite.name, suite.metric, len(suite.items), len(suite.predictions)) == ("npz_obj", "sum", 24, 1)
    assert suite.region_names[5] == "Verb"
    assert [condition.name for condition in suite.items[0].conditions] == [
        "no-obj_no-comma", "obj_no-comma", "no-obj_comma", "obj_comma"]


def test_missing_metric_means_sum(tmp_path):
    assert load_suite(write_modified(tmp_path, lambda data: data["meta"].pop("metric"))).metric == "sum"


@pytest.mark.parametrize("change, fragments", [
    (lambda data: data.pop("items"), ["missing key 'items'"]),
    (lambda data: data["meta"].update(metric="median"), ["'meta.metric' must be one of", "'median'"]),
    (lambda data: item(data, 3)["conditions"][1].update(regions=[]),
     ["item 3, condition 'obj_no-comma'", "'regions' must be a non-empty list, received []"]),
    (lambda data: region(data, 4, "obj_comma", 2).update(region_number=1),
     ["item 4, condition 'obj_comma', region 1", "duplicate region number"]),
    (lambda data: region(data, 5, "no-obj_comma", 4).update(content=None),
     ["item 5, condition 'no-obj_comma', region 4", "'content' must be a str, received None"]),
    (lambda data: region(data, 6, "obj_comma", 5).update(region_number=7),
     ["item 6, condition 'obj_comma', region 5", "references it", "the condition has no such region"]),
    (lambda data: item(data, 7)["conditions"].pop(0),
     ["item 7, condition 'no-obj_no-comma', region 5", "no such condition"]),
    (lambda data: data["predictions"][0].update(formula="(5;%obj_comma%) > "),
     ["predictions[0]", "position 18"]),
    (lambda data: item(data, 8).pop("item_number"), ["missing key 'item_number'"]),
    (lambda data: item(data, 9)["conditions"][2].update(condition_name="obj_no-comma"),
     ["item 9, condition 'obj_no-comma'", "duplicate condition name"]),
    (lambda data: item(data, 10).update(item_number=11), ["duplicate item numbers [11]"]),
    (lambda data: data["region_meta"].update(five="Verb"), ["'region_meta' keys must be region numbers", "'five'"]),
    (lambda data: data["predictions"].append({"type": "ngram"}), ["predictions[1].type must be 'formula'", "'ngram'"]),
])
def test_malformed_suites_raise_naming_the_place(tmp_path, change, fragments):
    path = write_modified(tmp_path, change)
    with pytest.raises(ValueError) as error:
        load_suite(path)
    assert str(error.value).startswith(f"suite {path}")
    for fragment in fragments:
        assert fragment in str(error.value)


def test_bad_json_names_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "meta": {"name": "x",}\n}')
    with pytest.raises(ValueError, match=rf"suite {re.escape(str(path))}: invalid JSON at line 2, column 24"):
        load_suite(path)


# Evaluation and reports ---------------------------------------------------------

@pytest.mark.parametrize("name", SUITE_NAMES)
def test_sample_suites_evaluate_with_a_fake_scorer(tmp_path, name):
    suite = load_suite(SUITES / f"{name}.json")
    scorer = FakeScorer()
    result = evaluate_suite(scorer, suite, batch_size=7)
    assert scorer.calls == [{"num_texts": sum(len(item.conditions) for item in suite.items), "end_token": False,
                             "prepare": False, "batch_size": 7}]
    expected_correct = []
    for suite_item, item_result in zip(suite.items, result["items"]):
        values = {condition.name: expected_region_values(condition) for condition in suite_item.conditions}
        for condition_result in item_result["conditions"]:
            assert {entry["region_number"]: entry["surprisal"] for entry in condition_result["regions"]} == \
                pytest.approx(values[condition_result["condition_name"]])
        expected = EXPECTED_PREDICTIONS[name](lambda condition, number: values[condition][number])
        assert item_result["predictions"] == [expected]
        expected_correct.append(expected)
    assert result["num_items"] == len(suite.items)
    assert result["accuracy"] == pytest.approx(sum(expected_correct) / len(expected_correct))
    assert 0.0 <= result["accuracy"] <= 1.0
    assert result["predictions"] == [{"index": 0, "formula": suite.predictions[0].text,
                                      "accuracy": result["accuracy"], "num_correct": sum(expected_correct)}]
    assert result["protocol"] == {"implementation": "fake", "tokenizer": "whitespace"}

    paths = write_syntaxgym_report(result, tmp_path)
    assert {pathlib.Path(path).name for path in paths.values()} == {
        f"syntaxgym_{name}.json", f"syntaxgym_{name}.md", f"syntaxgym_{name}.png", f"syntaxgym_{name}_items.jsonl"}
    summary = json.loads(pathlib.Path(paths["json"]).read_text())
    assert summary["accuracy"] == result["accuracy"] and "items" not in summary
    lines = pathlib.Path(paths["items"]).read_text().splitlines()
    assert [json.loads(line)["item_number"] for line in lines] == [item.number for item in suite.items]
    markdown = pathlib.Path(paths["markdown"]).read_text()
    formula = " ".join(suite.predictions[0].text.split()).replace("|", "\\|")  # one line in a table cell
    assert formula in markdown and "| implementation | fake |" in markdown
    assert pathlib.Path(paths["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(pathlib.Path(p).name for p in paths.values())


def test_the_fake_evaluation_is_not_trivial():
    """The fake scorer must make some predictions hold and some fail, or the test above checks little."""
    accuracies = [evaluate_suite(FakeScorer(), load_suite(SUITES / f"{name}.json"))["accuracy"]
                  for name in SUITE_NAMES]
    assert any(0.0 < accuracy < 1.0 for accuracy in accuracies)


def test_suite_accuracy_needs_every_prediction(tmp_path):
    def add_predictions(data):
        data["predictions"] += [{"type": "formula", "formula": "(5;%obj_comma%) > (5;%obj_no-comma%)"},
                                {"type": "formula", "formula": "(1;%obj_comma%) > 0"}]

    suite = load_suite(write_modified(tmp_path, add_predictions))
    result = evaluate_suite(FakeScorer(), suite)
    expected = []
    for suite_item in suite.items:
        values = {condition.name: expected_region_values(condition) for condition in suite_item.conditions}
        v = lambda condition, number: values[condition][number]  # noqa: E731
        expected.append([EXPECTED_PREDICTIONS["npz_obj"](v), v("obj_comma", 5) > v("obj_no-comma", 5), True])
    assert [item_result["predictions"] for item_result in result["items"]] == expected
    assert [item_result["correct"] for item_result in result["items"]] == [all(holds) for holds in expected]
    assert result["accuracy"] == pytest.approx(sum(all(holds) for holds in expected) / len(expected))
    assert result["accuracy"] < 1.0
    for index, prediction in enumerate(result["predictions"]):
        assert prediction["num_correct"] == sum(holds[index] for holds in expected)
        assert prediction["accuracy"] == pytest.approx(prediction["num_correct"] / len(expected))


def test_mean_metric_averages_region_tokens(tmp_path):
    suite = load_suite(write_modified(tmp_path, lambda data: data["meta"].update(metric="mean")))
    result = evaluate_suite(FakeScorer(), suite)
    first = result["items"][0]["conditions"][0]
    expected = expected_region_values(suite.items[0].conditions[0], "mean")
    assert {entry["region_number"]: entry["surprisal"] for entry in first["regions"]} == pytest.approx(expected)
    assert first["regions"][2] == {"region_number": 3, "text": "", "surprisal": 0.0, "tokens": []}


def test_regions_emptied_by_preparation_are_counted_and_flagged(tmp_path, caplog):
    class DroppingPunctuation(FakeScorer):  # like PTB preparation for a vocabulary without punctuation
        def prepare(self, text):
            return " ".join(word for word in text.lower().split() if word not in {".", ","})

    with caplog.at_level("WARNING", logger="textlstm.probes.syntaxgym"):
        result = evaluate_suite(DroppingPunctuation(), load_suite(SUITES / "subordination.json"))
    assert result["num_emptied_regions"] == 2 * 23  # region 3 "." of both no-matrix conditions
    assert "emptied 46 regions that have content (first: item 1, condition 'sub_no-matrix', region 3, '.')" in \
        caplog.text
    markdown = pathlib.Path(write_syntaxgym_report(result, tmp_path)["markdown"]).read_text()
    assert "**Warning**: text preparation emptied 46 regions" in markdown
    assert evaluate_suite(FakeScorer(), load_suite(SUITES / "subordination.json"))["num_emptied_regions"] == 0


def test_scorer_returning_other_texts_is_refused():
    class Rewriting(FakeScorer):
        def score(self, texts, **kwargs):
            return super().score([text.upper() for text in texts], **kwargs)

    with pytest.raises(ValueError, match="texts that differ from the sentences"):
        evaluate_suite(Rewriting(), load_suite(SUITES / "subordination.json"))


def check_real_evaluation(scorer, result, suite):
    """No token lost, doubled or moved between regions; a region has tokens exactly when it has text."""
    assert 0.0 <= result["accuracy"] <= 1.0 and result["num_items"] == len(suite.items)
    assert result["protocol"] == scorer.protocol()
    conditions = [condition for item_result in result["items"] for condition in item_result["conditions"]]
    scores = scorer.score([condition["sentence"] for condition in conditions], end_token=False, prepare=False)
    for condition, token_scores in zip(conditions, scores):
        assert [token for entry in condition["regions"] for token in entry["tokens"]] == token_scores.tokens
        assert sum(entry["surprisal"] for entry in condition["regions"]) == pytest.approx(sum(token_scores.surprisals))
        for entry in condition["regions"]:
            assert bool(entry["tokens"]) == bool(entry["text"])
            assert (entry["surprisal"] > 0.0) == bool(entry["text"])


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_sample_suites_evaluate_with_a_tiny_word_lm(tmp_path, tiny_lm, name):
    from textlstm.probes.scorer import KerasScorer

    scorer = KerasScorer(tiny_lm)
    suite = load_suite(SUITES / f"{name}.json")
    result = evaluate_suite(scorer, suite)
    check_real_evaluation(scorer, result, suite)
    first = result["items"][0]["conditions"][0]
    prepared = [scorer.prepare(region.content.strip()) for region in suite.items[0].conditions[0].regions]
    assert first["sentence"] == " ".join(text for text in prepared if text)
    assert len(write_syntaxgym_report(result, tmp_path)) == 4


def test_sample_suite_evaluates_with_a_tiny_sentencepiece_lm(tmp_path, sst_lines):
    import keras

    from textlstm.models import LanguageModel, LSTMBackbone
    from textlstm.preprocessors import LanguageModelPreprocessor
    from textlstm.probes.scorer import KerasScorer
    from textlstm.tokenizers import train_sentencepiece

    tokenizer = train_sentencepiece(texts=sst_lines[:500], vocabulary_size=60)
    keras.utils.set_random_seed(0)
    backbone = LSTMBackbone(tokenizer.vocabulary_size(), embedding_dim=16, hidden_dim=16, num_layers=1)
    language_model = LanguageModel(backbone, preprocessor=LanguageModelPreprocessor.for_mode(tokenizer, "stream"))
    scorer = KerasScorer(language_model)
    suite = load_suite(SUITES / "npz_obj.json")
    result = evaluate_suite(scorer, suite, batch_size=16)
    check_real_evaluation(scorer, result, suite)
    first = result["items"][0]["conditions"][0]
    assert first["sentence"] == "As the criminal shot the woman yelled at the top of her lungs"
    # Each region's first piece is the one that begins on the space before it ("▁...").
    assert all(entry["tokens"][0].startswith("▁") for entry in first["regions"] if entry["tokens"])
    assert len(write_syntaxgym_report(result, tmp_path)) == 4
