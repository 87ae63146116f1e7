"""Minimal pairs: does the model prefer the grammatical sentence? (BLiMP, Warstadt et al. 2020)

Input: JSONL with `sentence_good` and `sentence_bad`, and optionally `UID`
(the paradigm), `linguistics_term`, `field`, `pairID` and BLiMP's
`one_prefix_prefix`, `one_prefix_word_good`, `one_prefix_word_bad`.

Methods (Warstadt et al. 2020, section 3; Marvin & Linzen 2018):

    full        log p(sentence_good) > log p(sentence_bad), each the sum of its
                tokens' log-probs (`</s>` included); `normalization="mean"`
                compares the mean per token instead.
    one_prefix  log p(word_good | prefix) > log p(word_bad | prefix): only the
                critical word after the shared prefix (its pieces summed).
                Pairs without the one_prefix fields are not covered.

A tie counts as wrong. Pairs whose two sentences (or critical words) are
identical, also once prepared for the model, are reported, never scored; so
is a one_prefix pair whose critical word the preparation removes.

Out-of-vocabulary words: the critical words are the words where the two
sentences differ (or the one_prefix words). A pair with `<unk>` among their
tokens is counted in `num_unk`; `unk="score"` scores it anyway, `unk="skip"`
leaves it out (coverage drops). With SentencePiece there is no `<unk>` in
practice.

Report: accuracy, item count, scored count, coverage and a 95% percentile
bootstrap interval, per paradigm, per `linguistics_term`, per `field` and
overall, with the scoring protocol (`Scorer.protocol()` plus method,
normalization, unk policy).
"""

import dataclasses
import difflib
import json
import logging
import os

from textlstm.reports import accuracy_rows_markdown, bootstrap_interval, plot_accuracy_bars, protocol_markdown
from textlstm.runs import atomic_path, write_json, write_text
from textlstm.tokenizers import UNK_ID

logger = logging.getLogger(__name__)

METHODS = ("full", "one_prefix")
NORMALIZATIONS = ("sum", "mean")
UNK_POLICIES = ("score", "skip")


@dataclasses.dataclass
class MinimalPair:
    """One pair; `source` is "file:line" for error messages and item-level output."""

    sentence_good: str
    sentence_bad: str
    uid: str = "pairs"
    linguistics_term: str = ""
    field: str = ""
    pair_id: str = ""
    prefix: str = None
    word_good: str = None
    word_bad: str = None
    source: str = ""


