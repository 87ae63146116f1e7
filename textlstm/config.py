"""Run-level configuration: a base dataclass, one subclass per task.

Architecture settings live on the Keras objects (their `get_config`); this
module holds what a *run* needs: data paths, tokenizer choice, optimisation,
callbacks. A config is loaded from `configs/*.json`, overridden with
`key=value` strings from the command line, validated, and saved as
`config.json` in the run directory so the run can be reproduced and reloaded.

Each field declares its constraint beside its default (`setting(default,
Positive())`), with the reason for the default in a comment. Every float must
be finite (NaN and inf are refused), and every check runs before a recipe
deletes, trains or writes anything.

Fields marked `continuable=True` may change when a run directory is run
again (more epochs, a larger time budget, a lower learning rate after a NaN
loss, quieter logs); any other change
alters the model, tokenizer or data, and a run directory refuses it.

Example:
>>> config = load_config(LanguageModelConfig, None, ["hidden_dim=32", "embedding_dim=32", "epochs=1"])
>>> config.hidden_dim, config.epochs
(32, 1)
>>> load_config(LanguageModelConfig, None, ["dropout=nan"])
Traceback (most recent call last):
...
ValueError: defaults: field `dropout` must be finite, received nan.
"""

import codecs
import dataclasses
import json
import math
import os
import typing
from dataclasses import dataclass

# Constraints -------------------------------------------------------------------


class Positive:
    def check(self, value):
        return None if value > 0 else "must be positive"


class NonNegative:
    def check(self, value):
        return None if value >= 0 else "must not be negative"


class Range:
    """`low <= value <= high`; `low_open` / `high_open` make an end exclusive."""

    def __init__(self, low, high, low_open=False, high_open=False):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def check(self, value):
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        if above and below:
            return None
        return f"must be in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"


class Choice:
    def __init__(self, *choices):
        self.choices = choices

    def check(self, value):
        return None if value in self.choices else f"must be one of {self.choices}"


class NonEmpty:
    def check(self, value):
        return None if value else "must not be empty"


class Encoding:
    """A codec Python knows (`codecs.lookup`)."""

    def check(self, value):
        try:
            codecs.lookup(value)
        except LookupError:
            return "must be a text encoding Python knows (e.g. 'utf-8', 'latin-1')"
        return None


def setting(default, *constraints, continuable=False):
    """A config field: its default, its constraints and whether a continued run may change it."""
    return dataclasses.field(default=default, metadata={"constraints": constraints, "continuable": continuable})


INITIALIZERS = ("uniform", "glorot_uniform", "he_uniform", "orthogonal")
CELL_TYPES = ("lstm", "gru", "peephole_lstm")
CPU_THREADS = ("auto", "tensorflow", "parallel_ops")  # textlstm.cpu_threads


# Configs -----------------------------------------------------------------------


