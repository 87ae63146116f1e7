"""Run-level configuration: one dataclass per task, loaded from JSON, overridable.

Architecture settings live on the Keras objects (their `get_config`); this
module holds what a *run* needs: data paths, tokenizer choice, optimisation,
callbacks. A config is loaded from `configs/*.json`, overridden with
`key=value` strings from the command line, validated, and saved as
`config.json` in the run directory so the run can be reproduced and reloaded.

Example:
>>> from textlstm.config import LanguageModelConfig, load_config
>>> config = load_config(LanguageModelConfig, None, ["hidden_dim=32", "embedding_dim=32", "epochs=1"])
>>> config.hidden_dim, config.epochs
(32, 1)
"""

import dataclasses
import json
import os
import typing
from dataclasses import dataclass


@dataclass
class LanguageModelConfig:
    """Everything one language-model run needs besides the code.

    Each field carries the reason for its default.
    """

    # Data. Paths are resolved relative to the current directory.
    train_file: str = "../shared/data/ptb/ptb.train.txt"
    valid_file: str = "../shared/data/ptb/ptb.valid.txt"
    test_file: str = "../shared/data/ptb/ptb.test.txt"
    encoding: str = "utf-8"  # PTB and most corpora; MR polarity needs latin-1.
    max_train_lines: int = 0  # 0 = all; a slice keeps tests and smoke runs fast.
    max_eval_lines: int = 0  # 0 = all; same, for the validation and test files.
    tfds_name: str = ""  # Read a TFDS dataset instead of the three files ("textlstm_ptb", or a stock name prepared offline); "" = the files.
    tfds_splits: str = "train,validation,test"  # Its train, validation and test splits, in that order (lm1b has no validation: "train,test,test").
    tfds_data_dir: str = "~/tensorflow_datasets"  # Where TFDS keeps prepared datasets; nothing is ever downloaded.
    tfds_manual_dir: str = ""  # textlstm's own builders prepare from here (e.g. ../shared/data/ptb).
    tfds_text_key: str = "text"  # The feature holding the text.

    # Tokenizer.
    tokenizer: str = "word"  # "word" for pre-tokenised PTB; "unigram"/"bpe" = SentencePiece.
    vocabulary_size: int = 10002  # PTB (Mikolov et al. 2010): its 9,998 words besides <unk>, plus 4 specials.
    min_count: int = 1  # PTB is already <unk>-mapped; raise it for raw corpora.

    # Batching.
    mode: str = "stream"  # "stream" = truncated BPTT over B parallel streams; "sentence" = padded lines.
    batch_size: int = 20  # Zaremba et al. (2014); more streams = fewer updates an epoch, which cost more than they save here.
    eval_batch_size: int = 20  # Trimming + each row's first token: < 40 of ~80k tokens go unscored.
    sequence_length: int = 35  # BPTT window of Zaremba et al. (2014).

    # Architecture (copied onto LSTMBackbone / LanguageModel, which own it).
    cell_type: str = "lstm"  # "gru" is the other cuDNN-eligible cell.
    embedding_dim: int = 200  # Zaremba "small".
    hidden_dim: int = 200  # Zaremba "small"; equal to embedding_dim so weights can be tied.
    num_layers: int = 2  # Zaremba "small".
    dropout: float = 0.1  # Between layers only (Zaremba et al. 2014); recurrent dropout breaks cuDNN.
    tie_weights: bool = True  # Press & Wolf (2017), Inan et al. (2017): fewer parameters, lower perplexity.

    # Optimisation.
    optimizer: str = "sgd"  # Plain SGD on the mean token loss, as pytorch/examples word_language_model.
    learning_rate: float = 20.0  # That example's rate; with a mean (not summed) loss, lr=1 stalls at unigram level.
    clipnorm: float = 0.25  # Global-norm gradient clipping (Pascanu et al. 2013), on by default.
    sampled_softmax: int = 1024  # Negatives for sampled softmax in training (Jean et al. 2015); 0 = full softmax.
    epochs: int = 5
    lr_schedule: str = "epoch_decay"  # "epoch_decay": x factor every epoch from lr_decay_start_epoch (Zaremba et al. 2014); "plateau": when validation stalls.
    lr_decay_factor: float = 0.25  # The /4 annealing of pytorch/examples word_language_model.
    lr_decay_start_epoch: int = 4  # 1-based; we have fewer epochs than Zaremba's 13, so decay sooner.
    lr_decay_patience: int = 0  # "plateau" only: epochs without improvement before decaying.
    early_stopping_patience: int = 3
    time_budget_minutes: float = 0.0  # Never start an epoch that would end past it; 0 = no budget.
    jit_compile: str = "auto"  # "auto" = XLA on CPU where measured faster (full softmax, hidden_dim <= 256; BENCHMARKS.md); never with sampled softmax.
    seed: int = 1234

    # Output.
    run_dir: str = "runs/ptb_small"
    overwrite: bool = False  # A finished run (metrics.json present) is never replaced unless asked.
    verbose: int = 1  # Keras progress: 1 = bar, 2 = a line per epoch (for logs), 0 = silent.
    num_samples: int = 3  # Generated samples printed and stored after training.
    sample_length: int = 20


