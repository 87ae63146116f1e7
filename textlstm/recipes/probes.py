"""The probe recipes: a scorer and probe data in, a report folder out.

    run dir (model.keras) ─┐
                           ├─► Scorer ─► minimal pairs | SyntaxGym | number prediction | templates
    SavedModel export ─────┘                 └─► OUTPUT/<probe>.{json,md,png} + <probe>_items.jsonl

    run dir ─► LanguageModel ─► gates.unroll ─► diagnostic classifiers | unit ranking, ablation, patching
                                                   └─► OUTPUT/units.{md,json} + units_*.png

Each report opens with its protocol: the scorer's (start token, state
initialisation, text preparation, tokenizer, model and its test perplexity)
plus the probe's (method, normalization, unk policy, interval).
"""

import logging
import os

from textlstm.data.number_agreement import read_number_items
from textlstm.models import ClassifierEnsemble, LanguageModel
from textlstm.probes import diagnostic, gates, minimal_pairs, number_prediction, number_units, syntaxgym, templates
from textlstm.probes.scorer import KerasScorer
from textlstm.recipes.run_steps import load_run_model

logger = logging.getLogger(__name__)

DEFAULT_BLIMP_DIR = "../shared/data/blimp"
# Marvin & Linzen (2018), Table 2, their LSTM LM (accuracy per condition).
MARVIN_LINZEN_LSTM = {
    "simple_agreement": 1.00, "sentential_complement": 0.98, "short_vp_coordination": 0.92,
    "long_vp_coordination": 0.74, "across_prepositional_phrase": 0.68, "across_subject_relative_clause": 0.60,
    "across_object_relative_clause": 0.52, "across_object_relative_clause_no_that": 0.51,
    "within_object_relative_clause": 0.88,
}
# Warstadt et al. (2020), Table 4, their LSTM LM (trained on ~80M words of Wikipedia), per phenomenon.
BLIMP_PAPER_LSTM = {"subject_verb_agreement": 0.801, "determiner_noun_agreement": 0.854,
                    "anaphor_agreement": 0.917, "overall": 0.698}


def probe_minimal_pairs(scorer, output_dir, files=None, blimp_dir=None, paradigms=None, linguistics_terms=None,
                        method="full", normalization="sum", unk="score", stem="minimal_pairs"):
    """Minimal-pair accuracy of `scorer` on JSONL files or BLiMP paradigms; writes the report.

    Args:
        scorer: a `textlstm.probes.Scorer`.
        output_dir: the report folder.
        files: JSONL files of pairs; or
        blimp_dir: BLiMP's folder, with optional `paradigms` / `linguistics_terms` filters.
        method, normalization, unk: see `textlstm.probes.minimal_pairs`.

    Returns:
        The result dict (without item records).
    """
    if bool(files) == bool(blimp_dir):
        raise ValueError(f"give `files` or `blimp_dir`, not both or neither: received files={files!r}, "
                         f"blimp_dir={blimp_dir!r}.")
    if files:
        pairs = [pair for path in files for pair in minimal_pairs.read_minimal_pairs(path)]
    else:
        pairs = minimal_pairs.read_blimp(blimp_dir, paradigms, linguistics_terms)
    result = minimal_pairs.evaluate_minimal_pairs(scorer, pairs, method=method, normalization=normalization, unk=unk)
    title = f"Minimal pairs ({method}, {len(pairs)} pairs)"
    whole_blimp = blimp_dir and not paradigms and not linguistics_terms  # the paper's overall is over all 67
    references = BLIMP_PAPER_LSTM if whole_blimp else {k: v for k, v in BLIMP_PAPER_LSTM.items() if k != "overall"}
    paths = minimal_pairs.write_minimal_pairs_report(result, output_dir, stem=stem, title=title,
                                                     references=references if blimp_dir else None)
    logger.info("minimal-pair report: %s", paths[1])
    return {k: v for k, v in result.items() if k != "items"}


def probe_templates(scorer, output_dir, conditions=None, max_pairs_per_condition=0, method="full",
                    normalization="sum", unk="score", seed=0):
    """Marvin & Linzen (2018) conditions: generates the pairs (kept as `templates_pairs.jsonl`), scores them."""
    pairs_path = os.path.join(output_dir, "templates_pairs.jsonl")
    os.makedirs(output_dir, exist_ok=True)
    templates.write_pairs(templates.generate_pairs(conditions, max_pairs_per_condition, seed), pairs_path)
    pairs = minimal_pairs.read_minimal_pairs(pairs_path)
    result = minimal_pairs.evaluate_minimal_pairs(scorer, pairs, method=method, normalization=normalization, unk=unk)
    minimal_pairs.write_minimal_pairs_report(result, output_dir, stem="templates", references=MARVIN_LINZEN_LSTM,
                                             title=f"Marvin & Linzen (2018) templates ({method}); "
                                                   f"red: their LSTM")
    return {k: v for k, v in result.items() if k != "items"}


