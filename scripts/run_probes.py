"""Run every agreement probe on one language model: a thin wrapper over textlstm's public API.

    python scripts/run_probes.py --run-dir runs/ptb_small [--output-dir DIR]
    python scripts/run_probes.py --saved-model saved_models/ptb_small/1 --output-dir probes/ptb_small

BLiMP (all 67 paradigms), the Marvin & Linzen (2018) templates, Linzen et al. (2016)
number prediction on UD EWT test, and the SyntaxGym sample suites; each writes
`<probe>.{json,md,png}` and item-level JSONL into the output folder (default RUN/probes).
`textlstm probe ...` runs them one at a time.
"""

import argparse
import glob
import json
import logging
import os
import time

from textlstm.probes import load_scorer
from textlstm.recipes import probes


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--run-dir")
    model.add_argument("--saved-model")
    parser.add_argument("--output-dir")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--prepare", choices=("auto", "ptb", "none"), default="auto")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scorer = load_scorer(run_dir=args.run_dir, saved_model=args.saved_model, prepare=args.prepare)
    output_dir = args.output_dir or os.path.join(args.run_dir or ".", "probes")
    seconds, summary = {}, {}
    start = time.perf_counter()
    summary["blimp"] = probes.probe_minimal_pairs(scorer, output_dir, blimp_dir=os.path.join(args.data_dir, "blimp"),
                                                  stem="blimp")
    seconds["blimp"] = time.perf_counter() - start
    start = time.perf_counter()
    summary["templates"] = probes.probe_templates(scorer, output_dir)
    seconds["templates"] = time.perf_counter() - start
    start = time.perf_counter()
    summary["number"] = probes.probe_number(
        scorer, output_dir, os.path.join(args.data_dir, "ud_english_ewt", "en_ewt-ud-test.conllu"))
    seconds["number"] = time.perf_counter() - start
    summary["syntaxgym"] = probes.probe_syntaxgym(
        scorer, output_dir, sorted(glob.glob(os.path.join(args.data_dir, "syntaxgym_sample", "json", "*.json"))))
    print(json.dumps({
        "blimp": {row["name"]: row["accuracy"] for row in [summary["blimp"]["overall"],
                                                          *summary["blimp"]["by_linguistics_term"]]},
        "templates": {row["name"]: row["accuracy"] for row in summary["templates"]["by_paradigm"]},
        "number_prediction": {row["name"]: row["accuracy"] for row in [summary["number"]["overall"],
                                                                      *summary["number"]["by_attractors"]]},
        "syntaxgym": summary["syntaxgym"],
        "seconds": seconds,
        "protocol": summary["blimp"]["protocol"],
    }, indent=2))


if __name__ == "__main__":
    main()