def read_minimal_pairs(path, default_uid=None):
    """Reads one JSONL file of minimal pairs.

    Args:
        path: a JSONL file, one pair a line (blank lines skipped).
        default_uid: the paradigm name for lines without `UID` (default: the file's stem).

    Raises:
        FileNotFoundError: naming the path.
        ValueError: naming file, line and field for bad JSON, a missing or
            non-string `sentence_good`/`sentence_bad`, or half the one_prefix fields.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"minimal-pair file not found: {path} (BLiMP is in ../shared/data/blimp).")
    default_uid = default_uid or os.path.splitext(os.path.basename(path))[0]
    pairs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: not JSON ({error.msg} at column {error.colno}).") from None
            if not isinstance(record, dict):
                raise ValueError(f"{where}: expected a JSON object, received {type(record).__name__}.")
            for key in ("sentence_good", "sentence_bad"):
                if not isinstance(record.get(key), str):
                    raise ValueError(f"{where}: field `{key}` must be a string, received {record.get(key)!r}.")
            prefix_fields = [record.get(k) for k in ("one_prefix_prefix", "one_prefix_word_good", "one_prefix_word_bad")]
            if any(v is not None for v in prefix_fields) and not all(isinstance(v, str) for v in prefix_fields):
                raise ValueError(f"{where}: one_prefix_prefix, one_prefix_word_good and one_prefix_word_bad must "
                                 f"all be strings, received {prefix_fields!r}.")
            pairs.append(MinimalPair(
                sentence_good=record["sentence_good"], sentence_bad=record["sentence_bad"],
                uid=str(record.get("UID", default_uid)), linguistics_term=str(record.get("linguistics_term", "")),
                field=str(record.get("field", "")), pair_id=str(record.get("pairID", number)),
                prefix=prefix_fields[0], word_good=prefix_fields[1], word_bad=prefix_fields[2], source=where,
            ))
    return pairs


def read_blimp(directory, paradigms=None, linguistics_terms=None):
    """Pairs of the BLiMP paradigms in `directory` (one `<UID>.jsonl` each), optionally filtered.

    Args:
        directory: e.g. ../shared/data/blimp.
        paradigms: optional list of UIDs to keep.
        linguistics_terms: optional list of `linguistics_term`s to keep (e.g. ["subject_verb_agreement"]).
    """
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"BLiMP directory not found: {directory} (it is in ../shared/data/blimp).")
    files = sorted(f for f in os.listdir(directory) if f.endswith(".jsonl"))
    if paradigms:
        missing = sorted(set(paradigms) - {os.path.splitext(f)[0] for f in files})
        if missing:
            raise ValueError(f"`paradigms`: not in {directory}: {missing}.")
        files = [f for f in files if os.path.splitext(f)[0] in paradigms]
    pairs = [pair for f in files for pair in read_minimal_pairs(os.path.join(directory, f))]
    if linguistics_terms:
        pairs = [p for p in pairs if p.linguistics_term in linguistics_terms]
        if not pairs:
            raise ValueError(f"`linguistics_terms`: no pair in {directory} has {linguistics_terms!r}.")
    return pairs


def _differing_spans(good, bad):
    """Character spans, in each text, of the words where two whitespace-tokenized texts differ."""
    good_words, bad_words = good.split(), bad.split()
    good_offsets, bad_offsets = _word_offsets(good), _word_offsets(bad)
    good_spans, bad_spans = [], []
    for tag, g1, g2, b1, b2 in difflib.SequenceMatcher(a=good_words, b=bad_words, autojunk=False).get_opcodes():
        if tag != "equal":
            good_spans += good_offsets[g1:g2]
            bad_spans += bad_offsets[b1:b2]
    return good_spans, bad_spans


def _word_offsets(text):
    offsets, position = [], 0
    for word in text.split():
        start = text.index(word, position)
        offsets.append((start, start + len(word)))
        position = start + len(word)
    return offsets


def _has_unk(scored, spans):
    return any(token_id == UNK_ID and any(s < span_end and span_start < e for span_start, span_end in spans)
               for token_id, (s, e) in zip(scored.token_ids, scored.spans))


def evaluate_minimal_pairs(scorer, pairs, method="full", normalization="sum", unk="score", end_token=True,
                           bootstrap_samples=1000, seed=0, batch_size=256):
    """Scores minimal pairs and aggregates accuracy per paradigm, term, field and overall.

    Args:
        scorer: a `textlstm.probes.Scorer`.
        pairs: list of `MinimalPair`.
        method: "full" or "one_prefix" (module docstring).
        normalization: "sum" or "mean" of token log-probs ("full" only).
        unk: "score" or "skip" pairs with `<unk>` in a critical word.
        end_token: bool, score `</s>` at the end of each sentence ("full" only).
        bootstrap_samples: resamples for the 95% intervals.
        seed: seed of the bootstrap.
        batch_size: texts per scoring call.

    Returns:
        A JSON-serializable dict: `protocol`, `overall`, `by_paradigm`,
        `by_linguistics_term`, `by_field` (rows of accuracy, interval,
        counts, coverage), `identical_pairs` and `items` (one dict per pair).
    """
    for name, value, allowed in (("method", method, METHODS), ("normalization", normalization, NORMALIZATIONS),
                                 ("unk", unk, UNK_POLICIES)):
        if value not in allowed:
            raise ValueError(f"`{name}` must be one of {allowed}, received {value!r}.")
    items = [_item_record(pair) for pair in pairs]
    if method == "full":
        _score_full(scorer, pairs, items, normalization, end_token, batch_size)
    else:
        _score_one_prefix(scorer, pairs, items, batch_size)
    for item in items:
        if item["status"] == "scored" and item["unk_in_critical_word"] and unk == "skip":
            item["status"] = "skipped_unk"
        if item["status"] == "scored":
            item["correct"] = item["score_good"] > item["score_bad"]
    protocol = {**scorer.protocol(), "method": method,
                "normalization": normalization if method == "full" else "sum over the critical word's tokens",
                "end_token_scored": end_token if method == "full" else False, "unk_policy": unk,
                "ties": "count as wrong", "interval": f"95% percentile bootstrap, {bootstrap_samples} resamples"}
    group = lambda key: _group_rows(items, key, bootstrap_samples, seed)  # noqa: E731
    result = {
        "protocol": protocol,
        "overall": _accuracy_row("overall", items, bootstrap_samples, seed),
        "by_paradigm": group("UID"),
        "by_linguistics_term": group("linguistics_term"),
        "by_field": group("field"),
        "identical_pairs": [item["source"] for item in items if item["status"] == "identical"],
        "items": items,
    }
    overall = result["overall"]
    logger.info("minimal pairs: accuracy %s on %d of %d pairs (%d with <unk> in a critical word)",
                "n/a" if overall["accuracy"] is None else f"{overall['accuracy']:.4f}",
                overall["num_scored"], overall["num_items"], overall["num_unk"])
    return result


def _item_record(pair):
    return {"source": pair.source, "UID": pair.uid, "pairID": pair.pair_id,
            "linguistics_term": pair.linguistics_term, "field": pair.field,
            "sentence_good": pair.sentence_good, "sentence_bad": pair.sentence_bad,
            "status": "identical" if pair.sentence_good.strip() == pair.sentence_bad.strip() else "scored",
            "score_good": None, "score_bad": None, "unk_in_critical_word": False, "correct": None}


def _score_full(scorer, pairs, items, normalization, end_token, batch_size):
    live = [i for i, item in enumerate(items) if item["status"] == "scored"]
    texts = [scorer.prepare(t) for i in live for t in (pairs[i].sentence_good, pairs[i].sentence_bad)]
    scored = scorer.score(texts, end_token=end_token, prepare=False, batch_size=batch_size)
    for position, index in enumerate(live):
        good, bad = scored[2 * position], scored[2 * position + 1]
        if good.text == bad.text:  # different only in what the preparation removes
            items[index]["status"] = "identical"
            continue
        good_spans, bad_spans = _differing_spans(good.text, bad.text)
        items[index]["unk_in_critical_word"] = _has_unk(good, good_spans) or _has_unk(bad, bad_spans)
        reduce = (lambda v: sum(v) / max(len(v), 1)) if normalization == "mean" else sum
        items[index]["score_good"] = float(reduce(good.log_probs))
        items[index]["score_bad"] = float(reduce(bad.log_probs))


def _score_one_prefix(scorer, pairs, items, batch_size):
    live = [i for i, item in enumerate(items) if item["status"] == "scored"]
    for index in live:
        if pairs[index].prefix is None:
            items[index]["status"] = "no_one_prefix_fields"
    live = [i for i in live if items[i]["status"] == "scored"]
    prefixes = [pairs[i].prefix for i in live for _ in range(2)]
    words = [w for i in live for w in (pairs[i].word_good, pairs[i].word_bad)]
    scored = scorer.score_continuations(prefixes, words, batch_size=batch_size)
    for position, index in enumerate(live):
        (good, good_ids), (bad, bad_ids) = scored[2 * position], scored[2 * position + 1]
        if good is None or bad is None:  # a critical word the preparation removed
            items[index]["status"] = "empty_after_preparation"
            continue
        if scorer.prepare(pairs[index].word_good) == scorer.prepare(pairs[index].word_bad):
            items[index]["status"] = "identical"
            continue
        items[index]["unk_in_critical_word"] = UNK_ID in good_ids or UNK_ID in bad_ids
        items[index]["score_good"], items[index]["score_bad"] = good, bad


def _accuracy_row(name, items, bootstrap_samples, seed):
    outcomes = [float(item["correct"]) for item in items if item["status"] == "scored"]
    accuracy = sum(outcomes) / len(outcomes) if outcomes else None
    return {
        "name": name, "accuracy": accuracy, "interval": bootstrap_interval(outcomes, bootstrap_samples, seed),
        "num_items": len(items), "num_scored": len(outcomes),
        "coverage": len(outcomes) / len(items) if items else None,
        "num_unk": sum(item["unk_in_critical_word"] for item in items),
        "num_identical": sum(item["status"] == "identical" for item in items),
        "extra_columns": ["num_unk", "num_identical"],
    }


def _group_rows(items, key, bootstrap_samples, seed):
    groups = {}
    for item in items:
        groups.setdefault(item[key] or "(none)", []).append(item)
    return [_accuracy_row(name, members, bootstrap_samples, seed) for name, members in sorted(groups.items())]


def write_minimal_pairs_report(result, directory, stem="minimal_pairs", title="Minimal pairs", references=None):
    """Writes `<stem>.json`, `<stem>.md`, `<stem>.png` (accuracy per term or paradigm) and `<stem>_items.jsonl`.

    Args:
        result: what `evaluate_minimal_pairs` returns.
        directory: created when missing.
        references: optional {paradigm or term: accuracy} from the literature, drawn on the plot.

    Returns:
        The paths written, in that order.
    """
    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(directory, stem + suffix) for suffix in (".json", ".md", ".png", "_items.jsonl")]
    summary = {k: v for k, v in result.items() if k != "items"}
    write_json(summary, paths[0])
    sections = [f"# {title}", "## Protocol\n\n" + protocol_markdown(result["protocol"]),
                "## Overall\n\n" + accuracy_rows_markdown([result["overall"]], "set")]
    for key, heading, column in (("by_field", "By field", "field"),
                                 ("by_linguistics_term", "By linguistics term", "linguistics_term"),
                                 ("by_paradigm", "By paradigm", "paradigm")):
        sections.append(f"## {heading}\n\n" + accuracy_rows_markdown(result[key], column))
    if result["identical_pairs"]:
        sections.append("## Identical pairs (not scored)\n\n" + "\n".join(f"- {s}" for s in result["identical_pairs"]))
    write_text("\n\n".join(sections) + "\n", paths[1])
    # One bar per phenomenon where there are several (all of BLiMP), else per paradigm.
    rows = result["by_linguistics_term"] if len(result["by_linguistics_term"]) > 1 else result["by_paradigm"]
    with atomic_path(paths[2]) as temporary:
        plot_accuracy_bars(rows + [result["overall"]], temporary, title, references=references)
    write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in result["items"]), paths[3])
    return paths
