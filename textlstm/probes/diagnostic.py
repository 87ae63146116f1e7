"""Diagnostic classifiers: can a linear probe read the subject's number from h or c?

Hupkes, Veldhoen & Zuidema (2018), "Visualisation and 'diagnostic
classifiers' reveal how recurrent and recursive neural networks process
hierarchical structure", JAIR 61; Giulianelli et al. (2018), "Under the
hood: using diagnostic classifiers to investigate and improve how language
models track agreement information", BlackboxNLP.

A logistic regression (scikit-learn, features standardized, L2 with
`C`) predicts the subject's number (singular / plural) from one layer's h
or c at one position of each number-prediction item
(`textlstm.data.number_agreement`):

- `subject`: the last token of the subject;
- `intervening_noun`: the last token of the first noun between subject and
  verb (items with one), of either number. At an attractor (a noun of the
  other number) alone the subject's number would be the noun's own number
  flipped, and at an agreeing noun alone the noun's own number: either way a
  probe could read the noun instead of remembering the subject. Both kinds
  are kept, and the report splits the accuracy between them (a probe that
  reads the noun is wrong on every attractor);
- `before_verb`: the last token of the prefix, the state the language
  model predicts the verb from.

Classifiers are trained on one set of items (e.g. EWT train) and tested on
another (EWT dev + test). Accuracy alone says little, since a probe can
learn the task itself (Hewitt & Liang 2019, "Designing and interpreting
probes with control tasks", EMNLP): each probe is trained again on a
control task, in which every word type (the word at the probed position)
gets a random label, drawn once with the training labels' plural rate, and
**selectivity** = accuracy - control accuracy is reported beside it, with
the majority-class baseline and 95% bootstrap intervals.

States are read with `textlstm.probes.gates.unroll` from a zero state after
the model's start token, as the scorer reads them; each word is prepared
(`Scorer.prepare`) on its own, so word positions survive the preparation.
"""

import dataclasses
import logging
import random

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from textlstm.probes.gates import unroll
from textlstm.reports import bootstrap_interval
from textlstm.tokenizers import PAD_ID

logger = logging.getLogger(__name__)

POSITIONS = ("subject", "intervening_noun", "before_verb")
LABELS = ("singular", "plural")


@dataclasses.dataclass
class PreparedPrefix:
    """A prefix prepared word by word, with each word's byte span in the prepared text (None if emptied)."""

    text: str
    words: list
    spans: list


def prepare_words(words, prepare=None):
    """Joins `words`, each passed through `prepare` on its own, keeping each word's byte span."""
    prepared_words = [prepare(word) if prepare is not None else word for word in words]
    pieces, spans, position = [], [], 0
    for prepared in prepared_words:
        if not prepared:
            spans.append(None)
            continue
        if pieces:
            position += 1  # the space before it
        size = len(prepared.encode("utf-8"))
        spans.append((position, position + size))
        pieces.append(prepared)
        position += size
    return PreparedPrefix(text=" ".join(pieces), words=prepared_words, spans=spans)


def last_token_of(starts, ends, span):
    """The index of the last token overlapping the byte `span` (None when none does)."""
    if span is None:
        return None
    overlapping = [i for i, (start, end) in enumerate(zip(starts, ends)) if start < span[1] and end > span[0]]
    return overlapping[-1] if overlapping else None


def cell_states(backbone):
    """The states a backbone's cells carry: ("h", "c") for an LSTM (peephole or not), ("h",) for a GRU."""
    return ("h",) if backbone.cell_type == "gru" else ("h", "c")


def tokenize_prefixes(preprocessor, texts):
    """ids (padded, start token first, no `</s>`), and each text's token starts and ends in bytes."""
    ids, starts, ends = preprocessor.tokenize_with_offsets(texts, add_end_token=False)  # ragged (n, None)
    return ids.to_tensor(PAD_ID).numpy(), starts.to_list(), ends.to_list()


@dataclasses.dataclass
class StateSample:
    """A model's h and c at the probed positions of a set of number items.

    Attributes:
        labels: dict position -> int array (items having it,), 1 = plural.
        words: dict position -> list of the word at the position (control tasks key on it).
        attractor: dict position -> bool array, whether the word at the position is an attractor.
        features: dict position -> {(layer, "h" | "c"): array (items having it, hidden_dim)} (no "c" for a GRU).
        item_rows: dict position -> indices (into the items) of the items having it.
        mean_h: list per layer of the mean h over every real token of every prefix.
        num_items: int.
    """

    labels: dict
    words: dict
    attractor: dict
    features: dict
    item_rows: dict
    mean_h: list
    num_items: int


