"""Export runs for TF Serving and call each export the way a client would: a thin wrapper over textlstm's API.

    python scripts/export.py runs/ptb_small:ptb_small runs/sst2_bilstm:sst2 [--base-dir saved_models]

Each RUN:NAME becomes the next version of BASE/NAME (raw strings in, tokenization in the graph); the
script then reloads every export with `tf.saved_model.load`, calls each signature that takes text on
two sentences, and prints the REST request body (`textlstm.serving.rest_request`) and the answer.
`export` keeps BASE/models.config up to date for serving them all at once.
"""

import argparse
import json
import logging
import os

import tensorflow as tf

from textlstm import serving
from textlstm.recipes import export_run

SENTENCES = ["The keys to the cabinet are on the table.", "a gorgeous , witty , seductive movie ."]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN:NAME", help="run directory and model name")
    parser.add_argument("--base-dir", default="saved_models")
    args = parser.parse_args()
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for pair in args.runs:
        run_dir, _, name = pair.rpartition(":")
        if not run_dir or not name:
            parser.error(f"expected RUN:NAME, received {pair!r}")
        version_dir = export_run(run_dir, name, args.base_dir)
        loaded = tf.saved_model.load(version_dir)
        for signature_name in sorted(loaded.signatures):
            if signature_name == "ids":
                continue  # it takes token ids; `serving.predict_request(NAME, {"token_ids": ..., "lengths": ...}, "ids")`
            body = serving.rest_request({"texts": SENTENCES}, signature_name)
            outputs = loaded.signatures[signature_name](texts=tf.constant(SENTENCES))
            print(f"{version_dir} {signature_name}: request {json.dumps(body)}")
            for key, value in sorted(outputs.items()):
                print(f"  {key}: {json.dumps(serving.to_jsonable(value.numpy()))[:200]}")
    print(f"TF Serving config for all of them: {os.path.join(args.base_dir, 'models.config')}")


if __name__ == "__main__":
    main()