@dataclass
class RunConfig:
    """What every task's run needs besides its data. Each field carries the reason for its default."""

    task: typing.ClassVar[str] = ""  # The `textlstm train TASK` a subclass configures; recorded in its runs.

    encoding: str = setting("utf-8", Encoding())  # Of text files given by path; the named sentiment datasets know their own.
    max_train_lines: int = setting(0, NonNegative())  # 0 = all; a slice keeps tests and smoke runs fast.

    # Tokenizer.
    tokenizer: str = setting("word", Choice("word", "unigram", "bpe"))  # "word" for pre-tokenised text; else SentencePiece.
    vocabulary_size: int = setting(10002, Positive())  # PTB (Mikolov et al. 2010): 9,998 words besides <unk>, plus 4 specials.
    min_count: int = setting(1, Positive())  # PTB is already <unk>-mapped; raise it for raw corpora.
    lowercase: bool = setting(False)  # PTB is lowercased already; case-fold other text to share statistics.

    # Architecture (copied onto LSTMBackbone and the task model, which own it).
    cell_type: str = setting("lstm", Choice(*CELL_TYPES))  # "gru" is the other cuDNN-eligible cell; "peephole_lstm" (Gers & Schmidhuber 2000) runs step by step.
    embedding_dim: int = setting(200, Positive())  # Zaremba "small".
    hidden_dim: int = setting(200, Positive())  # Zaremba "small".
    num_layers: int = setting(2, Positive())  # Zaremba "small".
    dropout: float = setting(0.1, Range(0, 1, high_open=True))  # Between layers only (Zaremba et al. 2014); recurrent dropout breaks cuDNN.
    word_dropout: float = setting(0.0, Range(0, 1, high_open=True))  # Whole words per batch (Gal & Ghahramani 2016; AWD-LSTM's 0.1); 0 = off.
    kernel_initializer: str = setting("glorot_uniform", Choice(*INITIALIZERS))  # Keras's default, what the benchmarks ran with; "uniform" = ±0.1 (Zaremba).
    recurrent_initializer: str = setting("orthogonal", Choice(*INITIALIZERS))  # Saxe et al. (2014): keeps early gradients from vanishing.
    cpu_threads: str = setting("auto", Choice(*CPU_THREADS), continuable=True)  # TensorFlow's CPU pools: "tensorflow" (a thread per core for each op), "parallel_ops" (one thread per op, ops side by side), "auto" = timed here for bidirectional models (textlstm.cpu_threads).
    precision: str = setting("float32", Choice("float32", "mixed_float16", "mixed_bfloat16"))  # The backbone's compute dtype; mixed_float16 is for GPUs (slow on CPUs); softmax and loss stay float32.

    # Optimisation.
    optimizer: str = setting("sgd", Choice("adam", "sgd"))  # Each task sets its own default optimizer and rate.
    learning_rate: float = setting(20.0, Positive(), continuable=True)  # Continuable: a run stopped by a NaN loss resumes with a lower one.
    clipnorm: float = setting(0.25, NonNegative())  # Global-norm clipping (Pascanu et al. 2013); 0 = off.
    weight_decay: float = setting(0.0, NonNegative())  # 0 = off. Decoupled (Loshchilov & Hutter 2019) or an L2 penalty.
    weight_decay_type: str = setting("decoupled", Choice("decoupled", "l2"))  # "decoupled" = SGDW/AdamW; "l2" adds wd*w to the gradient.
    weight_averaging: float = setting(0.0, Range(0, 1, high_open=True))  # Momentum of a moving average of the weights (Polyak & Juditsky 1992; AWD-LSTM averages too); 0 = off. It replaces the weights at each epoch end, before validation.
    epochs: int = setting(5, Positive(), continuable=True)
    early_stopping_patience: int = setting(3, NonNegative(), continuable=True)  # 0 = off.
    time_budget_minutes: float = setting(0.0, NonNegative(), continuable=True)  # Training time of the whole run, across continuations; 0 = none.
    checkpoint_every_steps: int = setting(200, NonNegative(), continuable=True)  # A crash loses at most this many steps (textlstm.checkpoints); 0 = epoch ends only.
    seed: int = setting(1234, Range(0, 2**32 - 1))  # Keras's seed range.

    # Output.
    run_dir: str = setting("runs/run", continuable=True)
    overwrite: bool = setting(False, continuable=True)  # Replace an existing run dir (moved aside, removed once the new run succeeds).
    verbose: int = setting(1, Choice(0, 1, 2), continuable=True)  # Keras progress: 1 = bar, 2 = a line per epoch, 0 = silent.

    def check(self, source):
        """Checks between fields; each raises ValueError naming the fields (a subclass calls this first)."""
        if self.weight_averaging and self.precision == "mixed_float16":
            # Loss scaling skips the optimizer's step on overflow, so its step count (which times the
            # averaging) would fall behind the epoch's batches.
            raise ValueError(f"{source}: field `weight_averaging` needs precision other than mixed_float16 "
                             f"(loss scaling skips steps), received weight_averaging={self.weight_averaging}, "
                             f"precision='mixed_float16'.")


