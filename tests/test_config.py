import json
import pathlib

import pytest

from textlstm.config import (
    LanguageModelConfig,
    SentimentConfig,
    changed_fields,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_overrides,
)
from textlstm.runs import write_json


def test_defaults_are_valid_and_overrides_apply():
    config = load_config(LanguageModelConfig, None, ["hidden_dim=32", "tie_weights=false", "dropout=0.3"])
    assert config.hidden_dim == 32 and config.tie_weights is False and config.dropout == 0.3


def test_unknown_key_names_key_and_valid_keys():
    with pytest.raises(ValueError, match=r"unknown key `nhid`.*hidden_dim"):
        config_from_dict(LanguageModelConfig, {"nhid": 200})


@pytest.mark.parametrize(
    "values, message",
    [
        ({"hidden_dim": "big"}, r"`hidden_dim` expects int, received 'big'"),
        ({"tie_weights": "maybe"}, r"`tie_weights` expects bool"),
        ({"batch_size": -4}, r"`batch_size` must be positive, received -4"),
        ({"sampled_softmax": -1}, r"`sampled_softmax` must not be negative, received -1"),
        ({"mode": "windows"}, r"`mode` must be one of .*'windows'"),
        ({"dropout": 1.5}, r"`dropout` must be in \[0, 1\), received 1.5"),
        ({"tfds_splits": "train,test"}, r"`tfds_splits` must name three .*received 'train,test'"),
        ({"lr_decay_start_epoch": 0}, r"`lr_decay_start_epoch` must be positive, received 0"),
        ({"lr_decay_factor": 0}, r"`lr_decay_factor` must be in \(0, 1\], received 0.0"),
        ({"sampled_softmax": 20000}, r"`sampled_softmax` must be below vocabulary_size=10002, received 20000"),
        ({"jit_compile": "true", "sampled_softmax": 64}, r"`jit_compile=true` cannot compile `sampled_softmax=64`"),
        ({"learning_rate": "nan"}, r"`learning_rate` must be finite, received nan"),
        ({"clipnorm": "inf"}, r"`clipnorm` must be finite, received inf"),
        ({"encoding": "utf-9"}, r"`encoding` must be a text encoding Python knows.*received 'utf-9'"),
        ({"weight_decay": -0.1}, r"`weight_decay` must not be negative, received -0.1"),
        ({"weight_decay_type": "l1"}, r"`weight_decay_type` must be one of \('decoupled', 'l2'\), received 'l1'"),
        ({"recurrent_initializer": "zeros"}, r"`recurrent_initializer` must be one of .*received 'zeros'"),
        ({"verbose": 3}, r"`verbose` must be one of \(0, 1, 2\), received 3"),
        ({"cpu_threads": "all"}, r"`cpu_threads` must be one of \('auto', .*'parallel_ops'\), received 'all'"),
        ({"weight_averaging": 1.0}, r"`weight_averaging` must be in \[0, 1\), received 1.0"),
        ({"weight_averaging": 0.9, "precision": "mixed_float16"},
         r"`weight_averaging` needs precision other than mixed_float16 .*received weight_averaging=0.9"),
        ({"weight_averaging": 0.9, "strategy": "multi_worker"},
         r"`strategy=multi_worker` needs .*weight_averaging=0, .*weight_averaging=0.9"),
    ],
)
def test_bad_values_name_field_and_value(values, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(LanguageModelConfig, values)


def test_load_json_then_save_round_trip(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"hidden_dim": 64, "embedding_dim": 64, "epochs": 2}))
    config = load_config(LanguageModelConfig, str(path), ["epochs=3"])
    assert (config.hidden_dim, config.epochs) == (64, 3)
    write_json(config_to_dict(config), str(tmp_path / "saved.json"))
    assert load_config(LanguageModelConfig, str(tmp_path / "saved.json")) == config


def test_invalid_json_reports_file_and_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "epochs": 2,\n  oops\n}')
    with pytest.raises(ValueError, match=r"bad.json: line 3"):
        load_config(LanguageModelConfig, str(path))


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_config(LanguageModelConfig, str(tmp_path / "nope.json"))


def test_override_without_equals_is_rejected():
    with pytest.raises(ValueError, match="'epochs' is not of the form key=value"):
        parse_overrides(["epochs"])


def test_shipped_configs_load_by_path_and_by_name():
    configs = pathlib.Path(__file__).resolve().parents[1] / "configs"
    for name in ("ptb_small", "ptb_medium", "ptb_quickstart"):
        assert load_config(LanguageModelConfig, str(configs / f"{name}.json")) == load_config(LanguageModelConfig, name)
    for name in ("sst2_bilstm", "sst2_quickstart", "sst2_ulmfit", "sst5_bilstm", "mr_bilstm"):
        assert load_config(SentimentConfig, str(configs / f"{name}.json")) == load_config(SentimentConfig, name)
    with pytest.raises(FileNotFoundError, match=r"nope.json .*shipped: .*ptb_small"):
        load_config(LanguageModelConfig, "nope.json")


@pytest.mark.parametrize("values, message", [
    ({"dataset": "imdb"}, r"`dataset` must be one of .*received 'imdb'"),
    ({"pooling": "attention"}, r"`pooling` must be one of .*received 'attention'"),
    ({"dataset": "mr"}, r"`cross_validation_folds` must be at least 2 for dataset='mr'"),
    ({"dataset": "mr", "cross_validation_folds": 1}, r"`cross_validation_folds` must be 0 or at least 2, received 1"),
    ({"pretrained_backward_lm": "runs/back"}, r"`pretrained_backward_lm` needs `pretrained_lm`"),
    ({"discriminative_lr_factor": 0.5}, r"`discriminative_lr_factor` must be in \[1.0, 100.0\], received 0.5"),
    ({"cross_validation_folds": 10}, r"`cross_validation_folds` must be 0 for dataset='sst2_glue'"),
    ({"seed": -1}, r"`seed` must be in \[0, 4294967295\], received -1"),
    ({"ensemble_size": 0}, r"`ensemble_size` must be positive, received 0"),
    ({"dataset": "mr", "cross_validation_folds": 2, "ensemble_size": 2},
     r"`ensemble_size` must be 1 with cross-validation .*received ensemble_size=2, cross_validation_folds=2"),
    ({"dataset": "mr", "cross_validation_folds": 10, "validation_sentences": 500},
     r"`validation_sentences` must be 0 for dataset='mr' .*received 500"),
    ({"dataset": "sst5_kim2014", "validation_sentences": 500},
     r"`validation_sentences` must be 0 for dataset='sst5_kim2014' .*received 500"),
    ({"validation_sentences": -1}, r"`validation_sentences` must not be negative, received -1"),
    ({"seed": 4294967295, "ensemble_size": 2}, r"`ensemble_size` gives members seeds up to .*seed=4294967295"),
])
def test_sentiment_config_checks(values, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(SentimentConfig, values)


def test_changed_fields_separates_continuable_ones():
    old = config_to_dict(LanguageModelConfig())
    new = config_from_dict(LanguageModelConfig, {"epochs": 39, "hidden_dim": 100, "embedding_dim": 100})
    assert changed_fields(old, new, continuable=False) == ["embedding_dim", "hidden_dim"]
    assert changed_fields(old, new, continuable=True) == ["epochs"]


def test_tie_weights_needs_equal_sizes():
    with pytest.raises(ValueError, match=r"`tie_weights=true` needs .*embedding_dim=200, hidden_dim=64"):
        config_from_dict(LanguageModelConfig, {"hidden_dim": 64})