def probe_syntaxgym(scorer, output_dir, suite_paths):
    """Accuracy of `scorer` on SyntaxGym test suites; one report per suite. Returns {suite name: accuracy}."""
    accuracies = {}
    for path in suite_paths:
        result = syntaxgym.evaluate_suite(scorer, syntaxgym.load_suite(path))
        syntaxgym.write_syntaxgym_report(result, output_dir)
        accuracies[result["suite"]] = result["accuracy"]
    return accuracies


def probe_number(scorer, output_dir, conllu_path, unk="score"):
    """Linzen et al. (2016) number prediction from a UD CoNLL-U file, answered by the language model."""
    items = read_number_items(conllu_path)
    result = number_prediction.evaluate_number_prediction(scorer, items, unk=unk)
    number_prediction.write_number_prediction_report(
        result, output_dir, title=f"Number prediction by the LM, {os.path.basename(conllu_path)}")
    return {k: v for k, v in result.items() if k != "items"}


DEFAULT_UD_DIR = "../shared/data/ud_english_ewt"


def probe_units(scorer, output_dir, train_conllu, test_conllus, top_units=10, group_sizes=(2, 4, 8, 16),
                random_draws=20, modes=number_units.ABLATIONS, max_pairs_per_condition=100, ranking_size=20,
                seed=0):
    """Diagnostic classifiers, number-unit ranking, ablation and patching of a language model; one report.

    Args:
        scorer: a `KerasScorer` (the probes read the model's states, so a
            SavedModel will not do); its `prepare` spells the text.
        output_dir: the report folder (units.md, units.json, PNGs).
        train_conllu: UD file whose number items train the diagnostic
            classifiers and rank the units (and give the means of mean ablation).
        test_conllus: UD files of the held-out items (diagnostic tests,
            held-out AUC, ablation's number-prediction set).
        top_units, group_sizes, random_draws, modes: see
            `number_units.ablation_experiment`; patching uses the same groups.
        max_pairs_per_condition: template pairs sampled per Marvin & Linzen
            condition, for ablation and patching.
        ranking_size: units listed in the report.

    Returns:
        The result dict (also in units.json).
    """
    language_model = scorer.language_model
    train_items = read_number_items(train_conllu)
    test_items = [item for path in test_conllus for item in read_number_items(path)]
    train = diagnostic.collect_states(language_model, train_items, scorer.prepare)
    test = diagnostic.collect_states(language_model, test_items, scorer.prepare)
    diagnostics = diagnostic.diagnostic_classifiers(train, test, seed=seed)
    ranking = number_units.rank_units(train, test)
    number_units.check_experiment(top_units, group_sizes, random_draws, ranking)
    pairs = templates.generate_pairs(max_pairs_per_condition=max_pairs_per_condition, seed=seed)
    choices = (number_units.number_item_choices(test_items, scorer.prepare)
               + number_units.template_choices(pairs, scorer.prepare))
    ablation = number_units.ablation_experiment(language_model, choices, ranking, train.mean_h, top_units,
                                                group_sizes, random_draws, modes, seed)
    swapped = templates.number_swapped_prefixes(max_pairs_per_condition=max_pairs_per_condition, seed=seed)
    patching = number_units.patching_experiment(language_model, swapped, ranking, scorer.prepare, top_units,
                                                group_sizes, random_draws, seed)
    example = next((pair for pair in swapped if pair["condition"] == "across_object_relative_clause"), swapped[0])
    texts = [scorer.prepare(f"{example['singular_prefix']} {example['singular_verb']}"),
             scorer.prepare(f"{example['plural_prefix']} {example['plural_verb']}")]
    top = [(row["layer"], row["unit"]) for row in ranking[:3]]
    result = {
        "title": str(scorer.description.get("model", "language model")),
        "protocol": {
            **scorer.protocol(),
            "states": "read by textlstm.probes.gates.unroll (the model's weights, step by step), zero initial "
                      "state, after the start token; each word prepared on its own",
            "training items": f"{len(train_items)} number items from {os.path.basename(train_conllu)}",
            "held-out items": f"{len(test_items)} number items from "
                              + ", ".join(os.path.basename(p) for p in test_conllus),
            "template pairs": f"{len(pairs)} for ablation and {patching['pairs']} number-swapped prefix pairs "
                              f"for patching ({max_pairs_per_condition} per condition at most, seed {seed})",
            "diagnostic classifier": "scikit-learn LogisticRegression (L2, C=1) on standardized features; control "
                                     "task: a random label per word type at the position, plural with the training "
                                     "plural rate (Hewitt & Liang 2019)",
            "agreement decision": "ln p(correct verb | prefix) > ln p(wrong verb | prefix), a verb's tokens summed",
            "random controls": f"{random_draws} draws per group size, same units per layer, top units excluded",
            "intervals": "95% bootstrap over items (1000 resamples); random: 2.5-97.5 percentiles over draws",
        },
        "diagnostic": diagnostics,
        "ranking": {"position": "before_verb", "state": ranking[0]["state"], "units": ranking[:ranking_size]},
        "ablation": ablation,
        "patching": patching,
        "trace_texts": " / ".join(texts),
    }
    result["summary"] = _units_summary(result)
    traces = (gates.inspect(language_model, texts), top)
    paths = number_units.write_units_report(result, output_dir, traces)
    logger.info("units report: %s", paths["markdown"])
    return result