@dataclass
class LanguageModelConfig(RunConfig):
    """A language-model run (`textlstm train lm`)."""

    task: typing.ClassVar[str] = "lm"

    train_file: str = setting("../shared/data/ptb/ptb.train.txt")
    valid_file: str = setting("../shared/data/ptb/ptb.valid.txt")
    test_file: str = setting("../shared/data/ptb/ptb.test.txt")
    max_eval_lines: int = setting(0, NonNegative())  # 0 = all; same, for the validation and test files.
    tfds_name: str = setting("")  # Read TFDS instead of the files ("textlstm_ptb", or a stock name prepared offline).
    tfds_splits: str = setting("train,validation,test")  # Train, validation, test splits (lm1b: "train,test,test").
    tfds_data_dir: str = setting("~/tensorflow_datasets")  # Where TFDS keeps prepared datasets; nothing is downloaded.
    tfds_manual_dir: str = setting("")  # textlstm's own builders prepare from here (e.g. ../shared/data/ptb).
    tfds_text_key: str = setting("text")  # The feature holding the text.
    reverse_lines: bool = setting(False)  # Each line's words reversed: a backward LM (ULMFiT) for a classifier's backward direction.

    # Batching.
    mode: str = setting("stream", Choice("stream", "sentence"))  # "stream" = truncated BPTT over B streams; "sentence" = padded lines.
    stream_from_file: bool = setting(False)  # Stream mode: read train_file as training consumes it (larger than memory); the tokenizer learns from its first max_train_lines lines.
    batch_size: int = setting(20, Positive())  # Zaremba et al. (2014).
    eval_batch_size: int = setting(20, Positive())  # Trimming + each row's first token: < 40 of ~80k tokens go unscored.
    sequence_length: int = setting(35, Positive())  # BPTT window of Zaremba et al. (2014).

    tie_weights: bool = setting(True)  # Press & Wolf (2017), Inan et al. (2017): fewer parameters, lower perplexity.
    learning_rate: float = setting(20.0, Positive(), continuable=True)  # word_language_model's rate; with a mean loss, lr=1 stalls at unigram level.
    sampled_softmax: int = setting(1024, NonNegative())  # Negatives in training (Jean et al. 2015); 0 = full softmax.
    lr_schedule: str = setting("epoch_decay", Choice("epoch_decay", "plateau"))  # x factor per epoch from a start epoch (Zaremba), or on a plateau.
    lr_decay_factor: float = setting(0.25, Range(0, 1, low_open=True))  # The /4 annealing of word_language_model.
    lr_decay_start_epoch: int = setting(4, Positive())  # 1-based; we have fewer epochs than Zaremba's 13, so decay sooner.
    lr_decay_patience: int = setting(0, NonNegative())  # "plateau" only: epochs without improvement before decaying.
    jit_compile: str = setting("auto", Choice("auto", "true", "false"))  # "auto": timed on this machine before training (training.choose_jit_compile).
    strategy: str = setting("none", Choice("none", "multi_worker", "mirrored"), continuable=True)  # "multi_worker": the workers TF_CONFIG names, one device each; "mirrored": this process's GPUs (textlstm.distributed).

    run_dir: str = setting("runs/ptb_small", continuable=True)
    num_samples: int = setting(3, NonNegative(), continuable=True)  # Generated samples printed and stored after training.
    sample_length: int = setting(20, Positive(), continuable=True)

    def check(self, source):
        super().check(source)
        splits = [part.strip() for part in self.tfds_splits.split(",")]
        if len(splits) != 3 or not all(splits):
            raise ValueError(f"{source}: field `tfds_splits` must name three comma-separated splits "
                             f"(train,validation,test), received {self.tfds_splits!r}.")
        if self.sampled_softmax >= self.vocabulary_size:
            raise ValueError(f"{source}: field `sampled_softmax` must be below vocabulary_size="
                             f"{self.vocabulary_size}, received {self.sampled_softmax!r}.")
        if self.sampled_softmax and self.jit_compile == "true":
            raise ValueError(f"{source}: field `jit_compile=true` cannot compile `sampled_softmax="
                             f"{self.sampled_softmax}` (XLA has no kernel for TF's candidate sampler); "
                             f"set sampled_softmax=0 or jit_compile to auto or false.")
        if self.stream_from_file and (self.mode != "stream" or self.tfds_name or not self.max_train_lines
                                      or self.reverse_lines):
            raise ValueError(f"{source}: field `stream_from_file=true` needs mode=stream, no tfds_name, "
                             f"reverse_lines=false and max_train_lines > 0 (the lines the tokenizer learns from), "
                             f"received mode={self.mode!r}, tfds_name={self.tfds_name!r}, reverse_lines="
                             f"{self.reverse_lines}, max_train_lines={self.max_train_lines}.")
        if self.tie_weights and self.embedding_dim != self.hidden_dim:
            raise ValueError(f"{source}: field `tie_weights=true` needs embedding_dim == hidden_dim, received "
                             f"embedding_dim={self.embedding_dim}, hidden_dim={self.hidden_dim}.")
        if self.strategy != "none" and (self.mode != "stream" or self.precision == "mixed_float16"
                                        or self.jit_compile == "true" or self.weight_averaging):
            raise ValueError(f"{source}: field `strategy={self.strategy}` needs mode=stream (replicas split the "
                             f"streams), precision other than mixed_float16, jit_compile other than true and "
                             f"weight_averaging=0, received mode={self.mode!r}, precision={self.precision!r}, "
                             f"jit_compile={self.jit_compile!r}, weight_averaging={self.weight_averaging}.")


