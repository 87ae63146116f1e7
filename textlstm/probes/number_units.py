"""Number units (Lakretz et al. 2019): which single units carry the subject's number, and do they matter?

Lakretz, Kruszewski, Desbordes, Hupkes, Dehaene & Baroni (2019). The
emergence of number and syntax units in LSTM language models. NAACL 2019.

Three steps, each against controls, all through `textlstm.probes.gates.unroll`
(from a zero state after the model's start token, as the scorer scores):

1. **Ranking.** Each unit's c (h in a GRU) at the last prefix token of the
   number-prediction training items: ROC AUC for singular vs plural
   subjects; units are ranked by |AUC - 0.5| on the training items and the
   AUC on held-out items is reported beside it (a unit with AUC > 0.5 is
   higher for plural subjects).
2. **Ablation.** A unit's h is set, at every step, to 0 (zero ablation) or
   to its mean over every token of the training prefixes (mean ablation),
   so nothing it computes reaches the next step, the next layer or the
   output. The top units are ablated one at a time and in groups of the top
   k; each against `random_draws` random groups of the same size and layer
   make-up (every unit ranked above the largest group excluded). The
   effect is the change in agreement
   accuracy, ln p(correct verb | prefix) > ln p(wrong verb | prefix) (a
   verb's tokens summed), on number-prediction items and on the Marvin &
   Linzen template conditions. Top units: 95% paired bootstrap interval
   over items; random groups: the 2.5-97.5 percentile range over draws and
   the empirical p-value (1 + draws with a drop at least as large) / (1 +
   draws), at least 1 / (1 + draws).
3. **Activation patching.** Over pairs of template prefixes that differ
   only in the agreeing noun's number (`templates.number_swapped_prefixes`),
   the units' h and c (h alone in a GRU) are copied from the plural prefix's run into the
   singular prefix's run at every position from the noun's last token to
   the end of the prefix (the prefixes are identical after the noun, so the
   positions align from the end). Reported: how often the preferred verb
   flips from singular to plural, over the pairs whose unpatched run
   prefers the singular verb, against random-unit controls and against
   patching every unit (the upper bound).
"""

import dataclasses
import logging
import os
import random

import numpy as np
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

from textlstm.probes.diagnostic import POSITIONS, cell_states, last_token_of, prepare_words, tokenize_prefixes
from textlstm.probes.gates import Intervention, plot_unit_traces, unroll
from textlstm.reports import escape_cell, markdown_table, plt, protocol_markdown
from textlstm.runs import atomic_path, write_json, write_text
from textlstm.tokenizers import PAD_ID

logger = logging.getLogger(__name__)

ABLATIONS = ("zero", "mean")


@dataclasses.dataclass
class VerbChoices:
    """Items scored by verb preference: after each prefix, the correct verb against the wrong one.

    Attributes:
        prefixes: list of str, already prepared for the model.
        correct, wrong: lists of str, the verb forms.
        groups: list of str, each item's set, or "set/condition" (the report
            gives accuracies for all items, each set and each condition).
    """

    prefixes: list
    correct: list
    wrong: list
    groups: list

    def __add__(self, other):
        return VerbChoices(*(getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self)))


def number_item_choices(items, prepare=None, group="number prediction"):
    """`VerbChoices` of number-prediction items (verb against its other-number form)."""
    prepare = prepare or (lambda text: text)
    return VerbChoices(prefixes=[prepare_words(item.prefix.split(" "), prepare).text for item in items],
                       correct=[prepare(item.verb) for item in items],
                       wrong=[prepare(item.other_form) for item in items], groups=[group] * len(items))


def template_choices(pairs, prepare=None):
    """`VerbChoices` of template minimal pairs (`templates.generate_pairs`), one-prefix method; group "templates/CONDITION"."""
    prepare = prepare or (lambda text: text)
    return VerbChoices(prefixes=[prepare_words(p["one_prefix_prefix"].split(" "), prepare).text for p in pairs],
                       correct=[prepare(p["one_prefix_word_good"]) for p in pairs],
                       wrong=[prepare(p["one_prefix_word_bad"]) for p in pairs],
                       groups=[f"templates/{p['UID']}" for p in pairs])


def _first_verb_token(text, starts, ends, verb_start, length):
    """The index of the first token whose first non-space byte is at or after `verb_start` (the scorer's rule)."""
    for index in range(1, length):
        first = starts[index]
        while first < ends[index] and text[first : first + 1].isspace():
            first += 1
        if first >= verb_start:
            return index
    return length


