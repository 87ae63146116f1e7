"""The sentiment recipe end to end on the real SST-2 / MR files, from the CLI and the Python API."""

import json

import keras
import numpy as np
import pytest

from textlstm.cli import main
from textlstm.config import SentimentConfig, config_from_dict
from textlstm.data import read_sentiment_dataset
from textlstm.recipes.language_model import load_language_model
from textlstm.recipes.sentiment import load_classifier, read_splits, train_sentiment

TINY = ["max_train_lines=3000", "vocabulary_size=6000", "embedding_dim=32", "hidden_dim=16", "epochs=2",
        "time_budget_minutes=0", "verbose=0", "learning_rate=0.005"]


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory, shared_data):
    run_dir = tmp_path_factory.mktemp("runs") / "sst2"
    assert main(["train", "classifier", f"data_dir={shared_data}", f"run_dir={run_dir}", *TINY]) == 0
    return run_dir


def test_a_tiny_run_beats_the_majority_class_on_held_out_sentences(classifier_run):
    metrics = json.loads((classifier_run / "metrics.json").read_text())
    assert metrics["test_examples"] == 872 and metrics["train_examples"] == 3000
    assert metrics["test_accuracy"] > metrics["majority_class_accuracy"] + 0.08, metrics
    low, high = metrics["test_accuracy_interval"]
    assert low < metrics["test_accuracy"] < high
    for name in ("config.json", "model.keras", "report.md", "report.json", "report.png", "history.csv",
                 "curves.png", "tokenizer/config.json", "checkpoints/best.weights.h5", "progress.json"):
        assert (classifier_run / name).exists(), name
    assert "| initialisation | random (from scratch) |" in (classifier_run / "report.md").read_text()
    report = json.loads((classifier_run / "report.json").read_text())
    assert sum(map(sum, report["confusion_matrix"])) == 872
    assert report["accuracy"] == pytest.approx(metrics["test_accuracy"])


def test_validation_sentences_are_one_draw_for_every_seed(shared_data):
    def splits(**values):
        return read_splits(config_from_dict(SentimentConfig, {"data_dir": str(shared_data), **values}))

    train, valid, test = splits(validation_sentences=300, max_train_lines=2000, seed=7)
    assert (len(train), len(valid), len(test)) == (2000, 300, 872)
    assert not set(valid.texts) & set(train.texts)
    assert valid.source.startswith("300 whole sentences held out of ") and "less 300 held-out" in train.source
    assert splits(validation_sentences=300, seed=8)[1].texts == valid.texts  # the seed trains, it does not draw
    with pytest.raises(ValueError, match=r"`validation_sentences` is too large for sst2_glue, received 7000: "
                                         r"`num_sentences` must be in \[1, 6885\]"):
        splits(validation_sentences=7000)


def test_predict_from_the_cli_and_the_api(classifier_run, capsys):
    texts = ["a gorgeous , witty , seductive movie .", "the plot is dull and the acting is worse ."]
    assert main(["predict", "--run-dir", str(classifier_run), "--format", "jsonl", *texts]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["text"] for row in rows] == texts
    for row in rows:
        assert row["label"] in ("negative", "positive")
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert row["label"] == max(row["probabilities"], key=row["probabilities"].get)
    predictions = load_classifier(str(classifier_run)).predict(texts)
    assert predictions.probabilities.shape == (2, 2) and list(predictions.labels) == [r["label"] for r in rows]
    assert main(["predict", "--run-dir", str(classifier_run)]) == 2
    assert "give texts as arguments or --file" in capsys.readouterr().err


