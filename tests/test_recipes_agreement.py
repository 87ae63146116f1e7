"""The number-agreement recipe end to end on the real UD English EWT files."""

import dataclasses
import json
import pathlib

import keras
import pytest

from textlstm.config import AgreementConfig, config_from_dict, load_config
from textlstm.models import AgreementClassifier, LanguageModel, LSTMBackbone
from textlstm.preprocessors import LanguageModelPreprocessor
from textlstm.recipes import load_agreement_classifier, train_agreement
from textlstm.tokenizers import WordTokenizer

TINY = {"max_train_lines": 1500, "embedding_dim": 32, "hidden_dim": 32, "num_layers": 1, "dropout": 0.0,
        "learning_rate": 0.01, "epochs": 3, "time_budget_minutes": 0, "verbose": 0}


@pytest.fixture(scope="module")
def ewt_files(shared_data):
    folder = shared_data / "ud_english_ewt"
    return {f"{split}_file": str(folder / f"en_ewt-ud-{name}.conllu")
            for split, name in (("train", "train"), ("valid", "dev"), ("test", "test"))}


@pytest.fixture(scope="module")
def agreement_run(tmp_path_factory, ewt_files):
    run_dir = tmp_path_factory.mktemp("runs") / "agreement"
    config = config_from_dict(AgreementConfig, {**ewt_files, **TINY, "run_dir": str(run_dir)})
    return config, train_agreement(config)


def test_a_tiny_run_beats_the_majority_class(agreement_run):
    config, metrics = agreement_run
    assert (metrics["train_items"], metrics["test_items"]) == (1500, 536)
    assert metrics["test_accuracy"] > metrics["majority_class_accuracy"] + 0.03, metrics
    assert metrics["majority_class"] == "singular"
    assert set(metrics["test_accuracy_by_attractors"]) == {"0", "1", "2", "3+"}
    assert sum(metrics["test_items_by_attractors"].values()) == 536
    assert metrics["epochs"] == 3 and metrics["transfer"] is None and metrics["start_token"] == "<s>"
    run_dir = pathlib.Path(config.run_dir)
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics
    report = json.loads((run_dir / "report.json").read_text())
    assert report["overall"]["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert "random (from scratch)" in report["protocol"]["initialisation"]
    for name in ("report.md", "report.png", "report_items.jsonl", "model.keras", "curves.png", "history.csv",
                 "tokenizer/config.json", "checkpoints/best.weights.h5"):
        assert (run_dir / name).exists(), name
    records = [json.loads(line) for line in (run_dir / "report_items.jsonl").read_text().splitlines()]
    assert len(records) == 536
    assert {"prefix", "verb", "label", "attractors", "predicted", "probability", "correct"} <= set(records[0])
    assert all(r["correct"] == (r["predicted"] == r["label"]) and 0.5 <= r["probability"] <= 1 for r in records)


def test_the_saved_classifier_predicts_as_the_report_says(agreement_run):
    config, _ = agreement_run
    classifier = load_agreement_classifier(config.run_dir)
    assert isinstance(classifier, AgreementClassifier)
    lines = (pathlib.Path(config.run_dir) / "report_items.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines[:20]]
    predictions = classifier.predict([record["prefix"] for record in records])
    assert predictions.labels == [record["predicted"] for record in records]


def test_a_changed_config_is_refused_and_a_missing_model_named(agreement_run, tmp_path):
    config, _ = agreement_run
    with pytest.raises(ValueError, match=r"another config \(hidden_dim: 32 -> 64\)"):
        train_agreement(dataclasses.replace(config, hidden_dim=64))
    with pytest.raises(FileNotFoundError, match="no model in"):
        load_agreement_classifier(str(tmp_path))


def save_language_model(run_dir, texts, embedding_dim):
    """A tiny untrained LM run directory (only `model.keras`, all `load_language_model` reads), PTB-like: lowercase
    texts and a tokenizer that does not fold case."""
    keras.utils.set_random_seed(5)
    tokenizer = WordTokenizer.from_texts(texts)
    backbone = LSTMBackbone(tokenizer.vocabulary_size(), embedding_dim=embedding_dim, hidden_dim=16, num_layers=2)
    lm = LanguageModel(backbone, preprocessor=LanguageModelPreprocessor.for_mode(tokenizer, "stream"),
                       tie_weights=False)
    run_dir.mkdir()
    lm.save(run_dir / "model.keras")
    return lm


def test_transfer_from_a_language_model_run(ewt_files, tmp_path):
    lm = save_language_model(tmp_path / "lm", ["the keys to the cabinet are", "the key is"], embedding_dim=16)
    values = {**ewt_files, **TINY, "max_train_lines": 200, "epochs": 1, "embedding_dim": 16, "hidden_dim": 16,
              "num_layers": 1, "pretrained_lm": str(tmp_path / "lm"), "run_dir": str(tmp_path / "transfer")}
    metrics = train_agreement(config_from_dict(AgreementConfig, values))
    assert metrics["transfer"] == {"embedding": "forward LM", "layers": [{"layer": 0, "forward": "copied"}]}
    assert metrics["start_token"] == "</s>"
    classifier = load_agreement_classifier(str(tmp_path / "transfer"))
    assert classifier.preprocessor.tokenizer.get_vocabulary() == lm.tokenizer.get_vocabulary()
    assert classifier.preprocessor.start_token == "</s>"
    # lowercase=true (the default) folds EWT's case before the LM's lookup: "The" gets the id of "the".
    assert classifier.preprocessor.tokenizer.lowercase and not lm.tokenizer.lowercase
    the = lm.tokenizer.token_to_id("the")
    assert classifier.preprocessor(["The KEYS"]).numpy().tolist() == [[3, the, lm.tokenizer.token_to_id("keys")]]
    assert "case folded" in json.loads((tmp_path / "transfer" / "report.json").read_text())["protocol"]["tokenizer"]
    # A config whose sizes differ from the LM's is refused before its run directory exists.
    mismatched = config_from_dict(AgreementConfig, {**values, "embedding_dim": 32,
                                                    "run_dir": str(tmp_path / "mismatched")})
    with pytest.raises(ValueError, match=r"field `embedding_dim` must equal the pretrained_lm's.*received 32"):
        train_agreement(mismatched)
    assert not (tmp_path / "mismatched").exists()


def test_the_shipped_config_loads_by_name(tmp_path):
    config = load_config(AgreementConfig, "agreement_ud")
    assert (config.embedding_dim, config.hidden_dim, config.run_dir) == (200, 200, "runs/agreement_ud")
    assert config.train_file.endswith("en_ewt-ud-train.conllu")
    with pytest.raises(ValueError, match=r"field `num_layers` must be one of \(1, 2\), received 3"):
        load_config(AgreementConfig, "agreement_ud", ["num_layers=3"])
    empty = tmp_path / "empty.conllu"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.conllu: no number-agreement items"):
        train_agreement(config_from_dict(AgreementConfig, {"train_file": str(empty),
                                                           "run_dir": str(tmp_path / "never")}))
    assert not (tmp_path / "never").exists()
