"""The probe recipes: a scorer and probe data in, a report folder out.

    run dir (model.keras) ─┐
                           ├─► Scorer ─► minimal pairs | SyntaxGym | number prediction | templates
    SavedModel export ─────┘                 └─► OUTPUT/<probe>.{json,md,png} + <probe>_items.jsonl

Each report opens with its protocol: the scorer's (start token, state
initialisation, text preparation, tokenizer, model and its test perplexity)
plus the probe's (method, normalization, unk policy, interval).
"""

import logging
import os

from textlstm.data.number_agreement import read_number_items
from textlstm.probes import minimal_pairs, number_prediction, syntaxgym, templates

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
