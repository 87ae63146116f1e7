"""SyntaxGym test suites (Hu et al. 2020): load, score with a language model, evaluate, report.

A suite is a JSON object:

    meta:        {"name": str, "metric": "sum" | "mean" (default "sum"), ...}
    region_meta: {"<region number>": region name}
    predictions: [{"type": "formula", "formula": str}]
    items:       [{"item_number": int,
                   "conditions": [{"condition_name": str,
                                   "regions": [{"region_number": int, "content": str}]}]}]

Each condition of an item is one sentence: every region's content is
stripped, passed through the scorer's `prepare` and the non-empty ones are
joined with single spaces. The scorer returns each token's character span in
that sentence and its surprisal in bits; a region's surprisal is the sum
(metric "sum") or the mean ("mean") over its tokens.

Alignment rule: a token counts for the region that contains its first
non-whitespace character. Regions are separated by spaces that belong to no
region, so a SentencePiece piece "▁the" that begins on the space before a
region counts for that region, and a piece across a region boundary counts,
whole, for the region where it begins. An empty region has no tokens and a
surprisal of 0.0, under either metric (the SyntaxGym convention for sums).

Predictions are formulas over region surprisals, e.g.
`[(5;%obj%) - (5;%no-obj%)] > 0`. Grammar (EBNF), lowest precedence first:

    formula     = disjunction ;
    disjunction = conjunction , { "|" , conjunction } ;
    conjunction = comparison , { "&" , comparison } ;
    comparison  = sum , [ ( "<" | ">" | "=" ) , sum ] ;
    sum         = operand , { ( "+" | "-" ) , operand } ;
    operand     = reference | number | "(" , disjunction , ")" | "[" , disjunction , "]" ;
    reference   = "(" , integer , ";" , "%" , condition , "%" , ")" ;
    number      = digits , [ "." , [ digits ] ] | "." , digits ;
    condition   = name character , { name character } ;   (* letters, digits, "_", "-", "." *)

Whitespace may appear between any two symbols. `+` and `-` need numbers,
`&` and `|` need truth values, and the whole formula must be a truth value.
`=` is approximate equality, `numpy.isclose(a, b, rtol=1e-5, atol=1e-3)`, as
in SyntaxGym.
"""

import bisect
import collections
import dataclasses
import json
import logging
import operator
import os
import re
from collections.abc import Callable, Mapping, Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from textlstm.reports import escape_cell, markdown_table, protocol_markdown  # noqa: E402
from textlstm.runs import atomic_path, write_json, write_text  # noqa: E402

logger = logging.getLogger(__name__)

METRICS = ("sum", "mean")


# Formulas ----------------------------------------------------------------------

_REFERENCE = re.compile(r"\(\s*(\d+)\s*;\s*%([A-Za-z0-9_.\-]+)%\s*\)")
_REFERENCE_START = re.compile(r"\(\s*\d+\s*;")
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")  # pyparsing_common.number, as SyntaxGym
_CLOSING_BRACKETS = {"(": ")", "[": "]"}
_PRECEDENCE_LEVELS = (("|",), ("&",), ("<", ">", "="), ("+", "-"))
_OPERATORS = {  # operator -> (operand kind, result kind, function)
    "+": ("number", "number", operator.add),
    "-": ("number", "number", operator.sub),
    "<": ("number", "truth value", operator.lt),
    ">": ("number", "truth value", operator.gt),
    "=": ("number", "truth value", lambda a, b: bool(np.isclose(a, b, rtol=1e-5, atol=1e-3))),
    "&": ("truth value", "truth value", operator.and_),
    "|": ("truth value", "truth value", operator.or_),
}


@dataclasses.dataclass(frozen=True)
class _Symbol:
    kind: str  # "reference", "number", "operator", "open", "close" or "end"
    source: str  # as written
    position: int
    value: object = None  # (region number, condition) of a reference, float of a number


@dataclasses.dataclass(frozen=True)
class _Node:
    kind: str  # "number" or "truth value"
    evaluate: Callable[[Mapping], object]


def _formula_error(text: str, position: int, problem: str) -> ValueError:
    return ValueError(f"formula {text!r}, position {position}: {problem}.")