def verb_log_probs(language_model, prefixes, verbs, interventions_for=None, batch_size=256):
    """ln p(verb | prefix) for each prefix and each of its verbs, with interventions while the model runs.

    Args:
        language_model: a `LanguageModel`.
        prefixes: list of prepared, non-empty str.
        verbs: list (one per prefix) of equal-length tuples of prepared verbs.
        interventions_for: None, or a function `(prefix indices (batch,),
            token_ids (batch, time), prefix lengths (batch,)) -> [Intervention]`
            called per batch; a prefix length counts the start token.
        batch_size: sequences per unrolled batch.

    Returns:
        float array `(len(prefixes), verbs per prefix)`: each verb's tokens' log-probs summed (nats).
    """
    if len(prefixes) != len(verbs):
        raise ValueError(f"`verbs` must have one tuple per prefix: {len(prefixes)} prefixes, received {len(verbs)}.")
    width = len(verbs[0]) if verbs else 0
    if any(len(options) != width for options in verbs):
        raise ValueError(f"`verbs` must hold tuples of one length; received lengths {sorted({len(v) for v in verbs})}.")
    texts = [f"{prefix} {verb}" for prefix, options in zip(prefixes, verbs) for verb in options]
    owner = np.repeat(np.arange(len(prefixes)), width)
    ids, starts, ends = tokenize_prefixes(language_model.preprocessor, texts)
    lengths = (ids != PAD_ID).sum(axis=1)
    prefix_lengths = np.asarray([
        _first_verb_token(text.encode("utf-8"), token_starts, token_ends, len(prefix.encode("utf-8")) + 1, length)
        for text, token_starts, token_ends, prefix, length
        in zip(texts, starts, ends, [p for p in prefixes for _ in range(width)], lengths)])
    embedding = language_model.output_embedding.numpy()  # (vocabulary, hidden)
    bias = language_model.output_bias.numpy()
    totals = np.zeros(len(texts))
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        time = int(lengths[rows].max())
        batch_ids = ids[rows, :time]
        interventions = () if interventions_for is None else interventions_for(owner[rows], batch_ids,
                                                                                prefix_lengths[rows])
        outputs = unroll(language_model.backbone, batch_ids, interventions=interventions, record=()).outputs
        which = [(r, j) for r, (p, n) in enumerate(zip(prefix_lengths[rows], lengths[rows])) for j in range(p, n)]
        batch_rows, positions = (np.asarray(v, "int64") for v in zip(*which))
        logits = outputs[batch_rows, positions - 1] @ embedding.T + bias  # (word tokens, vocabulary)
        logits = logits - logits.max(axis=1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        picked = log_probs[np.arange(len(positions)), batch_ids[batch_rows, positions]]
        np.add.at(totals, rows[batch_rows], picked)
    return totals.reshape(len(prefixes), width)


def item_groups(groups):
    """Item indices per reported group: "all", each group's family (before "/") and each "family/member" group."""
    members = {"all": list(range(len(groups)))}
    for index, group in enumerate(groups):
        members.setdefault(group.split("/")[0], []).append(index)
        if "/" in group:
            members.setdefault(group, []).append(index)
    return {name: np.asarray(rows, "int64") for name, rows in members.items()}


def agreement_correct(language_model, choices, interventions_for=None, batch_size=256):
    """Bool array: the correct verb has the higher log-prob (ties count as wrong)."""
    log_probs = verb_log_probs(language_model, choices.prefixes, list(zip(choices.correct, choices.wrong)),
                               interventions_for, batch_size)
    return log_probs[:, 0] > log_probs[:, 1]


# Ranking ---------------------------------------------------------------------------


def rank_units(train, test, position="before_verb", state=None):
    """Ranks every unit by how well its value at `position` separates singular from plural subjects.

    Args:
        train, test: `diagnostic.StateSample`s of disjoint items.
        position: one of `diagnostic.POSITIONS`.
        state: "c" or "h"; None = c where the cells have one (LSTMs), else h.

    Returns:
        A list of dicts (layer, unit, state, train_auc, test_auc, number: the
        number the unit is higher for, test_mean_singular, test_mean_plural),
        strongest first by |train_auc - 0.5|.
    """
    if position not in POSITIONS:
        raise ValueError(f"`position` must be one of {POSITIONS}, received {position!r}.")
    available = sorted({kind for _, kind in train.features[position]})
    state = state or ("c" if "c" in available else "h")
    if state not in available:
        raise ValueError(f"`state` must be one of {available} for this model, received {state!r}.")
    rows = []
    train_y, test_y = train.labels[position], test.labels[position]
    for (layer, kind), train_x in train.features[position].items():
        if kind != state:
            continue
        test_x = test.features[position][(layer, kind)]
        for unit in range(train_x.shape[1]):
            train_auc = float(roc_auc_score(train_y, train_x[:, unit]))
            test_auc = float(roc_auc_score(test_y, test_x[:, unit])) if len(set(test_y.tolist())) == 2 else None
            rows.append({"layer": layer, "unit": unit, "state": state, "train_auc": train_auc, "test_auc": test_auc,
                         "number": "plural" if train_auc > 0.5 else "singular",
                         "test_mean_singular": float(test_x[test_y == 0, unit].mean()) if (test_y == 0).any() else None,
                         "test_mean_plural": float(test_x[test_y == 1, unit].mean()) if (test_y == 1).any() else None})
    return sorted(rows, key=lambda row: -abs(row["train_auc"] - 0.5))


def _random_matched(units, pool, rng):
    """A random group with the same number of units per layer as `units`, drawn from `pool` (per layer)."""
    group = []
    for layer in sorted({layer for layer, _ in units}):
        wanted = sum(1 for l, _ in units if l == layer)
        group += [(layer, unit) for unit in rng.sample(pool[layer], wanted)]
    return group


def _by_layer(units):
    layers = {}
    for layer, unit in units:
        layers.setdefault(layer, []).append(unit)
    return layers


def _paired_interval(base, other, samples, seed):
    """95% paired bootstrap interval of mean(other) - mean(base) over items."""
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, len(base), size=(samples, len(base)))
    deltas = other[indices].mean(axis=1) - base[indices].mean(axis=1)
    return float(np.percentile(deltas, 2.5)), float(np.percentile(deltas, 97.5))