@dataclass
class SentimentConfig(RunConfig):
    """A sentiment-classifier run (`textlstm train classifier`)."""

    task: typing.ClassVar[str] = "classifier"

    dataset: str = setting("sst2_glue", Choice("sst2_glue", "sst2_kim2014", "sst5_kim2014", "mr"))  # See ../shared/data/README.md.
    data_dir: str = setting("../shared/data")  # Where the datasets' folders are; nothing is downloaded.
    cross_validation_folds: int = setting(0, NonNegative())  # MR only (it has no split): 10-fold CV as in Kim (2014).
    validation_sentences: int = setting(0, NonNegative())  # 0 = the dev split. N = pool train and dev, validate on N whole sentences (one draw for every seed) and drop the phrases only they contain (data.held_out_sentences). sst2_glue only: its dev rows are mostly phrases of training sentences.
    max_length: int = setting(64, Positive())  # Tokens kept per text; SST sentences average ~19 words.

    vocabulary_size: int = setting(20000, Positive())  # SST-2 train has ~14k word types; the rest map to <unk>.
    lowercase: bool = setting(True)  # SST and MR are lowercased already; typed input is matched the same way.
    embedding_dim: int = setting(300, Positive())  # Tai et al. (2015) and Kim (2014) use 300-d vectors.
    hidden_dim: int = setting(150, Positive())  # Tai et al. (2015) BiLSTM: 150 per direction.
    num_layers: int = setting(1, Positive())  # Tai et al. (2015).
    dropout: float = setting(0.5, Range(0, 1, high_open=True))  # Kim (2014) and Tai et al. (2015): 0.5.
    pooling: str = setting("concat", Choice("final", "max", "mean", "concat"))  # "concat" = [final, max, mean] (ULMFiT).
    class_weights: bool = setting(False)  # Weight classes by inverse frequency (for skewed label sets).
    ensemble_size: int = setting(1, Positive())  # >1: members with seeds seed, seed+1, ..., each within time_budget_minutes / ensemble_size; the run predicts their mean probabilities (Lakshminarayanan et al. 2017).

    optimizer: str = setting("adam", Choice("adam", "sgd"))
    learning_rate: float = setting(2e-3, Positive(), continuable=True)  # Adam, batch 64.
    clipnorm: float = setting(5.0, NonNegative())
    batch_size: int = setting(64, Positive())
    lr_schedule: str = setting("constant", Choice("constant", "slanted_triangular"))  # STLR: Howard & Ruder (2018).
    epochs: int = setting(4, Positive(), continuable=True)

    # LM -> classifier transfer (Howard & Ruder 2018, ULMFiT).
    pretrained_lm: str = setting("")  # Run dir of a textlstm LM whose embedding and LSTMs fill the forward direction.
    pretrained_backward_lm: str = setting("")  # Run dir of an LM trained on reversed text: fills the backward direction.
    discriminative_lr_factor: float = setting(1.0, Range(1.0, 100.0))  # ULMFiT 2.6: each lower layer group gets lr / factor.
    gradual_unfreezing: bool = setting(False)  # ULMFiT: train the head first, unfreeze one more group each epoch.

    run_dir: str = setting("runs/sst2_bilstm", continuable=True)

    def check(self, source):
        super().check(source)
        if self.dataset == "mr" and not self.cross_validation_folds:
            raise ValueError(f"{source}: field `cross_validation_folds` must be at least 2 for dataset='mr' "
                             f"(it has no test split; the literature uses 10), received 0.")
        if self.dataset != "mr" and self.cross_validation_folds:
            raise ValueError(f"{source}: field `cross_validation_folds` must be 0 for dataset={self.dataset!r}, "
                             f"which has train/dev/test splits, received {self.cross_validation_folds}.")
        if self.validation_sentences and self.dataset != "sst2_glue":
            raise ValueError(f"{source}: field `validation_sentences` must be 0 for dataset={self.dataset!r} (it "
                             f"holds out the whole sentences of sst2_glue's phrase-level rows; the other sets' dev "
                             f"splits are sentences already), received {self.validation_sentences}.")
        if self.cross_validation_folds == 1:
            raise ValueError(f"{source}: field `cross_validation_folds` must be 0 or at least 2, received 1.")
        if self.ensemble_size > 1 and self.cross_validation_folds:
            raise ValueError(f"{source}: field `ensemble_size` must be 1 with cross-validation (each fold is one "
                             f"classifier), received ensemble_size={self.ensemble_size}, cross_validation_folds="
                             f"{self.cross_validation_folds}.")
        if self.seed + self.ensemble_size - 1 > 2**32 - 1:
            raise ValueError(f"{source}: field `ensemble_size` gives members seeds up to seed + ensemble_size - 1, "
                             f"which must stay <= {2**32 - 1}, received seed={self.seed}, "
                             f"ensemble_size={self.ensemble_size}.")
        if self.pretrained_backward_lm and not self.pretrained_lm:
            raise ValueError(f"{source}: field `pretrained_backward_lm` needs `pretrained_lm` too, received "
                             f"pretrained_backward_lm={self.pretrained_backward_lm!r}, pretrained_lm=''.")