def _lex(text: str) -> list[_Symbol]:
    symbols, position = [], 0
    while position < len(text):
        character = text[position]
        reference, number = _REFERENCE.match(text, position), _NUMBER.match(text, position)
        if character.isspace():
            end = position + 1
        elif reference:
            symbols.append(_Symbol("reference", reference[0], position, (int(reference[1]), reference[2])))
            end = reference.end()
        elif _REFERENCE_START.match(text, position):
            raise _formula_error(text, position, "malformed region reference, expected (N;%condition%)")
        elif number:
            symbols.append(_Symbol("number", number[0], position, float(number[0])))
            end = number.end()
        elif character in _OPERATORS or character in "([)]":
            kind = "operator" if character in _OPERATORS else "open" if character in "([" else "close"
            symbols.append(_Symbol(kind, character, position))
            end = position + 1
        else:
            raise _formula_error(text, position, f"unknown character {character!r}")
        position = end
    return symbols + [_Symbol("end", "the end of the formula", len(text))]


class _Parser:
    """Recursive descent over `_lex` symbols; collects the region references it meets."""

    def __init__(self, text: str):
        self.text = text
        self.symbols = _lex(text)
        self.index = 0
        self.references = set()

    def next(self) -> _Symbol:
        symbol = self.symbols[self.index]
        self.index += 1
        return symbol

    def expression(self, level: int = 0) -> _Node:
        if level == len(_PRECEDENCE_LEVELS):
            return self.operand()
        left = self.expression(level + 1)
        while self.symbols[self.index].source in _PRECEDENCE_LEVELS[level]:
            symbol = self.next()
            right = self.expression(level + 1)
            operand_kind, result_kind, function = _OPERATORS[symbol.source]
            if left.kind != operand_kind or right.kind != operand_kind:
                raise _formula_error(self.text, symbol.position, f"{symbol.source!r} needs a {operand_kind} on each "
                                     f"side, received a {left.kind} and a {right.kind}")
            left = _Node(result_kind, lambda values, f=function, a=left, b=right: f(a.evaluate(values),
                                                                                     b.evaluate(values)))
        return left

    def operand(self) -> _Node:
        symbol = self.next()
        if symbol.kind == "reference":
            region_number, condition = symbol.value
            self.references.add((region_number, condition))
            return _Node("number", lambda values: values[condition, region_number])
        if symbol.kind == "number":
            return _Node("number", lambda values: symbol.value)
        if symbol.source == "-":  # a negative number or a negated operand: "-1", "-(5;%a%)"
            inner = self.operand()
            if inner.kind != "number":
                raise _formula_error(self.text, symbol.position, f"unary '-' needs a number, received a {inner.kind}")
            return _Node("number", lambda values: -inner.evaluate(values))
        if symbol.kind == "open":
            inner = self.expression()
            closing, expected = self.next(), _CLOSING_BRACKETS[symbol.source]
            if closing.source != expected:
                raise _formula_error(self.text, closing.position, f"expected {expected!r} to close {symbol.source!r} "
                                     f"at position {symbol.position}, received {closing.source!r}")
            return inner
        raise _formula_error(self.text, symbol.position,
                             f"expected a region reference, a number or a bracket, received {symbol.source!r}")


@dataclasses.dataclass(frozen=True)
class Formula:
    """A parsed prediction.

    Attributes:
        text: the formula as written.
        references: frozenset of the `(region_number, condition)` pairs it
            reads (a set: no order).
        root: the parsed expression; `evaluate` runs it.
    """

    text: str
    references: frozenset
    root: _Node = dataclasses.field(repr=False, compare=False)

    def evaluate(self, region_values: Mapping[tuple[str, int], float]) -> bool:
        """Whether the prediction holds.

        Args:
            region_values: `(condition, region_number)` -> surprisal; must hold
                every pair of `references`.

        Raises:
            ValueError: `region_values` lacks a referenced region.
        """
        missing = sorted((condition, number) for number, condition in self.references
                         if (condition, number) not in region_values)
        if missing:
            raise ValueError(f"`region_values` lacks {missing}, which formula {self.text!r} references.")
        return bool(self.root.evaluate(region_values))