def check_experiment(top_units, group_sizes, random_draws, ranking):
    """Raises a ValueError naming the argument when the experiment cannot be drawn from `ranking`'s units."""
    if not 1 <= top_units <= len(ranking):
        raise ValueError(f"`top_units` must be in [1, {len(ranking)}] (the ranked units), received {top_units!r}.")
    if random_draws < 1:
        raise ValueError(f"`random_draws` must be at least 1, received {random_draws!r}.")
    largest = max([top_units, *group_sizes])
    per_layer = {}
    for row in ranking:
        per_layer[row["layer"]] = per_layer.get(row["layer"], 0) + 1
    for row in ranking[:largest]:
        per_layer[row["layer"]] -= 1  # the units excluded from random draws
    for size in group_sizes:
        wanted = {}
        for row in ranking[:size]:
            wanted[row["layer"]] = wanted.get(row["layer"], 0) + 1
        if size < 1 or any(count > per_layer[layer] for layer, count in wanted.items()):
            raise ValueError(f"`group_sizes` must be positive and leave enough units outside the top {largest} for "
                             f"matched random groups; received {list(group_sizes)!r} with {len(ranking)} units.")


def _experiment_groups(ranking, top_units, group_sizes, random_draws, seed):
    """(kind, size, units) triples: each top unit alone, each top-k group, and matched random draws.

    Random draws never include a unit ranked in the top max(top_units, group sizes).
    """
    top = [(row["layer"], row["unit"]) for row in ranking]
    excluded = set(top[: max([top_units, *group_sizes])])
    pool = {}
    for unit in top:
        if unit not in excluded:
            pool.setdefault(unit[0], []).append(unit[1])
    pool = {layer: sorted(units) for layer, units in pool.items()}
    rng = random.Random(seed)
    groups = [("top", 1, [unit]) for unit in top[:top_units]]
    for size in sorted({1, *group_sizes}):
        chosen = top[:size]
        if size > 1:
            groups.append(("top", size, chosen))
        for _ in range(random_draws):
            groups.append(("random", size, _random_matched(chosen, pool, rng)))
    return groups


