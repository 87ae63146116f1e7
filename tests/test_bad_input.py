"""A catalogue of bad input, through the command line as a user meets it.

Every case asserts the exit code, a message that names what was wrong
(file, line, field or value), no traceback for a user error, and that
nothing already saved changed: the language-model run, the classifier run
and the exports are hashed before and after each case.
"""

import hashlib
import json
import os
import re
import shutil

import keras
import numpy as np
import pytest

from conftest import skip_export_extras
from textlstm.cli import main

TINY_LM = ["max_train_lines=300", "max_eval_lines=50", "embedding_dim=16", "hidden_dim=16", "num_layers=1",
           "sampled_softmax=256", "epochs=1", "num_samples=0", "verbose=0", "checkpoint_every_steps=0"]
TINY_CLASSIFIER = ["max_train_lines=300", "vocabulary_size=2000", "embedding_dim=8", "hidden_dim=4", "epochs=1",
                   "verbose=0", "checkpoint_every_steps=0"]


def tree_digest(*roots):
    """sha256 of every file under `roots` (path and bytes): any change, addition or removal shows."""
    digest = hashlib.sha256()
    for root in roots:
        for folder, _, files in sorted(os.walk(root)):
            for name in sorted(files):
                path = os.path.join(folder, name)
                digest.update(os.path.relpath(path, root).encode())
                with open(path, "rb") as f:
                    digest.update(f.read())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def saved(tmp_path_factory, ptb_dir, shared_data):
    """What each case must leave untouched: an LM run, a classifier run, an export; and a folder of bad files."""
    root = tmp_path_factory.mktemp("bad_input")
    lm_run = root / "lm"
    assert main(["train", "lm", f"train_file={ptb_dir / 'ptb.train.txt'}", f"valid_file={ptb_dir / 'ptb.valid.txt'}",
                 f"test_file={ptb_dir / 'ptb.test.txt'}", f"run_dir={lm_run}", *TINY_LM]) == 0
    classifier_run = root / "classifier"
    assert main(["train", "classifier", f"data_dir={shared_data}", f"run_dir={classifier_run}", *TINY_CLASSIFIER]) == 0
    exports = root / "saved_models"
    with pytest.MonkeyPatch.context() as patch:
        skip_export_extras(patch)
        assert main(["export", str(classifier_run), "--name", "sst2", "--base-dir", str(exports)]) == 0
    files = root / "files"
    files.mkdir()
    write = {
        "empty.txt": b"",
        "few_words.txt": b"a b c\nd e\n",
        "blank_lines.txt": b"\n   \n\t\n",
        "bad_utf8.txt": b"the company said\nit was \xff\xfe fine\n",
        "latin1.txt": "a caf\xe9 that is not utf-8\n".encode("latin-1"),
        "long_line.txt": ("the company said " * 2000 + "\n").encode(),
        "missing_column.tsv": b"sentence\tlabel\na fine film\t1\nno label here\n",
        "extra_tab.tsv": b"sentence\tlabel\na fine\tfilm\t1\n",
        "unknown_label.tsv": b"sentence\tlabel\na fine film\t7\n",
        "bad_prefix_label.txt": b"1 a fine film\nx a bad label\n",
        "bad_config.json": b'{"epochs": 2,\n  "hidden_dim": }\n',
        "list_config.json": b"[1, 2]\n",
        "blimp_missing_field.jsonl": b'{"sentence_good": "The dog runs.", "UID": "x"}\n',
        "blimp_not_json.jsonl": b'{"sentence_good": "The dog runs.", "sentence_bad": "The dog run."}\n{oops\n',
        "bad.conllu": b"# sent_id = 1\n1\tThe\tthe\tDET\n\n",
        "bad_id.conllu": b"# sent_id = 1\nx\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n\n",
    }
    for name, content in write.items():
        (files / name).write_bytes(content)
    suite = json.loads((shared_data / "syntaxgym_sample" / "json" / "cleft.json").read_text())
    bad_formula = json.loads(json.dumps(suite))
    bad_formula["predictions"][0]["formula"] = "[(6;%np_mismatch%)-(6;%np_match%)>"
    (files / "bad_formula.json").write_text(json.dumps(bad_formula))
    missing_region = json.loads(json.dumps(suite))
    del missing_region["items"][0]["conditions"][0]["regions"][5]
    (files / "missing_region.json").write_text(json.dumps(missing_region))
    foreign = root / "foreign_run"  # a Keras model, but not a textlstm one
    foreign.mkdir()
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(foreign / "model.keras")
    truncated = root / "truncated_run"
    shutil.copytree(lm_run, truncated)
    model_bytes = (truncated / "model.keras").read_bytes()
    (truncated / "model.keras").write_bytes(model_bytes[: len(model_bytes) // 2])
    return {"lm": lm_run, "foreign": foreign, "classifier": classifier_run, "exports": exports, "files": files,
            "truncated": truncated, "root": root}


# (id, argv as a function of the `saved` dict, exit code, regex the error output must match)
CASES = [
    # Missing files and folders.
    ("missing train file", lambda s: ["train", "lm", f"train_file={s['files'] / 'nope.txt'}", f"run_dir={s['root'] / 'new'}"],
     2, r"nope\.txt"),
    ("missing run dir", lambda s: ["score", "--run-dir", str(s["root"] / "no_run"), "a"], 2, r"no_run"),
    ("missing config file", lambda s: ["train", "lm", "--config", str(s["files"] / "nope.json")], 2,
     r"config file not found: .*nope\.json"),
    ("missing evaluation file", lambda s: ["evaluate", "lm", "--run-dir", str(s["lm"]), "--file",
                                           str(s["files"] / "nope.txt")], 2, r"nope\.txt"),
    ("missing BLiMP folder", lambda s: ["probe", "minimal-pairs", "--run-dir", str(s["lm"]), "--blimp-dir",
                                        str(s["files"] / "no_blimp")], 2, r"no_blimp"),
    # Empty files and lines.
    ("empty evaluation file", lambda s: ["evaluate", "lm", "--run-dir", str(s["lm"]), "--file",
                                         str(s["files"] / "empty.txt")], 2, r"empty\.txt"),
    ("whitespace-only lines", lambda s: ["evaluate", "lm", "--run-dir", str(s["lm"]), "--file",
                                         str(s["files"] / "blank_lines.txt")], 2, r"blank_lines\.txt"),
    ("empty training file", lambda s: ["train", "lm", f"train_file={s['files'] / 'empty.txt'}",
                                       f"run_dir={s['root'] / 'new'}"], 2, r"empty\.txt"),
    # Encodings.
    ("invalid UTF-8", lambda s: ["score", "--run-dir", str(s["lm"]), "--file", str(s["files"] / "bad_utf8.txt")],
     2, r"bad_utf8\.txt:2: .*not valid utf-8"),
    ("Latin-1 read as UTF-8", lambda s: ["evaluate", "lm", "--run-dir", str(s["lm"]), "--file",
                                         str(s["files"] / "latin1.txt")], 2, r"latin1\.txt:1: .*encoding="),
    ("unknown encoding name", lambda s: ["train", "lm", "encoding=utf-9", f"run_dir={s['root'] / 'new'}"], 2,
     r"field `encoding` must be a text encoding.*'utf-9'"),
    # Labeled files.
    ("TSV missing column", lambda s: ["evaluate", "classifier", "--run-dir", str(s["classifier"]), "--file",
                                      str(s["files"] / "missing_column.tsv")], 2, r"missing_column\.tsv:3: expected 2 tab-separated fields"),
    ("TSV extra tab", lambda s: ["evaluate", "classifier", "--run-dir", str(s["classifier"]), "--file",
                                 str(s["files"] / "extra_tab.tsv")], 2, r"extra_tab\.tsv:2: expected 2 tab-separated fields .*found 3"),
    ("unknown label", lambda s: ["evaluate", "classifier", "--run-dir", str(s["classifier"]), "--file",
                                 str(s["files"] / "unknown_label.tsv")], 2, r"unknown_label\.tsv:2: label '7' is not an integer in \[0, 2\)"),
    ("bad label prefix", lambda s: ["evaluate", "classifier", "--run-dir", str(s["classifier"]), "--file",
                                    str(s["files"] / "bad_prefix_label.txt")], 2, r"bad_prefix_label\.txt:2: label 'x'"),
    # Configs.
    ("unknown config key", lambda s: ["train", "lm", "hiden_dim=8"], 2, r"unknown key `hiden_dim`"),
    ("wrong type", lambda s: ["train", "lm", "hidden_dim=big"], 2, r"field `hidden_dim` expects int, received 'big'"),
    ("NaN", lambda s: ["train", "classifier", "dropout=nan"], 2, r"field `dropout` must be finite, received nan"),
    ("infinite rate", lambda s: ["train", "agreement", "learning_rate=inf"], 2, r"field `learning_rate` must be finite"),
    ("negative size", lambda s: ["train", "lm", "hidden_dim=-4"], 2, r"field `hidden_dim` must be positive, received -4"),
    ("zero batch size", lambda s: ["train", "classifier", "batch_size=0"], 2, r"field `batch_size` must be positive"),
    ("sequence_length 0", lambda s: ["train", "lm", "sequence_length=0"], 2, r"field `sequence_length` must be positive"),
    ("vocabulary_size larger than the corpus supports", lambda s: [
        "train", "lm", f"train_file={s['files'] / 'few_words.txt'}", "vocabulary_size=10002", "sampled_softmax=1024",
        f"run_dir={s['root'] / 'new'}"], 2,
     r"field `sampled_softmax` must be below the vocabulary the word tokenizer learns from .*few_words\.txt: 9 tokens"),
    ("sampled_softmax not below the vocabulary", lambda s: ["train", "lm", "vocabulary_size=500", "sampled_softmax=500"],
     2, r"field `sampled_softmax` must be below vocabulary_size=500, received 500"),
    ("config file with a syntax error", lambda s: ["train", "lm", "--config", str(s["files"] / "bad_config.json")], 2,
     r"bad_config\.json: line 2: invalid JSON"),
    ("config file not an object", lambda s: ["train", "lm", "--config", str(s["files"] / "list_config.json")], 2,
     r"list_config\.json: expected a JSON object, received list"),
    ("override without =", lambda s: ["train", "lm", "epochs"], 2, r"override 'epochs' is not of the form key=value"),
    # Command-line flags.
    ("unknown flag", lambda s: ["score", "--run-dir", str(s["lm"]), "--colour", "a"], 2, r"unrecognized arguments: --colour"),
    ("bad flag value", lambda s: ["generate", "--run-dir", str(s["lm"]), "--max-length", "many"], 2,
     r"--max-length: invalid int value: 'many'"),
    ("bad sampler", lambda s: ["generate", "--run-dir", str(s["lm"]), "--sampler", "nucleus"], 2,
     r"--sampler: invalid choice: 'nucleus'"),
    ("predict without texts", lambda s: ["predict", "--run-dir", str(s["classifier"])], 2, r"texts|--file"),
    # Models and run directories.
    ("a folder with no model", lambda s: ["score", "--run-dir", str(s["files"]), "a"], 2, r"no model in .*files"),
    ("a Keras model that is not a textlstm model", lambda s: ["score", "--run-dir", str(s["foreign"]), "a"], 2,
     r"model\.keras holds a Sequential, not a textlstm LanguageModel"),
    ("a Keras model given to export", lambda s: ["export", str(s["foreign"]), "--name", "x", "--base-dir",
                                                 str(s["exports"])], 2, r"holds a Sequential, not a textlstm Task"),
    ("truncated .keras file", lambda s: ["score", "--run-dir", str(s["truncated"]), "a"], 2,
     r"model\.keras is not a Keras model file \(not a complete zip archive"),
    ("a classifier run given to an LM command", lambda s: ["score", "--run-dir", str(s["classifier"]), "a"], 2,
     r"holds a `classifier` run .*not a `lm` run"),
    ("an LM run given to a classifier command", lambda s: ["predict", "--run-dir", str(s["lm"]), "a fine film"], 2,
     r"holds a `lm` run .*not a `classifier` run"),
    ("training another task in a run dir", lambda s: ["train", "classifier", "--run-dir", str(s["lm"])], 2,
     r"holds a `lm` run"),
    ("export over an existing version", lambda s: ["export", str(s["classifier"]), "--name", "sst2", "--base-dir",
                                                   str(s["exports"]), "--version", "1"], 2, r"sst2.*1.*exists"),
    # Probe inputs.
    ("SyntaxGym malformed formula", lambda s: ["probe", "syntaxgym", "--run-dir", str(s["lm"]),
                                               str(s["files"] / "bad_formula.json")], 2, r"bad_formula\.json.*formula"),
    ("SyntaxGym missing region", lambda s: ["probe", "syntaxgym", "--run-dir", str(s["lm"]),
                                            str(s["files"] / "missing_region.json")], 2,
     r"missing_region\.json.*item 1.*region"),
    ("BLiMP line missing a field", lambda s: ["probe", "minimal-pairs", "--run-dir", str(s["lm"]), "--files",
                                              str(s["files"] / "blimp_missing_field.jsonl")], 2,
     r"blimp_missing_field\.jsonl:1: field `sentence_bad` must be a string"),
    ("BLiMP line not JSON", lambda s: ["probe", "minimal-pairs", "--run-dir", str(s["lm"]), "--files",
                                       str(s["files"] / "blimp_not_json.jsonl")], 2, r"blimp_not_json\.jsonl:2: not JSON"),
    ("CoNLL-U line with too few columns", lambda s: ["probe", "number", "--run-dir", str(s["lm"]), "--file",
                                                     str(s["files"] / "bad.conllu")], 2, r"bad\.conllu:2: expected 10 tab-separated columns, got 4"),
    ("CoNLL-U token id not a number", lambda s: ["probe", "number", "--run-dir", str(s["lm"]), "--file",
                                                 str(s["files"] / "bad_id.conllu")], 2, r"bad_id\.conllu:2: ID 'x'"),
]


def run_cli(argv):
    """`main(argv)`'s exit code; argparse's own errors exit through SystemExit."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


@pytest.mark.parametrize("argv, code, pattern", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_named_and_nothing_saved_changes(saved, argv, code, pattern, capsys):
    before = tree_digest(saved["lm"], saved["classifier"], saved["exports"])
    assert run_cli(argv(saved)) == code
    error = capsys.readouterr().err
    assert re.search(pattern, error, re.DOTALL), error
    assert "Traceback" not in error
    assert tree_digest(saved["lm"], saved["classifier"], saved["exports"]) == before
    assert not os.path.exists(saved["root"] / "new")  # no run directory was even started


def test_sane_behaviour_where_input_is_odd_but_valid(saved, capsys):
    """Documented behaviour, not errors: very long lines are scored whole; empty and whitespace-only texts
    score only `</s>`; literal control tokens are ordinary unknown words."""
    before = tree_digest(saved["lm"], saved["classifier"], saved["exports"])
    long_text = (saved["files"] / "long_line.txt").read_text().strip()
    assert main(["score", "--run-dir", str(saved["lm"]), "--format", "jsonl", long_text, "", "   ",
                 "<pad> <s> </s>"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows[0]["tokens"]) == 3 * 2000 + 1
    assert rows[1]["tokens"] == rows[2]["tokens"] == ["</s>"]
    assert rows[3]["tokens"] == ["<unk>", "<unk>", "<unk>", "</s>"]
    assert main(["predict", "--run-dir", str(saved["classifier"]), "--format", "jsonl", "", long_text]) == 0
    predictions = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(predictions) == 2 and all(abs(sum(p["probabilities"].values()) - 1) < 1e-5 for p in predictions)
    # The export takes bytes, as TF Serving's clients send them: empty, very long, and not UTF-8 at all.
    import tensorflow as tf

    serve = tf.saved_model.load(str(saved["exports"] / "sst2" / "1")).signatures["serving_default"]
    answers = serve(texts=tf.constant([b"", long_text.encode(), b"\xff\xfe not utf-8"]))
    np.testing.assert_allclose(answers["probabilities"].numpy().sum(axis=1), 1.0, atol=1e-5)
    assert len(answers["label"].numpy()) == 3
    assert tree_digest(saved["lm"], saved["classifier"], saved["exports"]) == before
