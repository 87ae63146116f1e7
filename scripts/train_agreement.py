"""Train a number-agreement classifier from a config: a thin wrapper over textlstm's public API.

    python scripts/train_agreement.py --config configs/agreement_ud.json [key=value ...]

Linzen et al. (2016) number prediction on UD English EWT; writes the run
directory the config names, with report.{md,json,png} by attractor count.
"""

import argparse
import json
import logging

import textlstm


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/agreement_ud.json")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = textlstm.load_config(textlstm.AgreementConfig, args.config, args.overrides)
    metrics = textlstm.train_agreement(config)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