def ablation_experiment(language_model, choices, ranking, mean_h, top_units=10, group_sizes=(2, 4, 8, 16),
                        random_draws=20, modes=ABLATIONS, seed=0, bootstrap_samples=1000, batch_size=256):
    """Agreement accuracy with units ablated: the top units against matched random units.

    Args:
        language_model: a `LanguageModel`.
        choices: `VerbChoices` (groups name the sets and conditions).
        ranking: `rank_units`' output.
        mean_h: per layer, each unit's mean h (`StateSample.mean_h`), for mean ablation.
        top_units: how many top units are ablated one at a time.
        group_sizes: sizes k of the top-k groups.
        random_draws: random groups per size.
        modes: subset of ("zero", "mean").

    Returns:
        A dict with `baseline` (accuracy per group), `top` (one row per top
        unit or group, mode and item group: accuracy, delta, paired interval)
        and `random` (per size, mode and item group: the draws' deltas,
        their mean and 2.5-97.5 percentiles, and `p_value`, the share of
        draws whose delta is at most the matching top group's).
    """
    unknown = [mode for mode in modes if mode not in ABLATIONS]
    if unknown or not modes:
        raise ValueError(f"`modes` must be among {ABLATIONS}, received {list(modes)!r}.")
    check_experiment(top_units, group_sizes, random_draws, ranking)
    members = item_groups(choices.groups)

    def accuracy_by_group(correct):
        return {group: correct[rows] for group, rows in members.items()}

    base = accuracy_by_group(agreement_correct(language_model, choices, batch_size=batch_size))
    result = {"baseline": {g: float(v.mean()) for g, v in base.items()}, "top": [], "random": []}
    experiment = _experiment_groups(ranking, top_units, group_sizes, random_draws, seed)
    draws = {}
    for mode in modes:
        for kind, size, units in tqdm(experiment, desc=f"{mode} ablation", unit="group"):
            interventions = [Intervention(layer, unit_list, h=0.0 if mode == "zero" else mean_h[layer][unit_list])
                             for layer, unit_list in _by_layer(units).items()]
            correct = accuracy_by_group(agreement_correct(language_model, choices, lambda *_: interventions,
                                                          batch_size))
            for group, outcomes in correct.items():
                delta = float(outcomes.mean() - base[group].mean())
                if kind == "top":
                    result["top"].append({
                        "mode": mode, "size": size, "units": [list(u) for u in units], "group": group,
                        "accuracy": float(outcomes.mean()), "delta": delta,
                        "interval": _paired_interval(base[group].astype(float), outcomes.astype(float),
                                                     bootstrap_samples, seed)})
                else:
                    draws.setdefault((mode, size, group), []).append(delta)
    for (mode, size, group), deltas in draws.items():
        top_delta = next((row["delta"] for row in result["top"]
                          if (row["mode"], row["size"], row["group"]) == (mode, size, group)), None)
        deltas = np.asarray(deltas)
        result["random"].append({
            "mode": mode, "size": size, "group": group, "draws": len(deltas), "deltas": deltas.tolist(),
            "mean_delta": float(deltas.mean()), "range": (float(np.percentile(deltas, 2.5)),
                                                          float(np.percentile(deltas, 97.5))),
            "p_value": None if top_delta is None else float((1 + (deltas <= top_delta).sum()) / (1 + len(deltas))),
        })
    return result


# Patching ---------------------------------------------------------------------------


def patch_spans(language_model, swapped, prepare=None):
    """The prepared prefixes of each pair and how many final prefix positions patching overwrites.

    The count runs from the differing noun's last token to the prefix's last
    token. A pair is kept when the count is the same in both prefixes (the
    tokens after the noun are the same), so the positions align from the end.

    Returns:
        (singular prefixes, plural prefixes, counts, indices of the kept pairs in `swapped`).
    """
    prepared = {number: [prepare_words(pair[f"{number}_prefix"].split(" "), prepare) for pair in swapped]
                for number in ("singular", "plural")}
    counts = {}
    for number, prefixes in prepared.items():
        ids, starts, ends = tokenize_prefixes(language_model.preprocessor, [prefix.text for prefix in prefixes])
        lengths = (ids != PAD_ID).sum(axis=1)
        counts[number] = []
        for token_starts, token_ends, prefix, pair, length in zip(starts, ends, prefixes, swapped, lengths):
            token = last_token_of(token_starts, token_ends, prefix.spans[pair["word_index"]])
            counts[number].append(None if token is None else int(length - token))
    kept = [i for i, (a, b) in enumerate(zip(counts["singular"], counts["plural"])) if a is not None and a == b]
    return ([prepared["singular"][i].text for i in kept], [prepared["plural"][i].text for i in kept],
            [counts["singular"][i] for i in kept], kept)


def source_states(language_model, prefixes, batch_size=256):
    """Each prefix's h and c (h alone in a GRU), per layer `(time, hidden)`, read with `unroll` (no `</s>`)."""
    ids, _, _ = tokenize_prefixes(language_model.preprocessor, prefixes)
    lengths = (ids != PAD_ID).sum(axis=1)
    states = []
    for start in range(0, len(prefixes), batch_size):
        unrolled = unroll(language_model.backbone, ids[start : start + batch_size],
                          record=cell_states(language_model.backbone))
        for row in range(len(unrolled.outputs)):
            length = lengths[start + row]
            states.append([{name: values[row, :length] for name, values in gates["forward"].items()}
                           for gates in unrolled.layers])
    return states