def _units_summary(result):
    """Plain sentences stating the report's main numbers, each next to its control."""
    lines = []
    before_verb = [row for row in result["diagnostic"]
                   if row["position"] == "before_verb" and row["selectivity"] is not None]
    if before_verb:
        best = max(before_verb, key=lambda row: row["selectivity"])
        lines.append(f"Diagnostic classifiers before the verb: best layer {best['layer']} {best['state']}, accuracy "
                     f"{best['accuracy']:.3f} (majority {best['majority']:.3f}, control {best['control_accuracy']:.3f},"
                     f" selectivity {best['selectivity']:+.3f}).")
    top = result["ranking"]["units"][0]
    held_out = "n/a" if top["test_auc"] is None else f"{top['test_auc']:.3f}"
    lines.append(f"Strongest single unit: layer {top['layer']} unit {top['unit']} ({top['state']} higher for "
                 f"{top['number']} subjects), AUC {top['train_auc']:.3f} on training items, {held_out} held out.")
    ablation = result["ablation"]
    controls = {(row["mode"], row["size"], row["group"]): row for row in ablation["random"]}
    largest = max(row["size"] for row in ablation["top"])
    for row in _first_rows(ablation["top"], lambda r: (r["mode"], r["size"], r["group"])):
        if row["group"] != "number prediction" or row["size"] not in (1, largest):
            continue
        control = controls[(row["mode"], row["size"], row["group"])]
        lines.append(f"{row['mode'].capitalize()}-ablating the top {row['size']} unit(s) changes number-prediction "
                     f"accuracy by {row['delta']:+.3f} (95% {row['interval'][0]:+.3f} to {row['interval'][1]:+.3f})"
                     f"; {control['draws']} matched random groups: mean {control['mean_delta']:+.3f}, range "
                     f"{control['range'][0]:+.3f} to {control['range'][1]:+.3f}, p = {control['p_value']:.3f}.")
    patching = result["patching"]
    rates = {row["size"]: row for row in patching["random"]}
    for row in (patching["top"][0], max(patching["top"], key=lambda r: r["size"])):
        control = rates[row["size"]]
        lines.append(f"Patching {row['size']} top unit(s) ({', '.join(f'L{l}:{u}' for l, u in row['units'])}) from "
                     f"the plural prefix flips {row['flip_rate']:.3f} of singular preferences; random: mean "
                     f"{control['mean_flip_rate']:.3f}, p = {control['p_value']:.3f}; every unit: "
                     f"{patching['all_units']:.3f}.")
    return lines


def _first_rows(rows, key):
    """The first row of each key, in order (the top-ranked unit stands for the single-unit rows)."""
    first = {}
    for row in rows:
        first.setdefault(key(row), row)
    return list(first.values())


def inspect_run(run_dir, texts, output_dir=None, prepare="auto", units=None, gate="c"):
    """Every gate of a run's model (any task) over each text: one `.npz` and one heatmap PNG per layer and direction.

    Args:
        run_dir: a run directory with `model.keras` (language model or classifier; an ensemble run is
            refused: inspect one of its members, `run_dir/member_k`).
        texts: list of str.
        output_dir: where the files go (default: RUN/inspect).
        prepare: a language model's text preparation ("auto", "ptb", "none",
            as the scorer's); classifiers read the text as given.
        units: optional list of (layer, unit): also plot their `gate` over
            all the texts in one figure, `unit_traces.png` (e.g. a minimal
            pair, "the cat ... was" / "the cats ... were").

    Returns:
        A list (per text) of dicts: text, tokens, arrays (.npz path), heatmaps (PNG paths).
    """
    model = load_run_model(run_dir)
    if isinstance(model, ClassifierEnsemble):
        raise ValueError(f"{run_dir} holds an ensemble of {len(model.members)} classifiers; inspect one of them, "
                         f"e.g. --run-dir {os.path.join(run_dir, 'member_1')}.")
    if isinstance(model, LanguageModel):
        texts = [KerasScorer(model, prepare).prepare(text) for text in texts]
    output_dir = output_dir or os.path.join(run_dir, "inspect")
    results = []
    traces = gates.inspect(model, texts)
    if units:
        gates.check_units(traces[0], units, gate)
    for index, trace in enumerate(traces):
        stem = os.path.join(output_dir, f"text{index}")
        os.makedirs(output_dir, exist_ok=True)
        gates.save_trace(trace, f"{stem}.npz")
        heatmaps = []
        for layer, directions in enumerate(trace.layers):
            for direction in directions:
                heatmaps.append(f"{stem}_layer{layer}_{direction}.png")
                gates.plot_gate_heatmap(trace, heatmaps[-1], layer, direction)
        results.append({"text": trace.text, "tokens": trace.tokens, "arrays": f"{stem}.npz", "heatmaps": heatmaps})
    if units:
        gates.plot_unit_traces(traces, units, os.path.join(output_dir, "unit_traces.png"), gate=gate)
    return results