@dataclass
class AgreementConfig(RunConfig):
    """A number-agreement run: Linzen et al. (2016) number prediction on UD prefixes (`textlstm train agreement`)."""

    task: typing.ClassVar[str] = "agreement"

    train_file: str = setting("../shared/data/ud_english_ewt/en_ewt-ud-train.conllu", NonEmpty())  # UD English EWT: hand-checked trees give the subject and the verb's number.
    valid_file: str = setting("../shared/data/ud_english_ewt/en_ewt-ud-dev.conllu", NonEmpty())  # EWT's dev split: early stopping and the best epoch.
    test_file: str = setting("../shared/data/ud_english_ewt/en_ewt-ud-test.conllu", NonEmpty())  # EWT's test split, reported by attractor count.

    tokenizer: str = setting("word", Choice("word", "unigram", "bpe"))  # EWT is tokenized (UD words); the verb's own form never enters.
    vocabulary_size: int = setting(20000, Positive())  # EWT's train prefixes have ~6k word types: all kept that pass min_count.
    min_count: int = setting(2, Positive())  # Words seen once map to <unk>, so <unk> is trained for the unseen words of test.
    lowercase: bool = setting(True)  # EWT is cased: "The" and "the" share their statistics.
    embedding_dim: int = setting(200, Positive())  # The PTB-small LM's, so its embedding can transfer.
    hidden_dim: int = setting(200, Positive())  # The PTB-small LM's, so its LSTMs can transfer.
    num_layers: int = setting(2, Choice(1, 2))  # The PTB-small LM's two layers; Linzen et al. (2016) used one.
    dropout: float = setting(0.3, Range(0, 1, high_open=True))  # ~4.6k training items: some regularisation, less than sentiment's 0.5.

    # LM -> classifier transfer (Howard & Ruder 2018).
    pretrained_lm: str = setting("")  # Run dir of a textlstm LM whose embedding + LSTMs initialise the classifier; its tokenizer and start token are then used.

    optimizer: str = setting("adam", Choice("adam", "sgd"))  # Adam: no rate schedule to tune on a small task.
    learning_rate: float = setting(1e-3, Positive(), continuable=True)  # Adam's default (Kingma & Ba 2015).
    clipnorm: float = setting(5.0, NonNegative())  # As the sentiment runs: only guards against rare spikes.
    batch_size: int = setting(32, Positive())  # ~140 updates an epoch on EWT's ~4.6k items.
    epochs: int = setting(10, Positive(), continuable=True)  # An epoch takes seconds; early stopping picks the end.
    early_stopping_patience: int = setting(3, NonNegative(), continuable=True)  # Validation has ~590 items: a noisy loss.
    time_budget_minutes: float = setting(20.0, NonNegative(), continuable=True)  # The shared training budget of a run.

    run_dir: str = setting("runs/agreement_ud", continuable=True)