def patched_log_probs(language_model, prefixes, verbs, sources, num_positions, units, batch_size=256):
    """Verb log-probs after each prefix, with `units`' h and c (h in a GRU) copied from `sources` into its last positions.

    Args:
        prefixes: prepared prefixes (the runs patched).
        verbs: list of (verb, verb) tuples per prefix.
        sources: `source_states` of the prefixes the values come from.
        num_positions: per prefix, how many of its final positions are
            patched, aligned with the source's final positions.
        units: list of (layer, unit).
    """
    if not len(prefixes) == len(verbs) == len(sources) == len(num_positions):
        raise ValueError(f"`prefixes`, `verbs`, `sources` and `num_positions` must have one entry per prefix; "
                         f"received {len(prefixes)}, {len(verbs)}, {len(sources)} and {len(num_positions)}.")
    layers = _by_layer(units)
    states = cell_states(language_model.backbone)

    def interventions_for(owners, token_ids, prefix_lengths):
        batch, time = token_ids.shape
        interventions = []
        for layer, unit_list in layers.items():
            values = {name: np.zeros((batch, time, len(unit_list)), "float32") for name in states}
            positions = np.zeros((batch, time), bool)
            for row, (owner, length) in enumerate(zip(owners, prefix_lengths)):
                count = num_positions[owner]
                for name in states:
                    values[name][row, length - count : length] = sources[owner][layer][name][-count:, unit_list]
                positions[row, length - count : length] = True
            interventions.append(Intervention(layer, unit_list, positions=positions, **values))
        return interventions

    return verb_log_probs(language_model, prefixes, verbs, interventions_for if units else None, batch_size)


def patching_experiment(language_model, swapped, ranking, prepare=None, top_units=10, group_sizes=(2, 4, 8, 16),
                        random_draws=20, seed=0, batch_size=256):
    """How often copying units from the plural prefix's run flips the singular run's preferred verb.

    Args:
        swapped: `templates.number_swapped_prefixes` output.
        ranking: `rank_units`' output.
        prepare: optional text -> text (`Scorer.prepare`).

    Returns:
        A dict with `pairs` (used), `pairs_skipped` (whose two tokenizations
        do not align after the noun), `eligible` (pairs whose unpatched run
        prefers the singular verb), `plural_run_prefers_plural` (the share of
        plural runs preferring the plural verb), `all_units` (flip rate when
        every unit is patched), `top` rows (units, size, flip_rate,
        mean_shift: mean change of ln p(plural verb) - ln p(singular verb))
        and `random` rows per size (flip rates, their mean and range, p_value).
    """
    check_experiment(top_units, group_sizes, random_draws, ranking)
    singular, plural, num_positions, kept = patch_spans(language_model, swapped, prepare)
    verbs = [(swapped[i]["singular_verb"], swapped[i]["plural_verb"]) for i in kept]
    if prepare is not None:
        verbs = [(prepare(a), prepare(b)) for a, b in verbs]
    sources = source_states(language_model, plural, batch_size)
    backbone = language_model.backbone

    def run(units):
        log_probs = patched_log_probs(language_model, singular, verbs, sources, num_positions, units, batch_size)
        return log_probs[:, 1] - log_probs[:, 0]  # ln p(plural verb) - ln p(singular verb)

    base = run([])
    eligible = base < 0
    plural_prefers = verb_log_probs(language_model, plural, verbs, batch_size=batch_size)

    def summary(margins):
        flips = eligible & (margins > 0)
        return (float(flips.sum() / max(eligible.sum(), 1)), float((margins - base)[eligible].mean())
                if eligible.any() else None)

    everything = [(layer, unit) for layer in range(backbone.num_layers) for unit in range(backbone.hidden_dim)]
    result = {"pairs": len(kept), "pairs_skipped": len(swapped) - len(kept), "eligible": int(eligible.sum()),
              "plural_run_prefers_plural": float((plural_prefers[:, 1] > plural_prefers[:, 0]).mean()),
              "all_units": summary(run(everything))[0], "top": [], "random": []}
    draws = {}
    experiment = _experiment_groups(ranking, top_units, group_sizes, random_draws, seed)
    for kind, size, units in tqdm(experiment, desc="patching", unit="group"):
        flip_rate, shift = summary(run(units))
        if kind == "top":
            result["top"].append({"size": size, "units": [list(u) for u in units], "flip_rate": flip_rate,
                                  "mean_shift": shift})
        else:
            draws.setdefault(size, []).append(flip_rate)
    for size, rates in draws.items():
        top_rate = next((row["flip_rate"] for row in result["top"] if row["size"] == size), None)
        rates = np.asarray(rates)
        result["random"].append({
            "size": size, "draws": len(rates), "flip_rates": rates.tolist(), "mean_flip_rate": float(rates.mean()),
            "range": (float(np.percentile(rates, 2.5)), float(np.percentile(rates, 97.5))),
            "p_value": None if top_rate is None else float((1 + (rates >= top_rate).sum()) / (1 + len(rates))),
        })
    logger.info("patching: %d pairs, %d eligible, all units flip %.3f", len(kept), eligible.sum(), result["all_units"])
    return result


