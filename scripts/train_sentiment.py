"""Train a sentiment classifier from a config: a thin wrapper over textlstm's public API.

    python scripts/train_sentiment.py --config configs/sst2_bilstm.json [key=value ...]

Same as `textlstm train classifier`; writes the run directory the config names.
"""

import argparse
import json
import logging

import textlstm


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/sst2_bilstm.json")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = textlstm.load_config(textlstm.SentimentConfig, args.config, args.overrides)
    metrics = textlstm.train_sentiment(config)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
