import json
import pathlib

import pytest

from textlstm.config import LanguageModelConfig, config_from_dict, load_config, parse_overrides, save_config


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
    save_config(config, str(tmp_path / "saved.json"))
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


def test_shipped_configs_load():
    configs = pathlib.Path(__file__).resolve().parents[1] / "configs"
    for name in ("ptb_small", "ptb_medium", "ptb_quickstart"):
        load_config(LanguageModelConfig, str(configs / f"{name}.json"))


def test_tie_weights_needs_equal_sizes():
    with pytest.raises(ValueError, match=r"`tie_weights=true` needs .*embedding_dim=200, hidden_dim=64"):
        config_from_dict(LanguageModelConfig, {"hidden_dim": 64})
