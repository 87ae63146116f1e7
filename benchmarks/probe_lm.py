"""The probes' LM: a SentencePiece LSTM LM on the text available here (no test split), then every probe on it.

    python benchmarks/probe_lm.py [--runs runs] [lm overrides ...]

1. Writes the training text to RUNS/probe_lm_corpus/train.txt: UD English EWT
   train sentences (cased, punctuated: the `# text` lines), the SST training
   sentences (Kim 2014's stsa.fine.train), MR, and PTB train with its `<unk>`
   tokens removed. EWT dev and test sentences become the validation and test
   files. Never in it: EWT dev/test, SST dev/test, BLiMP, SyntaxGym.
2. Trains a 2x200 LSTM LM (`train lm`, RUNS/probe_lm) with a lowercasing
   unigram SentencePiece tokenizer (Kudo 2018), so no probe word is `<unk>`;
   its sizes match `configs/agreement_ud.json`, so it can also initialise the
   agreement classifier (`pretrained_lm=RUNS/probe_lm`).
3. Runs scripts/run_probes.py's probes on it into RUNS/probe_lm/probes.
"""

import argparse
import json
import logging
import os
import subprocess
import sys

import textlstm
from textlstm.data import read_conllu, read_lines, read_sentiment_dataset

LM_SETTINGS = [  # PTB-small's shape and schedule (Zaremba et al. 2014), SentencePiece instead of words
    "tokenizer=unigram", "vocabulary_size=8000", "lowercase=true", "mode=stream", "embedding_dim=200",
    "hidden_dim=200", "num_layers=2", "dropout=0.1", "tie_weights=true", "sampled_softmax=1024",
    "epochs=3", "lr_decay_start_epoch=3", "time_budget_minutes=25", "early_stopping_patience=0",
    "num_samples=3", "verbose=2",
]


def ewt_text(path):
    return [sentence.text for sentence in read_conllu(path) if sentence.text.strip()]


def write_corpus(directory, data_dir):
    """Writes train.txt, valid.txt (EWT dev), test.txt (EWT test); returns their paths and the train line count."""
    ewt = os.path.join(data_dir, "ud_english_ewt")
    lines = ewt_text(os.path.join(ewt, "en_ewt-ud-train.conllu"))
    lines += read_sentiment_dataset("sst5_kim2014", "train", data_dir).texts
    lines += read_sentiment_dataset("mr", "all", data_dir).texts
    lines += [" ".join(w for w in line.split() if w != "<unk>")
              for line in read_lines(os.path.join(data_dir, "ptb", "ptb.train.txt"))]
    os.makedirs(directory, exist_ok=True)
    paths = {}
    for name, texts in (("train", lines), ("valid", ewt_text(os.path.join(ewt, "en_ewt-ud-dev.conllu"))),
                        ("test", ewt_text(os.path.join(ewt, "en_ewt-ud-test.conllu")))):
        paths[name] = os.path.join(directory, f"{name}.txt")
        with open(paths[name], "w", encoding="utf-8") as f:
            f.write("\n".join(t for t in texts if t.strip()) + "\n")
    return paths, len(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("lm_overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    paths, count = write_corpus(os.path.join(args.runs, "probe_lm_corpus"), args.data_dir)
    lm_run = os.path.join(args.runs, "probe_lm")
    config = textlstm.load_config(textlstm.LanguageModelConfig, None, [
        f"train_file={paths['train']}", f"valid_file={paths['valid']}", f"test_file={paths['test']}",
        f"run_dir={lm_run}", *LM_SETTINGS, *args.lm_overrides])
    metrics = textlstm.train_language_model(config)
    print(json.dumps({"corpus_lines": count, **{k: v for k, v in metrics.items() if k != "samples"}}, indent=2))
    subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "..", "scripts", "run_probes.py"),
                    "--run-dir", lm_run, "--data-dir", args.data_dir], check=True)


if __name__ == "__main__":
    main()
