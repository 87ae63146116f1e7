"""Number prediction (Linzen, Dupoux & Goldberg 2016): is the verb after this prefix singular or plural?

Items come from `textlstm.data.number_agreement` (UD CoNLL-U: the prefix up
to a present-tense verb, the verb, its other-number form, the label and the
count of attractors, nouns of the other number between subject and verb).

Two ways to answer, reported the same way (accuracy overall and by attractor
count 0, 1, 2, 3+, with 95% bootstrap intervals and a PNG):

- a language model, through any scorer: correct when
  ln p(verb | prefix) > ln p(other form | prefix) (Linzen et al.'s "language
  modeling" objective, the verb's pieces summed; a tie counts as wrong);
- a supervised `AgreementClassifier` trained on the prefixes (their "number
  prediction" objective), whose recipe writes the same report.
"""

import dataclasses
import json
import logging
import os

from textlstm.data.number_agreement import attractor_bucket
from textlstm.probes.minimal_pairs import UNK_POLICIES
from textlstm.reports import accuracy_rows_markdown, bootstrap_interval, plot_accuracy_bars, protocol_markdown
from textlstm.runs import atomic_path, write_json, write_text
from textlstm.tokenizers import UNK_ID

logger = logging.getLogger(__name__)

ATTRACTOR_BUCKETS = ("0", "1", "2", "3+")


def evaluate_number_prediction(scorer, items, unk="score", bootstrap_samples=1000, seed=0, batch_size=256):
    """Language-model number prediction: the verb against its other-number form after each prefix.

    Args:
        scorer: a `textlstm.probes.Scorer`.
        items: list of `NumberItem`.
        unk: "score" or "skip" items whose verb or other form is `<unk>`
            (both `<unk>` is a tie, which counts as wrong); counted either way.

    Returns:
        The dict `summarize_number_predictions` returns, with each item's two log-probs.
    """
    if unk not in UNK_POLICIES:
        raise ValueError(f"`unk` must be one of {UNK_POLICIES}, received {unk!r}.")
    scored = scorer.score_continuations([item.prefix for item in items for _ in range(2)],
                                        [form for item in items for form in (item.verb, item.other_form)],
                                        batch_size=batch_size)
    records, num_unk, num_unscored = [], 0, 0
    for index, item in enumerate(items):
        (verb, verb_ids), (other, other_ids) = scored[2 * index], scored[2 * index + 1]
        has_unk = UNK_ID in verb_ids or UNK_ID in other_ids
        num_unk += has_unk
        if verb is None or other is None or (has_unk and unk == "skip"):
            num_unscored += 1
            continue
        records.append({**dataclasses.asdict(item), "log_prob_verb": verb, "log_prob_other_form": other,
                        "unk_in_verb": has_unk, "correct": verb > other})
    protocol = {**scorer.protocol(), "method": "ln p(verb | prefix) > ln p(other-number form | prefix); "
                                               "a verb's tokens summed; ties count as wrong",
                "unk_policy": unk, "items_with_unk_verb_form": num_unk,
                "items_not_scored": f"{num_unscored} of {len(items)}"}
    return summarize_number_predictions(records, protocol, bootstrap_samples, seed)


def summarize_number_predictions(records, protocol, bootstrap_samples=1000, seed=0):
    """Accuracy overall and per attractor bucket of item records (dicts with `attractors`, `label`, `correct`).

    Returns:
        A JSON-serializable dict: `protocol`, `overall`, `by_attractors`,
        `by_label` (rows with accuracy, 95% bootstrap interval and counts) and `items`.
    """
    def row(name, members):
        outcomes = [float(r["correct"]) for r in members]
        return {"name": name, "accuracy": sum(outcomes) / len(outcomes) if outcomes else None,
                "interval": bootstrap_interval(outcomes, bootstrap_samples, seed),
                "num_items": len(members), "num_scored": len(members), "coverage": 1.0 if members else None}

    by_attractors = [row(f"{bucket} attractors", [r for r in records if attractor_bucket(r["attractors"]) == bucket])
                     for bucket in ATTRACTOR_BUCKETS]
    by_label = [row(label, [r for r in records if r["label"] == label]) for label in ("singular", "plural")]
    result = {"protocol": dict(protocol, interval=f"95% percentile bootstrap, {bootstrap_samples} resamples"),
              "overall": row("overall", records), "by_attractors": by_attractors, "by_label": by_label,
              "items": records}
    logger.info("number prediction: accuracy %s on %d items", result["overall"]["accuracy"], len(records))
    return result


def write_number_prediction_report(result, directory, stem="number_prediction", title="Number prediction"):
    """Writes `<stem>.json`, `<stem>.md`, `<stem>.png` (accuracy by attractor count) and `<stem>_items.jsonl`."""
    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(directory, stem + suffix) for suffix in (".json", ".md", ".png", "_items.jsonl")]
    write_json({k: v for k, v in result.items() if k != "items"}, paths[0])
    write_text("\n\n".join([
        f"# {title}",
        "## Protocol\n\n" + protocol_markdown(result["protocol"]),
        "## Accuracy\n\n" + accuracy_rows_markdown([result["overall"]] + result["by_attractors"], "attractors"),
        "## By label\n\n" + accuracy_rows_markdown(result["by_label"], "label"),
    ]) + "\n", paths[1])
    with atomic_path(paths[2]) as temporary:
        plot_accuracy_bars(result["by_attractors"] + [result["overall"]], temporary, title)
    write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result["items"]), paths[3])
    return paths