def parse_formula(text: str) -> Formula:
    """Parses a SyntaxGym prediction formula (grammar in the module docstring).

    >>> formula = parse_formula("[(2;%a%) - (2;%b%)] > 0 & (1;%a%) = 1.5")
    >>> sorted(formula.references)
    [(1, 'a'), (2, 'a'), (2, 'b')]
    >>> formula.evaluate({("a", 1): 1.5, ("a", 2): 3.0, ("b", 2): 2.0})
    True

    Raises:
        ValueError: `text` is not a formula; the message gives the character
            position of the problem.
    """
    if not isinstance(text, str):
        raise ValueError(f"`text` must be a formula string, received {text!r}.")
    parser = _Parser(text)
    root = parser.expression()
    trailing = parser.next()
    if trailing.kind != "end":
        raise _formula_error(text, trailing.position, f"expected an operator or the end, received {trailing.source!r}")
    if root.kind != "truth value":
        raise _formula_error(text, 0, "the formula is a number; a prediction must be a comparison")
    return Formula(text, frozenset(parser.references), root)


# Suites ------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Region:
    """One region of a condition: its number and its content as written in the suite."""

    number: int
    content: str


@dataclasses.dataclass(frozen=True)
class Condition:
    """One condition of an item: its name and its regions, in sentence order."""

    name: str
    regions: tuple[Region, ...]


@dataclasses.dataclass(frozen=True)
class Item:
    """One item: its number and its conditions, in file order."""

    number: int
    conditions: tuple[Condition, ...]


@dataclasses.dataclass(frozen=True)
class Suite:
    """A validated SyntaxGym suite.

    Attributes:
        name: `meta.name`.
        metric: "sum" or "mean": how token surprisals make a region's.
        region_names: region number -> name, from `region_meta`.
        predictions: the parsed formulas, in file order.
        items: the items, in file order.
        path: the file it was read from.
    """

    name: str
    metric: str
    region_names: dict[int, str]
    predictions: tuple[Formula, ...]
    items: tuple[Item, ...]
    path: str


def _suite_error(path: str, problem: str, item=None, condition=None, region=None) -> ValueError:
    place = [f"suite {path}"] + [f"{label} {value!r}" for label, value in
                                 (("item", item), ("condition", condition), ("region", region)) if value is not None]
    return ValueError(f"{', '.join(place)}: {problem}.")


def _field(container, key: str, kind: type, where: dict):
    """`container[key]`, checked to be of `kind` (a list must be non-empty); `where` places the error."""
    if not isinstance(container, dict):
        raise _suite_error(problem=f"expected a JSON object with key {key!r}, received a {type(container).__name__}",
                           **where)
    if key not in container:
        raise _suite_error(problem=f"missing key {key!r}", **where)
    value = container[key]
    if not isinstance(value, kind) or isinstance(value, bool) or (kind is list and not value):
        expected = "a non-empty list" if kind is list else f"a {kind.__name__}"
        raise _suite_error(problem=f"{key!r} must be {expected}, received {value!r}", **where)
    return value


def _parse_condition(raw, where: dict) -> Condition:
    name = _field(raw, "condition_name", str, where)
    where = dict(where, condition=name)
    regions, numbers = [], set()
    for raw_region in _field(raw, "regions", list, where):
        number = _field(raw_region, "region_number", int, where)
        content = _field(raw_region, "content", str, dict(where, region=number))
        if number in numbers:
            raise _suite_error(problem="duplicate region number", region=number, **where)
        numbers.add(number)
        regions.append(Region(number, content))
    return Condition(name, tuple(regions))


def _parse_item(raw, path: str, predictions: Sequence[Formula]) -> Item:
    number = _field(raw, "item_number", int, {"path": path})
    where = {"path": path, "item": number}
    conditions = {}
    for raw_condition in _field(raw, "conditions", list, where):
        condition = _parse_condition(raw_condition, where)
        if condition.name in conditions:
            raise _suite_error(problem="duplicate condition name", condition=condition.name, **where)
        conditions[condition.name] = condition
    for index, formula in enumerate(predictions):
        for region_number, condition_name in sorted(formula.references):
            condition = conditions.get(condition_name)
            if condition is None or region_number not in {region.number for region in condition.regions}:
                lacking = "no such condition" if condition is None else "the condition has no such region"
                raise _suite_error(problem=f"prediction {index} ({formula.text!r}) references it, but {lacking}",
                                   condition=condition_name, region=region_number, **where)
    return Item(number, tuple(conditions.values()))


