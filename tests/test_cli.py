import json
import subprocess
import sys

import pytest

from textlstm.cli import build_parser, main

SUBCOMMANDS = [["quickstart"], ["tokenizer", "train"], ["train", "lm"], ["train", "classifier"], ["evaluate", "lm"],
               ["evaluate", "classifier"], ["generate"], ["score"], ["predict"], ["export", "lm"],
               ["train", "agreement"], ["probe", "minimal-pairs"], ["probe", "syntaxgym"], ["probe", "number"],
               ["probe", "templates"]]


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


def test_score_generate_evaluate_export(trained_run, ptb_dir, tmp_path, capsys):
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

    assert main(["export", "lm", "--run-dir", str(trained_run), "--name", "ptb", "--base-dir", str(tmp_path)]) == 0
    assert (tmp_path / "ptb" / "1" / "saved_model.pb").exists()


def test_probes_from_the_command_line(trained_run, shared_data, tmp_path, capsys):
    """Each probe from a run directory, and the minimal pairs from its SavedModel too, as a user runs them."""
    run = str(trained_run)
    blimp = ["--blimp-dir", str(shared_data / "blimp"), "--paradigm", "regular_plural_subject_verb_agreement_1"]
    assert main(["probe", "minimal-pairs", "--run-dir", run, *blimp]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("overall") and "(1000 of 1000 scored)" in out
    report = json.loads((trained_run / "probes" / "minimal_pairs.json").read_text())
    assert report["protocol"]["start_token"] == "</s>" and report["protocol"]["test_perplexity"] > 1
    assert (trained_run / "probes" / "minimal_pairs.png").exists()

    assert main(["export", "lm", "--run-dir", run, "--name", "lm", "--base-dir", str(tmp_path)]) == 0
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