def collect_states(language_model, items, prepare=None, batch_size=128):
    """Reads h and c of every layer at each item's subject, first intervening noun and last prefix token.

    Args:
        language_model: a textlstm `LanguageModel` (one direction).
        items: list of `NumberItem`.
        prepare: optional text -> text, the scorer's preparation (`Scorer.prepare`).
        batch_size: prefixes per unrolled batch (sorted by length).

    Returns:
        A `StateSample`.
    """
    backbone = language_model.backbone
    if backbone.bidirectional:
        raise ValueError("`language_model` must read left to right; received a bidirectional backbone.")
    prepared = [prepare_words(item.prefix.split(" "), prepare) for item in items]
    positions = {name: [] for name in POSITIONS}  # name -> [(item, token position, word, is an attractor)]
    _, all_starts, all_ends = tokenize_prefixes(language_model.preprocessor, [p.text for p in prepared])
    for index, (item, prefix) in enumerate(zip(items, prepared)):
        starts, ends = all_starts[index][1:], all_ends[index][1:]  # without the start token
        nouns = item.intervening_noun_indices
        wanted = {"subject": item.subject_index, "intervening_noun": nouns[0] if nouns else None}
        for name, word_index in wanted.items():
            token = None if word_index is None else last_token_of(starts, ends, prefix.spans[word_index])
            if token is not None:
                positions[name].append((index, token + 1, prefix.words[word_index],
                                        word_index in item.attractor_indices))
        last_word = next((w for w, span in zip(reversed(prefix.words), reversed(prefix.spans)) if span), None)
        if starts:
            positions["before_verb"].append((index, len(starts), last_word, False))
    by_item = {}
    for name, entries in positions.items():
        for index, token, _, _ in entries:
            by_item.setdefault(index, []).append((name, token))
    states = {}  # (item, token) -> {(layer, state): vector}
    sums = [np.zeros(backbone.hidden_dim) for _ in range(backbone.num_layers)]
    count = 0
    order = sorted(by_item, key=lambda i: len(prepared[i].text))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        ids, _, _ = tokenize_prefixes(language_model.preprocessor, [prepared[i].text for i in chunk])
        unrolled = unroll(backbone, ids, record=cell_states(backbone))
        mask = ids != PAD_ID
        count += int(mask.sum())
        for layer, gates in enumerate(unrolled.layers):
            sums[layer] += gates["forward"]["h"][mask].sum(axis=0)
        for row, index in enumerate(chunk):
            for _, token in by_item[index]:
                states[(index, token)] = {(layer, state): gates["forward"][state][row, token]
                                          for layer, gates in enumerate(unrolled.layers) for state in gates["forward"]}
    keys = [(layer, state) for layer in range(backbone.num_layers) for state in cell_states(backbone)]
    sample = StateSample(labels={}, words={}, attractor={}, features={}, item_rows={},
                         mean_h=[s / max(count, 1) for s in sums], num_items=len(items))
    for name, entries in positions.items():
        sample.item_rows[name] = np.asarray([entry[0] for entry in entries], "int64")
        sample.labels[name] = np.asarray([LABELS.index(items[entry[0]].label) for entry in entries], "int64")
        sample.words[name] = [entry[2].lower() for entry in entries]
        sample.attractor[name] = np.asarray([entry[3] for entry in entries], bool)
        sample.features[name] = {key: np.stack([states[entry[:2]][key] for entry in entries])
                                 if entries else np.zeros((0, backbone.hidden_dim), "float32") for key in keys}
    return sample


def control_labels(words, plural_rate, seed, position):
    """Hewitt & Liang's control task: one random label per word type, plural with probability `plural_rate`."""
    return np.asarray([int(random.Random(f"{seed}:{position}:{word}").random() < plural_rate) for word in words],
                      "int64")


def _fit_score(train_x, train_y, test_x, test_y, regularization):
    """Test-set correctness of a standardized L2 logistic regression (None if training has one class)."""
    if len(set(train_y.tolist())) < 2 or len(test_y) == 0:
        return None
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=regularization, max_iter=2000))
    probe.fit(train_x, train_y)
    return probe.predict(test_x) == test_y


def _mean(outcomes):
    return None if outcomes is None else float(np.mean(outcomes))


def diagnostic_classifiers(train, test, regularization=1.0, seed=0, bootstrap_samples=1000):
    """Trains and tests a probe per (position, layer, h|c), with its control task.

    Args:
        train, test: `StateSample`s of disjoint items.
        regularization: the inverse L2 strength `C` of every probe.
        seed: of the control labels and the bootstrap.

    Returns:
        A list of dicts: position, layer, state, train_items, test_items,
        accuracy, interval (95% bootstrap over test items), majority (the
        training majority class's test accuracy), control_accuracy,
        selectivity (accuracy - control_accuracy), and at the intervening
        noun `attractor_accuracy` / `agreeing_noun_accuracy`, the accuracy
        on the test items whose noun is / is not an attractor (None where
        there are none), with `test_attractors`, their count.
    """
    rows = []
    for position in POSITIONS:
        train_y, test_y = train.labels[position], test.labels[position]
        plural_rate = float(train_y.mean()) if len(train_y) else 0.0
        control_train = control_labels(train.words[position], plural_rate, seed, position)
        control_test = control_labels(test.words[position], plural_rate, seed, position)
        majority = int(plural_rate > 0.5)
        for key in train.features[position]:
            train_x, test_x = train.features[position][key], test.features[position][key]
            outcomes = _fit_score(train_x, train_y, test_x, test_y, regularization)
            control = _fit_score(train_x, control_train, test_x, control_test, regularization)
            accuracy, control_accuracy = _mean(outcomes), _mean(control)
            rows.append({
                "position": position, "layer": key[0], "state": key[1],
                "train_items": int(len(train_y)), "test_items": int(len(test_y)),
                "accuracy": accuracy,
                "interval": None if outcomes is None else bootstrap_interval(outcomes, bootstrap_samples, seed),
                "majority": float(np.mean(test_y == majority)) if len(test_y) else None,
                "control_accuracy": control_accuracy,
                "selectivity": None if accuracy is None or control_accuracy is None else accuracy - control_accuracy,
            })
            if position == "intervening_noun":
                attractor = test.attractor[position]
                rows[-1].update({
                    "test_attractors": int(attractor.sum()),
                    "attractor_accuracy": None if outcomes is None else _mean(outcomes[attractor] if attractor.any()
                                                                              else None),
                    "agreeing_noun_accuracy": None if outcomes is None else _mean(
                        outcomes[~attractor] if (~attractor).any() else None),
                })
            logger.info("diagnostic classifier %s layer %d %s: accuracy %s, control %s", position, key[0], key[1],
                        accuracy, control_accuracy)
    return rows