def test_evaluate_classifier_on_another_file_writes_a_report(classifier_run, shared_data, tmp_path, capsys):
    test_file = shared_data / "sst_kim2014" / "stsa.binary.test"
    assert main(["evaluate", "classifier", "--run-dir", str(classifier_run), "--file", str(test_file),
                 "--output-dir", str(tmp_path / "kim")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["examples"] == 1821 and 0.5 < result["accuracy"] <= 1.0
    assert (tmp_path / "kim" / "report.md").read_text().count("|") > 20
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\ngood film\t1\nbad film\t7\n")
    assert main(["evaluate", "classifier", "--run-dir", str(classifier_run), "--file", str(bad)]) == 2
    assert "bad.tsv:3" in capsys.readouterr().err


def test_transfer_from_a_language_model_run(trained_run, shared_data, tmp_path):
    """ULMFiT: the classifier starts from the LM run's embedding and LSTM; frozen groups keep them."""
    lm = load_language_model(str(trained_run))
    config = config_from_dict(SentimentConfig, {
        "data_dir": str(shared_data), "run_dir": str(tmp_path / "transfer"), "max_train_lines": 500,
        "embedding_dim": 64, "hidden_dim": 64, "num_layers": 1, "epochs": 1, "verbose": 0,
        "pretrained_lm": str(trained_run), "gradual_unfreezing": True, "discriminative_lr_factor": 2.6,
        "lr_schedule": "slanted_triangular", "weight_decay": 0.01})
    metrics = train_sentiment(config)
    assert metrics["transfer"]["layers"][0]["forward"] == "copied"
    assert metrics["start_token"] == lm.preprocessor.start_token
    classifier = load_classifier(config.run_dir)
    assert classifier.preprocessor.tokenizer.get_vocabulary() == lm.tokenizer.get_vocabulary()
    # One epoch of gradual unfreezing trains the head only: embedding and LSTM are still the LM's.
    np.testing.assert_array_equal(classifier.backbone.token_embedding.get_weights()[0],
                                  lm.backbone.token_embedding.get_weights()[0])
    forward = classifier.backbone.recurrent_layers[0].forward_layer
    for mine, theirs in zip(forward.get_weights(), lm.backbone.recurrent_layers[0].get_weights()):
        np.testing.assert_array_equal(mine, theirs)


def test_mr_cross_validation_writes_one_run_per_fold(shared_data, tmp_path):
    config = config_from_dict(SentimentConfig, {
        "dataset": "mr", "cross_validation_folds": 2, "data_dir": str(shared_data), "max_train_lines": 300,
        "run_dir": str(tmp_path / "mr"), "embedding_dim": 16, "hidden_dim": 8, "epochs": 1, "verbose": 0,
        "class_weights": True})
    metrics = train_sentiment(config)
    assert len(metrics["fold_accuracies"]) == 2
    assert metrics["test_accuracy"] == pytest.approx(np.mean(metrics["fold_accuracies"]))
    for fold in (1, 2):
        fold_metrics = json.loads((tmp_path / "mr" / f"fold_{fold}" / "metrics.json").read_text())
        assert fold_metrics["test_examples"] == 300  # 600 sentences, half of each label in each fold
    keras.backend.clear_session()


def test_an_ensemble_run_trains_its_members_once_and_predicts_their_mean(shared_data, tmp_path, capsys,
                                                                        monkeypatch):
    import textlstm.recipes.run_steps as run_steps
    import textlstm.recipes.sentiment as recipe

    run_dir = tmp_path / "ensemble"
    train = ["train", "classifier", f"data_dir={shared_data}", f"run_dir={run_dir}", *TINY, "max_train_lines=1000",
             "epochs=1", "ensemble_size=2", "time_budget_minutes=30"]

    def crash(model, run):
        raise RuntimeError("simulated crash after the members trained")

    trained_tokenizers = []

    def counting_train_tokenizer(*args, **kwargs):
        trained_tokenizers.append(args)
        return real_train_tokenizer(*args, **kwargs)

    real_train_tokenizer = run_steps.train_tokenizer
    monkeypatch.setattr(run_steps, "train_tokenizer", counting_train_tokenizer)
    monkeypatch.setattr(recipe, "save_model", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(train)
    monkeypatch.undo()
    assert len(trained_tokenizers) == 1  # member 2 took member 1's
    member_weights = [(run_dir / f"member_{k}" / "model.keras").read_bytes() for k in (1, 2)]
    assert main(train) == 0  # the re-run trains no member again: it builds, saves and tests the ensemble
    assert [(run_dir / f"member_{k}" / "model.keras").read_bytes() for k in (1, 2)] == member_weights
    assert "sst2_glue: test accuracy" in capsys.readouterr().out

    metrics = json.loads((run_dir / "metrics.json").read_text())
    members = [load_classifier(str(run_dir / f"member_{k}")) for k in (1, 2)]
    member_configs = [json.loads((run_dir / f"member_{k}" / "config.json").read_text()) for k in (1, 2)]
    assert [(c["seed"], c["time_budget_minutes"]) for c in member_configs] == [(1234, 15.0), (1235, 15.0)]
    assert metrics["member_test_accuracies"] == [
        json.loads((run_dir / f"member_{k}" / "metrics.json").read_text())["test_accuracy"] for k in (1, 2)]
    test = read_sentiment_dataset("sst2_glue", "test", str(shared_data))
    mean = np.mean([member.predict(test.texts).probabilities for member in members], axis=0)  # (872, 2)
    assert metrics["test_accuracy"] == pytest.approx(float(np.mean(mean.argmax(axis=1) == np.array(test.labels))))
    assert "2 members" in (run_dir / "report.md").read_text()
    # The pools' choice is recorded where a re-run reads it back (the run dir's own progress.json).
    assert json.loads((run_dir / "progress.json").read_text())["cpu_threads"] == metrics["cpu_threads"]

    texts = ["a gorgeous , witty , seductive movie .", "the plot is dull and the acting is worse ."]
    capsys.readouterr()
    assert main(["predict", "--run-dir", str(run_dir), "--format", "jsonl", *texts]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = np.mean([member.predict(texts).probabilities for member in members], axis=0)
    np.testing.assert_allclose([[row["probabilities"][name] for name in ("negative", "positive")] for row in rows],
                               expected, atol=1e-5)
    assert main(["inspect", "--run-dir", str(run_dir), "a film"]) == 2
    assert "inspect one of them, e.g. --run-dir" in capsys.readouterr().err

    assert main(train) == 2  # finished: nothing asks for more
    assert "holds a finished run; raise epochs" in capsys.readouterr().err
    keras.backend.clear_session()


def test_a_finished_classifier_run_continues_from_the_cli(classifier_run, capsys):
    """Last in this module: it trains the shared run one more epoch."""
    best = (classifier_run / "checkpoints" / "best.weights.h5").read_bytes()
    assert main(["train", "classifier", "--run-dir", str(classifier_run)]) == 2
    assert "holds a finished run; raise epochs" in capsys.readouterr().err
    assert main(["train", "classifier", "--run-dir", str(classifier_run), "epochs=3"]) == 0
    metrics = json.loads((classifier_run / "metrics.json").read_text())
    assert metrics["epochs"] == 3
    assert [line.split(",")[0] for line in (classifier_run / "history.csv").read_text().splitlines()[1:]] == [
        "0", "1", "2"]
    assert (classifier_run / "checkpoints" / "best.weights.h5").exists() and best


def test_inspect_a_bidirectional_classifier_run(classifier_run, tmp_path, capsys):
    assert main(["inspect", "--run-dir", str(classifier_run), "a gorgeous , witty film",
                 "--output-dir", str(tmp_path)]) == 0
    arrays = np.load(tmp_path / "text0.npz")
    assert arrays["layer0/backward/c"].shape == arrays["layer0/forward/c"].shape == (len(arrays["tokens"]), 16)
    assert (tmp_path / "text0_layer0_backward.png").exists() and "heatmap:" in capsys.readouterr().out


def test_export_a_classifier_run_from_the_cli(classifier_run, tmp_path, capsys, export_without_extras):
    import tensorflow as tf

    assert main(["export", str(classifier_run), "--name", "sst2", "--base-dir", str(tmp_path)]) == 0
    assert "signatures: ids, serving_default" in capsys.readouterr().out
    texts = ["a gorgeous , witty , seductive movie .", "a dull , lifeless film ."]
    served = tf.saved_model.load(str(tmp_path / "sst2" / "1")).signatures["serving_default"](texts=tf.constant(texts))
    predictions = load_classifier(str(classifier_run)).predict(texts)
    np.testing.assert_allclose(served["probabilities"].numpy(), predictions.probabilities, atol=1e-5)
    assert [label.decode() for label in served["label"].numpy()] == predictions.labels
    assert 'name: "sst2"' in (tmp_path / "models.config").read_text()