def load_suite(path: str | os.PathLike) -> Suite:
    """Reads and validates a SyntaxGym suite JSON file.

    Raises:
        ValueError: invalid JSON (with line and column), or a malformed suite:
            a missing key, an empty condition, a duplicate region number,
            non-string content, an unknown metric, a formula that does not
            parse or references a region an item lacks. The message names
            the file and, where it applies, the item, condition and region.
    """
    path = os.fspath(path)
    with open(path, encoding="utf-8") as file:
        try:
            data = json.load(file)
        except json.JSONDecodeError as error:
            raise _suite_error(path, f"invalid JSON at line {error.lineno}, column {error.colno}: "
                                     f"{error.msg}") from None
    where = {"path": path}
    meta = _field(data, "meta", dict, where)
    name = _field(meta, "name", str, where)
    metric = meta.get("metric", "sum")
    if metric not in METRICS:
        raise _suite_error(path, f"'meta.metric' must be one of {METRICS}, received {metric!r}")
    region_names = {}
    for key, region_name in _field(data, "region_meta", dict, where).items():
        if not str(key).isdigit():
            raise _suite_error(path, f"'region_meta' keys must be region numbers, received {key!r}")
        region_names[int(key)] = str(region_name)
    predictions = []
    for index, prediction in enumerate(_field(data, "predictions", list, where)):
        if _field(prediction, "type", str, where) != "formula":
            raise _suite_error(path, f"predictions[{index}].type must be 'formula', received {prediction['type']!r}")
        try:
            predictions.append(parse_formula(_field(prediction, "formula", str, where)))
        except ValueError as error:
            raise _suite_error(path, f"predictions[{index}]: {error}") from None
    items = [_parse_item(raw, path, predictions) for raw in _field(data, "items", list, where)]
    counts = collections.Counter(item.number for item in items)
    duplicates = sorted(number for number, count in counts.items() if count > 1)
    if duplicates:
        raise _suite_error(path, f"duplicate item numbers {duplicates}")
    return Suite(name, metric, region_names, tuple(predictions), tuple(items), path)


# Sentences and regions ---------------------------------------------------------

def build_sentence(condition: Condition, prepare: Callable[[str], str]) -> tuple[str, dict[int, tuple[int, int]]]:
    """One condition's sentence and each region's character span in it.

    Args:
        condition: the condition whose regions make the sentence.
        prepare: the scorer's text preparation, applied to each stripped region.

    Returns:
        The non-empty prepared regions joined by single spaces, and
        region number -> `(start, end)` (end exclusive). An empty region gets
        the empty span where the text before it ends.
    """
    sentence, spans = "", {}
    for region in condition.regions:
        text = prepare(region.content.strip()).strip()
        if text:
            sentence += " " if sentence else ""
            spans[region.number] = (len(sentence), len(sentence) + len(text))
            sentence += text
        else:
            spans[region.number] = (len(sentence), len(sentence))
    return sentence, spans


def _token_regions(token_spans: Sequence[tuple[int, int]], region_spans: Mapping[int, tuple[int, int]]) -> list:
    """Each token's region number (None after the last region), by the module's alignment rule."""
    regions = sorted((span, number) for number, span in region_spans.items() if span[1] > span[0])
    ends = [end for (_, end), _ in regions]
    # The first region ending after the token's start holds its first non-whitespace character.
    positions = [bisect.bisect_right(ends, start) for start, _ in token_spans]
    return [regions[position][1] if position < len(regions) else None for position in positions]


def region_surprisals(token_spans: Sequence[tuple[int, int]], token_surprisals: Sequence[float],
                      region_spans: Mapping[int, tuple[int, int]], metric: str) -> dict[int, float]:
    """Aggregates token surprisals into region surprisals.

    A token belongs to the region that contains its first non-whitespace
    character. Regions are non-overlapping and separated by whitespace that
    belongs to none, so that is the first non-empty region ending after the
    token's start: a piece beginning on the space before a region (SentencePiece's
    "▁") counts for that region, and a piece across a region boundary counts,
    whole, for the region where it begins. An empty region (no tokens) gets
    0.0 under either metric.

    Args:
        token_spans: `(start, end)` character span of each token.
        token_surprisals: each token's surprisal (bits).
        region_spans: region number -> `(start, end)` in the same text.
        metric: "sum" or "mean" of a region's token surprisals.

    Returns:
        region number -> surprisal, for every region of `region_spans`.
    """
    if metric not in METRICS:
        raise ValueError(f"`metric` must be one of {METRICS}, received {metric!r}.")
    if len(token_spans) != len(token_surprisals):
        raise ValueError(f"`token_spans` and `token_surprisals` must have one entry per token, received "
                         f"{len(token_spans)} spans and {len(token_surprisals)} surprisals.")
    values = {number: [] for number in region_spans}
    for region, surprisal in zip(_token_regions(token_spans, region_spans), token_surprisals):
        if region is not None:
            values[region].append(float(surprisal))
    aggregate = sum if metric == "sum" else np.mean
    return {number: float(aggregate(surprisals)) if surprisals else 0.0 for number, surprisals in values.items()}