# Loading -----------------------------------------------------------------------


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


def validate(config, source="config"):
    """Runs every field's declared constraints, then the config's `check`; raises ValueError naming field and value."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{source}: field `{field.name}` must be finite, received {value!r}.")
        for constraint in field.metadata.get("constraints", ()):
            problem = constraint.check(value)
            if problem:
                raise ValueError(f"{source}: field `{field.name}` {problem}, received {value!r}.")
    config.check(source)


def config_from_dict(config_class, values, source="config"):
    """Builds and validates `config_class` from a dict of field values.

    Raises:
        ValueError: an unknown key (naming it and the valid keys), a wrong
            type, or a value its field's constraints refuse; the message
            names the field and echoes the value.
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


def parse_overrides(overrides):
    """Turns `["key=value", ...]` into a dict; raises ValueError on a bad item."""
    values = {}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not of the form key=value.")
        values[key.strip()] = value.strip()
    return values


def read_json_object(path, what="config"):
    """A JSON object from `path`; errors name the file (and line)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} file not found: {path}")
    with open(path, encoding="utf-8") as f:
        try:
            values = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: line {error.lineno}: invalid JSON: {error.msg}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a JSON object, received {type(values).__name__}.")
    return values


def load_config(config_class, path=None, overrides=None):
    """Loads `config_class` from a JSON file (optional) plus `key=value` overrides.

    `path` may name a file, or one of the configs shipped inside the package
    (`textlstm/configs/NAME.json`) by its bare name, e.g. "ptb_small".
    """
    values = {}
    source = "defaults"
    if path:
        path = resolve_config_path(path)
        values = read_json_object(path)
        source = path
    values.update(parse_overrides(overrides))
    return config_from_dict(config_class, values, source)


SHIPPED_CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def resolve_config_path(path):
    """`path` itself if it exists, else the shipped config of that name; FileNotFoundError naming both."""
    if os.path.exists(path):
        return path
    shipped = os.path.join(SHIPPED_CONFIGS, os.path.basename(path))
    shipped = shipped if shipped.endswith(".json") else shipped + ".json"
    if os.path.exists(shipped):
        return shipped
    names = sorted(name[:-5] for name in os.listdir(SHIPPED_CONFIGS) if name.endswith(".json"))
    raise FileNotFoundError(f"config file not found: {path} (nor a shipped config of that name; shipped: "
                            f"{', '.join(names)})")


def config_to_dict(config):
    return dataclasses.asdict(config)


def changed_fields(old, new, continuable=None):
    """Names of the fields whose values differ between two configs of one class.

    `continuable=False` keeps only fields a continued run may not change;
    `True` only those it may; None all.
    """
    names = []
    for field in dataclasses.fields(new):
        if continuable is not None and field.metadata.get("continuable", False) != continuable:
            continue
        default = field.default  # a run saved before the field existed ran with its default
        if old.get(field.name, default) != getattr(new, field.name):
            names.append(field.name)
    return names