# Report ---------------------------------------------------------------------------


def _interval_text(interval, digits=3):
    return "n/a" if interval is None else f"{interval[0]:+.{digits}f} to {interval[1]:+.{digits}f}"


def _score(value, signed=False):
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _unit_names(units):
    return ", ".join(f"L{layer}:{unit}" for layer, unit in units)


def _diagnostic_section(rows):
    table = [{
        "position": row["position"], "layer": row["layer"], "state": row["state"],
        "train / test items": f"{row['train_items']} / {row['test_items']}",
        "accuracy": _score(row["accuracy"]),
        "95% interval": "n/a" if row["interval"] is None else f"{row['interval'][0]:.3f}-{row['interval'][1]:.3f}",
        "majority": _score(row["majority"]), "control": _score(row["control_accuracy"]),
        "selectivity": _score(row["selectivity"], signed=True),
        "attractors / agreeing nouns": "" if "test_attractors" not in row else
        f"{_score(row['attractor_accuracy'])} ({row['test_attractors']}) / {_score(row['agreeing_noun_accuracy'])}",
    } for row in rows]
    return ["## Diagnostic classifiers", "",
            "Logistic regression from one layer's h or c at one position to the subject's number; trained on the "
            "training items, tested on the held-out items. Control: the same probe on Hewitt & Liang's control task "
            "(a random label per word type); selectivity = accuracy - control accuracy. At the intervening noun the "
            "accuracy is also split between attractors (count in brackets) and nouns agreeing with the subject: a "
            "probe that only reads the noun's own number gets every attractor wrong.", "",
            "![diagnostic classifiers](units_diagnostic.png)", "",
            markdown_table(table, ["position", "layer", "state", "train / test items", "accuracy", "95% interval",
                                   "majority", "control", "selectivity", "attractors / agreeing nouns"]), ""]


def _ranking_section(ranking):
    table = [{
        "rank": rank + 1, "unit": f"L{row['layer']}:{row['unit']}", "higher for": row["number"],
        "train AUC": _score(row["train_auc"]), "held-out AUC": _score(row["test_auc"]),
        "held-out mean (sg / pl)": f"{_score(row['test_mean_singular'])} / {_score(row['test_mean_plural'])}",
    } for rank, row in enumerate(ranking["units"])]
    return [f"## Unit ranking ({ranking['state']} at {ranking['position']})", "",
            "ROC AUC of one unit's value for plural against singular subjects (0.5 = no information; units ranked "
            "by |AUC - 0.5| on the training items).", "", "![ranking](units_ranking.png)", "",
            markdown_table(table, ["rank", "unit", "higher for", "train AUC", "held-out AUC",
                                   "held-out mean (sg / pl)"]), ""]


def _compared_with_random(row, rows):
    """A top row is compared with random draws when it is a group, or the single top-ranked unit."""
    return row["size"] > 1 or row["units"] == rows[0]["units"]


def _ablation_section(ablation, report_groups):
    draws = ablation["random"][0]["draws"] if ablation["random"] else 0
    random_rows = {(row["mode"], row["size"], row["group"]): row for row in ablation["random"]}
    table = []
    for row in ablation["top"]:
        if row["group"] not in report_groups:
            continue
        control = random_rows.get((row["mode"], row["size"], row["group"])) if _compared_with_random(
            row, ablation["top"]) else None
        table.append({
            "mode": row["mode"], "units": _unit_names(row["units"]), "items": escape_cell(row["group"]),
            "accuracy": _score(row["accuracy"]), "change": _score(row["delta"], signed=True),
            "95% interval": _interval_text(row["interval"]),
            "random: mean change": _score(control["mean_delta"], signed=True) if control else "",
            "random: range": _interval_text(control["range"]) if control else "",
            "p": _score(control["p_value"]) if control else "",
        })
    lines = ["## Ablation", "",
             "Change in agreement accuracy when the units' h is set to 0 (zero) or to its mean (mean) at every step. "
             "Top: the top-ranked units (95% paired bootstrap interval over items). Random: matched random units "
             "(same count per layer; no unit ranked in the top max(top units, group sizes)): mean change, 2.5-97.5 "
             "percentile range over draws, and p = (1 + draws with a change at most the top units') / (1 + draws), "
             f"so with {draws} draws p is at least {1 / (1 + draws):.3f}.", "",
             "![ablation](units_ablation.png)", "",
             "Baseline accuracy: " + ", ".join(f"{escape_cell(group)} {value:.3f}"
                                               for group, value in ablation["baseline"].items()), "",
             markdown_table(table, ["mode", "units", "items", "accuracy", "change", "95% interval",
                                    "random: mean change", "random: range", "p"]), ""]
    conditions = sorted({row["group"] for row in ablation["top"] if "/" in row["group"]})
    largest = max((row["size"] for row in ablation["top"]), default=1)
    if conditions:
        table = [{
            "condition": escape_cell(row["group"].split("/", 1)[1]), "mode": row["mode"],
            "baseline": _score(ablation["baseline"][row["group"]]), "ablated": _score(row["accuracy"]),
            "change": _score(row["delta"], signed=True), "95% interval": _interval_text(row["interval"]),
        } for row in ablation["top"] if row["group"] in conditions and row["size"] == largest]
        lines += [f"Per template condition, the top {largest} units:", "",
                  markdown_table(table, ["condition", "mode", "baseline", "ablated", "change", "95% interval"]), ""]
    return lines