_CHOICES = {
    "tokenizer": ("word", "unigram", "bpe"),
    "mode": ("stream", "sentence"),
    "cell_type": ("lstm", "gru"),
    "optimizer": ("adam", "sgd"),
    "lr_schedule": ("epoch_decay", "plateau"),
    "jit_compile": ("auto", "true", "false"),
}
_POSITIVE = {
    "vocabulary_size", "batch_size", "eval_batch_size", "sequence_length",
    "embedding_dim", "hidden_dim", "num_layers", "epochs", "learning_rate",
    "sample_length", "min_count", "lr_decay_start_epoch",
}


def _coerce(name, expected, value, source):
    """Returns `value` as `expected`, or raises a ValueError naming the field."""
    if expected is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif expected is str:
        if isinstance(value, str):
            return value
    raise ValueError(
        f"{source}: field `{name}` expects {expected.__name__}, "
        f"received {value!r} ({type(value).__name__})."
    )


def config_from_dict(config_class, values, source="config"):
    """Builds and validates `config_class` from a dict of field values.

    Raises:
        ValueError: an unknown key (naming it and the valid keys), a wrong
            type, a negative size or a value outside a field's choices; the
            message names the field and echoes the value.
    """
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    hints = typing.get_type_hints(config_class)
    kwargs = {}
    for name, value in values.items():
        if name not in fields:
            raise ValueError(
                f"{source}: unknown key `{name}`. Valid keys: {', '.join(sorted(fields))}."
            )
        kwargs[name] = _coerce(name, hints[name], value, source)
    config = config_class(**kwargs)
    validate(config, source)
    return config


def validate(config, source="config"):
    """Checks sizes and choices; raises ValueError naming the field and value."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name in _CHOICES and value not in _CHOICES[f.name]:
            raise ValueError(
                f"{source}: field `{f.name}` must be one of {_CHOICES[f.name]}, received {value!r}."
            )
        if f.name in _POSITIVE and value <= 0:
            raise ValueError(f"{source}: field `{f.name}` must be positive, received {value!r}.")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise ValueError(f"{source}: field `{f.name}` must not be negative, received {value!r}.")
    splits = getattr(config, "tfds_splits", None)
    if splits is not None and (len(splits.split(",")) != 3 or not all(part.strip() for part in splits.split(","))):
        raise ValueError(
            f"{source}: field `tfds_splits` must name three comma-separated splits "
            f"(train,validation,test), received {splits!r}."
        )
    if not 0.0 < getattr(config, "lr_decay_factor", 0.5) <= 1.0:
        raise ValueError(f"{source}: field `lr_decay_factor` must be in (0, 1], received {config.lr_decay_factor!r}.")
    sampled = getattr(config, "sampled_softmax", 0)
    if sampled and sampled >= config.vocabulary_size:
        raise ValueError(
            f"{source}: field `sampled_softmax` must be below vocabulary_size={config.vocabulary_size}, "
            f"received {sampled!r}."
        )
    if sampled and getattr(config, "jit_compile", "auto") == "true":
        raise ValueError(
            f"{source}: field `jit_compile=true` cannot compile `sampled_softmax={sampled}` (XLA has no kernel "
            f"for TF's candidate sampler); set sampled_softmax=0 or jit_compile to auto or false."
        )
    if getattr(config, "dropout", 0.0) >= 1.0:
        raise ValueError(f"{source}: field `dropout` must be in [0, 1), received {config.dropout!r}.")
    if getattr(config, "tie_weights", False) and config.embedding_dim != config.hidden_dim:
        raise ValueError(
            f"{source}: field `tie_weights=true` needs embedding_dim == hidden_dim, received "
            f"embedding_dim={config.embedding_dim}, hidden_dim={config.hidden_dim}."
        )


def parse_overrides(overrides):
    """Turns `["key=value", ...]` into a dict; raises ValueError on a bad item."""
    values = {}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not of the form key=value.")
        values[key.strip()] = value.strip()
    return values


def load_config(config_class, path=None, overrides=None):
    """Loads `config_class` from a JSON file (optional) plus `key=value` overrides."""
    values = {}
    source = "defaults"
    if path:
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"config file not found: {path} (the shipped configs are in configs/ of a textlstm "
                f"source checkout, installed with `pip install -e .`; pass --config PATH)"
            )
        with open(path, encoding="utf-8") as f:
            try:
                values = json.load(f)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}: line {error.lineno}: invalid JSON: {error.msg}") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object, received {type(values).__name__}.")
        source = path
    values.update(parse_overrides(overrides))
    return config_from_dict(config_class, values, source)


def save_config(config, path):
    """Writes the resolved config as JSON (atomically, so a crash never leaves half a file)."""
    tmp_path = f"{path}.tmp"
    with open(tmp_path, "w", encoding="utf-8") as f:
        json.dump(dataclasses.asdict(config), f, indent=2)
        f.write("\n")
    os.replace(tmp_path, path)
