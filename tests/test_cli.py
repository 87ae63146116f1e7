import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import E2E_OVERRIDES
from textlstm.cli import build_parser, main

SUBCOMMANDS = [["quickstart"], ["tokenizer", "train"], ["train", "lm"], ["train", "classifier"], ["evaluate", "lm"],
               ["evaluate", "classifier"], ["generate"], ["score"], ["predict"], ["export"],
               ["train", "agreement"], ["probe", "minimal-pairs"], ["probe", "syntaxgym"], ["probe", "number"],
               ["probe", "templates"], ["probe", "units"], ["inspect"]]


@pytest.mark.parametrize("words", SUBCOMMANDS)
def test_every_subcommand_has_help(words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(words + ["--help"])
    assert exit_info.value.code == 0
    assert "usage: textlstm " + " ".join(words) in capsys.readouterr().out


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "textlstm", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "quickstart" in result.stdout


def test_config_error_exits_2_and_names_the_key(capsys):
    assert main(["train", "lm", "nhid=200"]) == 2
    assert "unknown key `nhid`" in capsys.readouterr().err


def test_user_errors_print_one_line_and_internal_errors_keep_their_traceback(tmp_path, capsys, monkeypatch):
    import keras

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.keras").write_bytes(b"PK\x03\x04 cut off mid-write")  # a truncated zip archive
    assert main(["generate", "--run-dir", str(tmp_path)]) == 2
    assert "model.keras is not a Keras model file (not a complete zip archive" in capsys.readouterr().err

    def broken_keras(*args, **kwargs):  # a ValueError from inside a library, not from textlstm's checks
        raise ValueError("an internal failure")

    (tmp_path / "model.keras").unlink()
    import zipfile

    with zipfile.ZipFile(tmp_path / "model.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    monkeypatch.setattr(keras.saving, "load_model", broken_keras)
    with pytest.raises(ValueError, match="an internal failure"):
        main(["generate", "--run-dir", str(tmp_path)])


def test_finished_run_is_not_overwritten(trained_run, capsys):
    before = (trained_run / "model.keras").read_bytes()
    assert main(["train", "lm", "--run-dir", str(trained_run)]) == 2  # its own config: nothing more to do
    assert "holds a finished run; raise epochs" in capsys.readouterr().err
    assert main(["train", "lm", f"run_dir={trained_run}"]) == 2  # the default config: another model
    assert "holds a run with another config (max_train_lines: 3000 -> 0" in capsys.readouterr().err
    assert (trained_run / "model.keras").read_bytes() == before


def test_tokenizer_train(tmp_path, ptb_dir, capsys):
    output = tmp_path / "spm"
    assert main(["tokenizer", "train", "--input", str(ptb_dir / "ptb.valid.txt"), "--kind", "bpe",
                 "--vocabulary-size", "400", "--output", str(output)]) == 0
    assert "400 tokens" in capsys.readouterr().out
    assert (output / "config.json").exists() and (output / "vocabulary.spm").exists()


def test_score_generate_evaluate_export(trained_run, ptb_dir, tmp_path, capsys, export_without_extras):
    assert main(["score", "--run-dir", str(trained_run), "--format", "jsonl", "the company said", "n't"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["tokens"] == ["the", "company", "said", "</s>"]
    assert rows[0]["total_log_prob"] == pytest.approx(sum(rows[0]["log_probs"]))

    assert main(["generate", "--run-dir", str(trained_run), "--prompt", "the company", "--max-length", "5",
                 "--sampler", "greedy"]) == 0
    assert capsys.readouterr().out.startswith("the company")

    assert main(["evaluate", "lm", "--run-dir", str(trained_run), "--file", str(ptb_dir / "ptb.valid.txt")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["tokens"] > 70000 and 10 < result["perplexity"] < 2000

    assert main(["export", str(trained_run), "--name", "ptb", "--base-dir", str(tmp_path)]) == 0
    assert "signatures: ids, next_token, score, serving_default" in capsys.readouterr().out
    extra = tmp_path / "ptb" / "1" / "assets.extra"  # the op audit and signature listing: tests/test_export.py
    assert (extra / "tf_serving_warmup_requests").exists()
    assert json.loads((extra / "textlstm_export.json").read_text())["description"]["test_perplexity"] > 1
    assert main(["export", str(trained_run), "--name", "ptb", "--base-dir", str(tmp_path), "--version", "1"]) == 2
    assert "ptb/1 exists; versions are never overwritten" in capsys.readouterr().err


def test_probes_from_the_command_line(trained_run, shared_data, tmp_path, capsys, export_without_extras):
    """Each probe from a run directory, and the minimal pairs from its SavedModel too, as a user runs them."""
    run = str(trained_run)
    blimp = ["--blimp-dir", str(shared_data / "blimp"), "--paradigm", "regular_plural_subject_verb_agreement_1"]
    assert main(["probe", "minimal-pairs", "--run-dir", run, *blimp]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("overall") and "(1000 of 1000 scored)" in out
    report = json.loads((trained_run / "probes" / "minimal_pairs.json").read_text())
    assert report["protocol"]["start_token"] == "</s>" and report["protocol"]["test_perplexity"] > 1
    assert (trained_run / "probes" / "minimal_pairs.png").exists()

    assert main(["export", run, "--name", "lm", "--base-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["probe", "minimal-pairs", "--saved-model", str(tmp_path / "lm" / "1"), *blimp,
                 "--output-dir", str(tmp_path / "served")]) == 0
    served = json.loads((tmp_path / "served" / "minimal_pairs.json").read_text())
    assert served["overall"]["accuracy"] == pytest.approx(report["overall"]["accuracy"], abs=2e-3)
    assert served["protocol"]["implementation"] == "saved_model"

    assert main(["probe", "templates", "--run-dir", run, "--max-pairs-per-condition", "20",
                 "--output-dir", str(tmp_path / "templates")]) == 0
    templates = json.loads((tmp_path / "templates" / "templates.json").read_text())
    assert [row["num_items"] for row in templates["by_paradigm"]] == [20] * 9

    suites = sorted(str(p) for p in (shared_data / "syntaxgym_sample" / "json").glob("*.json"))
    assert main(["probe", "syntaxgym", "--run-dir", run, *suites, "--output-dir", str(tmp_path / "gym")]) == 0
    assert {"cleft", "npz_obj", "subordination"} <= {line.split()[0] for line in capsys.readouterr().out.splitlines()}

    assert main(["probe", "number", "--run-dir", run, "--file",
                 str(shared_data / "ud_english_ewt" / "en_ewt-ud-test.conllu"), "--output-dir", str(tmp_path / "n")]) == 0
    number = json.loads((tmp_path / "n" / "number_prediction.json").read_text())
    assert number["overall"]["num_items"] > 150 and 0 <= number["overall"]["accuracy"] <= 1
    assert [row["name"] for row in number["by_attractors"]] == ["0 attractors", "1 attractors", "2 attractors",
                                                               "3+ attractors"]

    with pytest.raises(SystemExit):  # --run-dir and --saved-model exclude each other
        main(["probe", "number", "--run-dir", run, "--saved-model", "x"])


def test_inspect_and_units_from_the_command_line(trained_run, shared_data, tmp_path, capsys):
    run = str(trained_run)
    assert main(["inspect", "--run-dir", run, "The keys to the cabinet are here.", "the key",
                 "--output-dir", str(tmp_path / "inspect"), "--units", "0:3", "0:7"]) == 0
    out = capsys.readouterr().out
    assert "tokens: </s> the " in out and "here </s>\n" in out  # PTB spelling: lowercase, no period
    arrays = np.load(tmp_path / "inspect" / "text0.npz")
    assert list(arrays["tokens"])[:2] == ["</s>", "the"] and arrays["layer0/forward/f"].shape == (9, 64)
    assert (tmp_path / "inspect" / "text1_layer0_forward.png").exists()
    assert (tmp_path / "inspect" / "unit_traces.png").exists() and "unit traces:" in out
    assert main(["inspect", "--run-dir", run, "the key", "--units", "0:64"]) == 2
    assert "layer 0 has units 0-63, received unit 64" in capsys.readouterr().err
    assert main(["inspect", "--run-dir", run, "the key", "--units", "one"]) == 2
    assert "--units: expected LAYER:UNIT" in capsys.readouterr().err

    ud = shared_data / "ud_english_ewt"
    assert main(["probe", "units", "--run-dir", run, "--train-file", str(ud / "en_ewt-ud-dev.conllu"),
                 "--test-file", str(ud / "en_ewt-ud-test.conllu"), "--top-units", "2", "--group-sizes", "3",
                 "--random-draws", "2", "--max-pairs-per-condition", "5", "--output-dir", str(tmp_path / "units")]) == 0
    out = capsys.readouterr().out
    assert "Zero-ablating the top 1 unit(s)" in out and "Patching 3 top unit(s)" in out
    report = json.loads((tmp_path / "units" / "units.json").read_text())
    assert [(row["position"], row["state"]) for row in report["diagnostic"]] == [
        (position, state) for position in ("subject", "intervening_noun", "before_verb") for state in ("h", "c")]
    assert report["protocol"]["start_token"] == "</s>" and "586 number items" in report["protocol"]["training items"]
    assert len(report["ranking"]["units"]) == 20 and report["patching"]["pairs"] == 30  # 6 conditions x 5
    markdown = (tmp_path / "units" / "units.md").read_text()
    for section in ("## Diagnostic classifiers", "## Unit ranking", "## Ablation", "## Activation patching"):
        assert section in markdown
    for name in ("diagnostic", "ranking", "ablation", "patching", "traces"):
        assert (tmp_path / "units" / f"units_{name}.png").stat().st_size > 1000
    assert main(["probe", "units", "--run-dir", str(tmp_path)]) == 2
    assert "no model in" in capsys.readouterr().err
    assert main(["probe", "units", "--run-dir", run, "--train-file", str(ud / "en_ewt-ud-dev.conllu"),
                 "--test-file", str(ud / "en_ewt-ud-test.conllu"), "--random-draws", "0"]) == 2
    assert "`random_draws` must be at least 1, received 0" in capsys.readouterr().err


def test_a_peephole_lm_trains_reloads_and_is_inspected(ptb_dir, tmp_path, capsys):
    run_dir = tmp_path / "peephole"
    overrides = [f"train_file={ptb_dir / 'ptb.train.txt'}", f"valid_file={ptb_dir / 'ptb.valid.txt'}",
                 f"test_file={ptb_dir / 'ptb.test.txt'}", f"run_dir={run_dir}", *E2E_OVERRIDES,
                 "cell_type=peephole_lstm", "max_train_lines=500", "max_eval_lines=100", "epochs=1"]
    assert main(["train", "lm", "--config", "ptb_small", *overrides]) == 0
    assert json.loads((run_dir / "config.json").read_text())["cell_type"] == "peephole_lstm"
    assert main(["inspect", "--run-dir", str(run_dir), "the company said", "--output-dir", str(tmp_path / "i")]) == 0
    arrays = np.load(tmp_path / "i" / "text0.npz")
    assert str(arrays["cell_type"]) == "peephole_lstm" and arrays["layer0/forward/o"].shape == (5, 64)