def _patching_section(patching):
    random_rates = {row["size"]: row for row in patching["random"]}
    table = []
    for row in patching["top"]:
        control = random_rates[row["size"]] if _compared_with_random(row, patching["top"]) else None
        table.append({
            "units": _unit_names(row["units"]), "flip rate": _score(row["flip_rate"]),
            "mean shift (nats)": _score(row["mean_shift"], signed=True),
            "random: mean flip rate": _score(control["mean_flip_rate"]) if control else "",
            "random: range": "{:.3f}-{:.3f}".format(*control["range"]) if control else "",
            "p": _score(control["p_value"]) if control else "",
        })
    return ["## Activation patching", "",
            f"{patching['pairs']} template prefix pairs (singular / plural agreeing noun; {patching['pairs_skipped']} "
            f"skipped where the two tokenizations do not align), {patching['eligible']} of which the unpatched "
            "singular run prefers the singular verb. The units' h and c (h in a GRU) are copied from the plural run "
            "from the noun's last token to the end of the prefix. Plural runs preferring the plural verb: "
            f"{patching['plural_run_prefers_plural']:.3f}; flip rate when every unit is patched: "
            f"{patching['all_units']:.3f}. Random: matched random units; p = (1 + draws flipping at least as often) "
            "/ (1 + draws).", "", "![patching](units_patching.png)", "",
            markdown_table(table, ["units", "flip rate", "mean shift (nats)", "random: mean flip rate",
                                   "random: range", "p"]), ""]


def units_markdown(result, report_groups=("number prediction", "templates")):
    """The Markdown report of `probe_units`' result (see `textlstm.recipes.probes.probe_units`)."""
    lines = [f"# Number units and diagnostic classifiers: {escape_cell(result['title'])}", "",
             "## Protocol", "", protocol_markdown(result["protocol"]), "", "## Summary", ""]
    lines += [f"- {line}" for line in result["summary"]] + [""]
    lines += _diagnostic_section(result["diagnostic"])
    lines += _ranking_section(result["ranking"])
    lines += _ablation_section(result["ablation"], report_groups)
    lines += _patching_section(result["patching"])
    lines += ["## Unit traces", "",
              f"The top units' {result['ranking']['state']} over a minimal pair: {escape_cell(result['trace_texts'])}.",
              "", "![unit traces](units_traces.png)", ""]
    return "\n".join(lines)