# Evaluation --------------------------------------------------------------------

def evaluate_suite(scorer, suite: Suite, batch_size: int = 256) -> dict:
    """Scores every sentence of a suite and checks its predictions.

    Args:
        scorer: has `prepare(text)`, `protocol()` and
            `score(texts, end_token, prepare, batch_size)` returning objects
            with `text`, `tokens`, `surprisals` and `spans`
            (see `textlstm.probes.scorer`). Regions are prepared here, one by
            one, so sentences are scored with `prepare=False` and
            `end_token=False`.
        suite: a `Suite` from `load_suite`.
        batch_size: sentences per batch inside the one `scorer.score` call
            that scores every sentence of the suite.

    Returns:
        A JSON-serializable dict: `suite`, `metric`, `protocol`, `num_items`,
        `predictions` (`index`, `formula`, `accuracy`, `num_correct`),
        `accuracy` (share of items where every prediction holds),
        `num_correct`, `num_emptied_regions` (regions with content that the
        scorer's `prepare` emptied, e.g. punctuation a word vocabulary
        lacks: they score 0.0), `region_names`, `region_means` (one row per condition:
        mean region surprisal over items, keyed by region number) and `items`
        (per item: `item_number`, `conditions` with each region's text,
        tokens and surprisal, `predictions` and `correct`).
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, received {batch_size!r}.")
    built = [(item, condition, *build_sentence(condition, scorer.prepare))
             for item in suite.items for condition in item.conditions]
    sentences = [sentence for _, _, sentence, _ in built]
    emptied = [(item.number, condition.name, region.number, region.content.strip())
               for item, condition, _, spans in built for region in condition.regions
               if region.content.strip() and spans[region.number][0] == spans[region.number][1]]
    if emptied:
        logger.warning("SyntaxGym %s: text preparation emptied %d regions that have content (first: item %s, "
                       "condition %r, region %s, %r); they score 0.0", suite.name, len(emptied), *emptied[0])
    scores = scorer.score(sentences, end_token=False, prepare=False, batch_size=batch_size)
    if [token_scores.text for token_scores in scores] != sentences:
        raise ValueError("`scorer.score` must return one TokenScores per sentence, in order, with the sentence "
                         "as its text; it returned texts that differ from the sentences sent.")
    items = {item.number: {"item_number": item.number, "conditions": []} for item in suite.items}
    values = {item.number: {} for item in suite.items}
    for (item, condition, sentence, spans), token_scores in zip(built, scores):
        surprisals = region_surprisals(token_scores.spans, token_scores.surprisals, spans, suite.metric)
        token_regions = _token_regions(token_scores.spans, spans)
        regions = [{"region_number": number, "text": sentence[start:end], "surprisal": surprisals[number],
                    "tokens": [token for token, region in zip(token_scores.tokens, token_regions) if region == number]}
                   for number, (start, end) in spans.items()]
        items[item.number]["conditions"].append({"condition_name": condition.name, "sentence": sentence,
                                                 "regions": regions})
        values[item.number].update({(condition.name, number): value for number, value in surprisals.items()})
    for number, result in items.items():
        result["predictions"] = [formula.evaluate(values[number]) for formula in suite.predictions]
        result["correct"] = all(result["predictions"])
    num_correct = sum(result["correct"] for result in items.values())
    predictions = []
    for index, formula in enumerate(suite.predictions):
        holds = sum(result["predictions"][index] for result in items.values())
        predictions.append({"index": index, "formula": formula.text, "accuracy": holds / len(items),
                            "num_correct": holds})
    logger.info("SyntaxGym %s: accuracy %.3f over %d items", suite.name, num_correct / len(items), len(items))
    return {
        "suite": suite.name, "metric": suite.metric, "protocol": scorer.protocol(), "num_items": len(items),
        "predictions": predictions, "accuracy": num_correct / len(items), "num_correct": num_correct,
        "num_emptied_regions": len(emptied),
        "region_names": {str(number): name for number, name in suite.region_names.items()},
        "region_means": _region_means(values), "items": list(items.values()),
    }


def _region_means(values: Mapping[int, Mapping[tuple[str, int], float]]) -> list[dict]:
    grouped = collections.defaultdict(lambda: collections.defaultdict(list))
    for item_values in values.values():
        for (condition, number), value in item_values.items():
            grouped[condition][number].append(value)
    return [{"condition": condition, "regions": {str(number): float(np.mean(region_values))
                                                 for number, region_values in regions.items()}}
            for condition, regions in grouped.items()]


# Reports -----------------------------------------------------------------------

def _region_label(result: dict, number: str) -> str:
    name = result["region_names"].get(number)
    return f"{number} {name}" if name else number


def syntaxgym_markdown(result: dict) -> str:
    """A Markdown report of `evaluate_suite`'s result: predictions, mean region surprisals, protocol.

    It warns when text preparation emptied regions that have content.
    """
    numbers = list(dict.fromkeys(number for row in result["region_means"] for number in row["regions"]))
    region_rows = [{"condition": row["condition"], **{_region_label(result, number): row["regions"].get(number, "")
                                                      for number in numbers}} for row in result["region_means"]]
    prediction_rows = [dict(row, formula=f"`{escape_cell(row['formula'])}`") for row in result["predictions"]]
    warning = (f"**Warning**: text preparation emptied {result['num_emptied_regions']} regions that have content "
               f"(e.g. punctuation outside a word vocabulary); they score 0.0, so predictions on them say nothing "
               f"about the model." if result["num_emptied_regions"] else "")
    return "\n\n".join(part for part in [
        f"# SyntaxGym: {result['suite']}",
        f"Accuracy (items where every prediction holds): **{result['accuracy']:.3f}** "
        f"({result['num_correct']} of {result['num_items']} items); region metric: {result['metric']}.", warning,
        "## Predictions", markdown_table(prediction_rows, ["index", "formula", "accuracy", "num_correct"]),
        "## Mean region surprisal (bits)",
        markdown_table(region_rows, ["condition"] + [_region_label(result, number) for number in numbers]),
        "## Protocol", protocol_markdown(result["protocol"]),
    ] if part) + "\n"


def plot_region_surprisals(result: dict, path: str) -> None:
    """Bar chart of mean region surprisal per condition (bars) per region (groups) to a PNG."""
    numbers = list(dict.fromkeys(number for row in result["region_means"] for number in row["regions"]))
    width = 0.8 / len(result["region_means"])
    figure, axis = plt.subplots(figsize=(max(6.0, 1.2 * len(numbers)), 4))
    for index, row in enumerate(result["region_means"]):
        heights = [row["regions"].get(number, 0.0) for number in numbers]
        axis.bar(np.arange(len(numbers)) + index * width, heights, width, label=row["condition"])
    axis.set_xticks(np.arange(len(numbers)) + 0.4 - width / 2, [_region_label(result, n) for n in numbers],
                    rotation=20, ha="right")
    axis.set_ylabel(f"mean region surprisal (bits, {result['metric']})")
    axis.set_title(f"{result['suite']}: accuracy {result['accuracy']:.3f}")
    axis.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_syntaxgym_report(result: dict, directory: str | os.PathLike) -> dict[str, str]:
    """Writes `syntaxgym_<suite>.json` (the result without items), `.md`, `.png` and `_items.jsonl`.

    Every file is written to a temporary name and renamed into place.

    Args:
        result: what `evaluate_suite` returns.
        directory: the folder for the files; created when missing.

    Returns:
        "json", "markdown", "png" and "items" -> the file's path.
    """
    stem = os.path.join(os.fspath(directory), "syntaxgym_" + re.sub(r"[^A-Za-z0-9_.-]", "_", result["suite"]))
    paths = {"json": stem + ".json", "markdown": stem + ".md", "png": stem + ".png", "items": stem + "_items.jsonl"}
    write_json({key: value for key, value in result.items() if key != "items"}, paths["json"])
    write_text(syntaxgym_markdown(result), paths["markdown"])
    write_text("".join(json.dumps(item) + "\n" for item in result["items"]), paths["items"])
    with atomic_path(paths["png"]) as temporary_path:
        plot_region_surprisals(result, temporary_path)
    return paths