def plot_diagnostic(rows, path):
    """Accuracy (with interval) and control accuracy of each diagnostic classifier, grouped by position."""
    names = [f"{row['position']} L{row['layer']} {row['state']}" for row in rows]
    figure, axis = plt.subplots(figsize=(8, 1.2 + 0.3 * len(rows)), layout="constrained")
    positions = np.arange(len(rows))
    values = [row["accuracy"] or 0.0 for row in rows]
    errors = [[v - (row["interval"] or (v, v))[0] for v, row in zip(values, rows)],
              [(row["interval"] or (v, v))[1] - v for v, row in zip(values, rows)]]
    axis.barh(positions, values, xerr=errors, color="tab:blue", ecolor="black", capsize=2, label="probe")
    axis.scatter([row["control_accuracy"] or 0.0 for row in rows], positions, color="tab:orange", marker="D",
                 zorder=3, label="control task")
    axis.scatter([row["majority"] or 0.0 for row in rows], positions, color="black", marker="|", s=200, zorder=3,
                 label="majority class")
    axis.set_yticks(positions, names, fontsize=8)
    axis.invert_yaxis()
    axis.set_xlim(0, 1)
    axis.set_xlabel("held-out accuracy (95% bootstrap interval)")
    axis.set_title("Diagnostic classifiers: subject number from h / c")
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_ranking(ranking, path):
    """Train and held-out AUC of the top-ranked units."""
    rows = ranking["units"]
    figure, axis = plt.subplots(figsize=(max(6, 0.4 * len(rows) + 2), 3.5), layout="constrained")
    positions = np.arange(len(rows))
    axis.bar(positions - 0.2, [row["train_auc"] for row in rows], width=0.4, label="train AUC")
    axis.bar(positions + 0.2, [row["test_auc"] or 0.5 for row in rows], width=0.4, label="held-out AUC")
    axis.axhline(0.5, color="gray", linestyle=":")
    axis.set_xticks(positions, [f"L{row['layer']}:{row['unit']}" for row in rows], rotation=60, fontsize=8)
    axis.set_ylim(0, 1)
    axis.set_ylabel("ROC AUC (plural vs singular)")
    axis.set_title(f"Units by number information ({ranking['state']} at {ranking['position']})")
    axis.legend(fontsize=8)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_ablation(ablation, path, report_groups=("number prediction", "templates")):
    """Accuracy change of the top units (with interval) against the random draws, per mode, size and item set."""
    groups = [g for g in report_groups if g in ablation["baseline"]]
    figure, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 4), squeeze=False, layout="constrained")
    random_rows = {(row["mode"], row["size"], row["group"]): row for row in ablation["random"]}
    for axis, group in zip(axes[0], groups):
        keys = sorted({(row["mode"], row["size"]) for row in ablation["random"] if row["group"] == group})
        for x, key in enumerate(keys):
            deltas = random_rows[(*key, group)]["deltas"]
            axis.scatter(np.full(len(deltas), x) + np.linspace(-0.15, 0.15, len(deltas)), deltas, color="gray",
                         s=10, label="random units" if x == 0 else None)
            top = next(row for row in ablation["top"] if (row["mode"], row["size"], row["group"]) == (*key, group))
            axis.errorbar([x + 0.3], [top["delta"]], yerr=[[top["delta"] - top["interval"][0]],
                                                           [top["interval"][1] - top["delta"]]],
                          fmt="D", color="tab:red", capsize=3, label="top units" if x == 0 else None)
        axis.axhline(0.0, color="black", linewidth=0.5)
        axis.set_xticks(range(len(keys)), [f"{mode}\n{size}" for mode, size in keys], fontsize=8)
        axis.set_ylabel("change in agreement accuracy")
        axis.set_title(f"Ablation: {group} (baseline {ablation['baseline'][group]:.3f})")
        axis.legend(fontsize=8)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_patching(patching, path):
    """Flip rate of the top units against the random draws, per group size."""
    figure, axis = plt.subplots(figsize=(6, 4), layout="constrained")
    for x, row in enumerate(sorted(patching["random"], key=lambda r: r["size"])):
        rates = row["flip_rates"]
        axis.scatter(np.full(len(rates), x) + np.linspace(-0.15, 0.15, len(rates)), rates, color="gray", s=10,
                     label="random units" if x == 0 else None)
        top = next(r for r in patching["top"] if r["size"] == row["size"])
        axis.scatter([x + 0.3], [top["flip_rate"]], color="tab:red", marker="D", label="top units" if x == 0 else None)
    axis.axhline(patching["all_units"], color="tab:green", linestyle="--", label="every unit patched")
    sizes = sorted(row["size"] for row in patching["random"])
    axis.set_xticks(range(len(sizes)), [str(size) for size in sizes])
    axis.set_xlabel("units patched")
    axis.set_ylabel("singular -> plural verb flips")
    axis.set_ylim(-0.02, 1.02)
    axis.set_title("Activation patching from the plural prefix")
    axis.legend(fontsize=8)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_units_report(result, directory, traces=None):
    """Writes units.md, units.json and the PNGs (diagnostic, ranking, ablation, patching, traces) to `directory`.

    Args:
        result: the dict `textlstm.recipes.probes.probe_units` builds.
        traces: optional (list of `CellTrace`, units) for the unit-trace plot.

    Returns:
        dict name -> path.
    """
    os.makedirs(directory, exist_ok=True)
    paths = {name: os.path.join(directory, f"units_{name}.png")
             for name in ("diagnostic", "ranking", "ablation", "patching", "traces")}
    for name, plot, data in (("diagnostic", plot_diagnostic, result["diagnostic"]),
                             ("ranking", plot_ranking, result["ranking"]),
                             ("ablation", plot_ablation, result["ablation"]),
                             ("patching", plot_patching, result["patching"])):
        with atomic_path(paths[name]) as temporary_path:
            plot(data, temporary_path)
    if traces is not None:
        state = result["ranking"]["state"]
        plot_unit_traces(traces[0], traces[1], paths["traces"], gate=state, title=f"top units' {state}")
    else:
        del paths["traces"]
    paths["markdown"] = os.path.join(directory, "units.md")
    paths["json"] = os.path.join(directory, "units.json")
    write_text(units_markdown(result), paths["markdown"])
    write_json(result, paths["json"])
    return paths
