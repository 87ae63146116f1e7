"""LanguageModel: next-token prediction on an LSTMBackbone; scoring and generation."""

import logging
import math
import weakref

import keras
import keras_hub
import tensorflow as tf
from keras import ops

from textlstm.checkpoints import default_training_state
from textlstm.models.backbone import LSTMBackbone
from textlstm.models.task import Task
from textlstm.preprocessors import LanguageModelPreprocessor
from textlstm.tokenizers import BOS_ID, EOS_ID, PAD_ID

logger = logging.getLogger(__name__)


@keras.saving.register_keras_serializable(package="textlstm")
class Perplexity(keras.metrics.Mean):
    """exp of the token-weighted mean negative log-likelihood (in nats)."""

    def result(self):
        return ops.exp(super().result())


class CarriedStates:
    """The recurrent state carried between BPTT windows: tf.Variables keyed by (phase, batch size).

    fit/evaluate make them before tracing. A plain object, so neither Keras
    nor TF tracking sees them: they are training bookkeeping, not weights,
    and belong in neither `model.keras` nor an exported SavedModel.
    """

    def __init__(self):
        self.variables = {}


def log_uniform_candidates(true_classes, num_sampled, range_max, seed):
    """TF's `log_uniform_candidate_sampler(unique=True)`, drawn from an explicit seed.

    TF's sampler keeps its random state inside the op, where no checkpoint
    can reach it; these draws are a pure function of `seed`, so a training
    run resumed from a checkpoint samples exactly the negatives an
    uninterrupted run samples. Same distribution and expected counts as TF:
    class k has P(k) = log((k + 2) / (k + 1)) / log(range_max + 1) (Zipfian,
    for ids sorted by frequency); draws are repeated until `num_sampled`
    distinct classes came up, and each class's expected count is
    1 - (1 - P(k)) ** tries (TF's `ExpectedCountHelper`).

    Args:
        true_classes: int64 `(batch, 1)`, the target ids.
        num_sampled: int, distinct negatives to draw (below `range_max`).
        range_max: int, the number of classes.
        seed: int `(2,)` tensor, e.g. from a `keras.random.SeedGenerator`.

    Returns:
        `(sampled (num_sampled,), true_expected_count (batch, 1),
        sampled_expected_count (num_sampled,))`, the `sampled_values` of
        `tf.nn.sampled_softmax_loss`.

    Example:
    >>> sampled, _, _ = log_uniform_candidates(tf.constant([[3]], "int64"), 5, 100, tf.constant([1, 2]))
    >>> len(set(sampled.numpy().tolist()))
    5
    """
    log_range = math.log(range_max + 1.0)
    chunk = 2 * num_sampled

    def draw(round_index):  # (chunk,) log-uniform ids in [0, range_max)
        round_seed = tf.random.experimental.stateless_fold_in(seed, round_index)
        uniform = tf.random.stateless_uniform([chunk], seed=round_seed, dtype="float64")
        ids = tf.cast(tf.floor(tf.exp(uniform * log_range)), "int64") - 1
        return tf.clip_by_value(ids, 0, range_max - 1)

    def distinct(draws):
        return tf.size(tf.unique(draws).y)

    draws = tf.while_loop(
        lambda round_index, draws: distinct(draws) < num_sampled,
        lambda round_index, draws: (round_index + 1, tf.concat([draws, draw(round_index + 1)], 0)),
        (tf.constant(0), draw(0)),
        shape_invariants=(tf.TensorShape([]), tf.TensorShape([None])),
    )[1]
    unique, index = tf.unique(draws)  # in order of first appearance
    first_draw = tf.math.unsorted_segment_min(tf.range(tf.shape(index)[0]), index, tf.size(unique))
    sampled = unique[:num_sampled]  # (num_sampled,)
    tries = tf.cast(first_draw[num_sampled - 1] + 1, "float64")  # draws until the last distinct one came up

    def expected_count(classes):
        classes = tf.cast(classes, "float64")
        probability = (tf.math.log(classes + 2.0) - tf.math.log(classes + 1.0)) / log_range
        count = tf.where(tf.equal(tries, num_sampled), probability * num_sampled,
                         -tf.math.expm1(tries * tf.math.log1p(-probability)))
        return tf.cast(count, "float32")

    return tf.stop_gradient(sampled), expected_count(true_classes), expected_count(sampled)


SCORING_ROWS = 512  # `token_log_probs` rounds its token count up to a multiple of this
_GENERATION_FUNCTIONS = weakref.WeakKeyDictionary()  # LanguageModel -> {sampler settings: (sampler, compiled loop)}
GENERATION_FUNCTIONS_KEPT = 8  # compiled sampling loops kept per model (each took 1-4 s to trace, BENCHMARKS.md)


def merge_repeated_rows(gradient):
    """An `IndexedSlices` gradient with each row once (repeats summed); any other gradient as it is.

    The embedding's gradient under sampled softmax is sparse, with a row per
    token occurrence and per sampled negative: a word seen twice in a batch
    comes twice. Its values' norm is not the gradient's norm, which
    `clipnorm` must clip by (as PyTorch's `clip_grad_norm_` does, and as
    several workers' summed dense gradients do, `textlstm.distributed`).
    """
    if not isinstance(gradient, tf.IndexedSlices):
        return gradient
    rows, positions = tf.unique(gradient.indices)  # (unique rows,), (slices,)
    values = tf.math.unsorted_segment_sum(gradient.values, positions, tf.shape(rows)[0])  # (unique rows, dim)
    return tf.IndexedSlices(values, rows, gradient.dense_shape)


def target_log_probs(logits, targets):
    """ln softmax(logits)[target] `(batch, time)` from logits `(batch, time, vocabulary)`.

    For inference: the target's logit minus the log-sum-exp, without the
    softmax gradient that the fused cross-entropy op computes alongside its
    loss (about 1.5x faster scoring of a 10k vocabulary, BENCHMARKS.md).
    """
    target_logits = ops.take_along_axis(logits, ops.expand_dims(targets, -1), axis=-1)[..., 0]  # (batch, time)
    return target_logits - ops.logsumexp(logits, axis=-1)


@tf.autograph.experimental.do_not_convert  # AutoGraph would rewrite the gradient closure into a non-function
@tf.custom_gradient
def softmax_cross_entropy(logits, targets):
    """-ln softmax(logits)[target] `(batch, time)` from float32 logits `(batch, time, vocabulary)`, for training.

    The loss and gradient (softmax - one-hot) of TF's fused
    `sparse_softmax_cross_entropy_with_logits`, from ops with faster CPU
    kernels: `target_log_probs` forward, `tf.nn.softmax` backward. On
    PTB-small's (700, 10,002) logits, forward and backward, the fused op
    took 48 ms and these 18.7 ms on an Intel Xeon; under XLA both cost the
    same (BENCHMARKS.md, "A faster full-softmax cross-entropy").
    """

    def gradient(upstream):  # (batch, time)
        probabilities = tf.nn.softmax(logits)  # (batch, time, vocabulary)
        one_hot = tf.one_hot(targets, tf.shape(logits)[-1], dtype=logits.dtype)
        return upstream[..., None] * (probabilities - one_hot), None

    return -target_log_probs(logits, targets), gradient


@keras.saving.register_keras_serializable(package="textlstm")
class LanguageModel(Task):
    """Next-token logits over an `LSTMBackbone`, with scoring and generation.

        ids (batch, time) ──► LSTMBackbone ──► hidden (batch, time, hidden_dim)
            ──► hidden @ Eᵀ + b ──► logits (batch, time, vocabulary_size)

    With `tie_weights=True` the output matrix E is the input embedding
    (Press & Wolf 2017; Inan et al. 2017), which needs
    `embedding_dim == hidden_dim`.

    Training (`fit`) can carry the LSTM state from one batch to the next,
    which is truncated BPTT over the streams of
    `textlstm.data.stream_windows`: compile with `carry_state=True`. The
    state is reset to zero at the start of every epoch and of every
    evaluation, and gradients never flow across windows. Compile with
    `sampled_softmax=N` to train with N sampled negatives instead of the
    full softmax (Jean et al. 2015); evaluation always uses the full
    softmax, so validation perplexity is exact.

    Raw text reaches the model only through its `preprocessor`
    (`textlstm.preprocessors.LanguageModelPreprocessor`), which holds the
    tokenizer and the start token the model was trained with: scoring
    (`score_strings`, which `textlstm.probes.KerasScorer` batches),
    generation and export all take their ids from it, as training data does.

    Args:
        backbone: an `LSTMBackbone` (unidirectional).
        preprocessor: optional `LanguageModelPreprocessor`; needed by
            `score` and `generate`, saved with the model.
        tie_weights: bool, share input and output embeddings.

    Example:
    >>> from textlstm.preprocessors import LanguageModelPreprocessor
    >>> from textlstm.tokenizers import WordTokenizer
    >>> tokenizer = WordTokenizer.from_texts(["the cat sat on the mat"])
    >>> backbone = LSTMBackbone(tokenizer.vocabulary_size(), embedding_dim=8, hidden_dim=8, num_layers=1)
    >>> lm = LanguageModel(backbone, preprocessor=LanguageModelPreprocessor.for_mode(tokenizer, "stream"))
    >>> lm.score_strings(["the cat sat"])["lengths"].numpy().tolist()  # 3 words and </s>
    [4]
    >>> len(lm.generate(["the"], max_length=5, sampler="greedy"))
    1
    """

    def __init__(self, backbone, preprocessor=None, tie_weights=True, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(backbone, LSTMBackbone):
            raise ValueError(f"`backbone` must be an LSTMBackbone, received {type(backbone).__name__}.")
        if backbone.bidirectional:
            raise ValueError("`backbone` has bidirectional=True; a language model must not see future tokens.")
        if tie_weights and backbone.embedding_dim != backbone.hidden_dim:
            raise ValueError(
                f"`tie_weights=True` needs embedding_dim == hidden_dim, received "
                f"embedding_dim={backbone.embedding_dim}, hidden_dim={backbone.hidden_dim}."
            )
        if preprocessor is not None and not isinstance(preprocessor, LanguageModelPreprocessor):
            raise ValueError(f"`preprocessor` must be a LanguageModelPreprocessor, received {type(preprocessor).__name__}.")
        tokenizer = None if preprocessor is None else preprocessor.tokenizer
        if tokenizer_vocabulary_size(tokenizer) not in (None, backbone.vocabulary_size):
            raise ValueError(
                f"`preprocessor.tokenizer` has {tokenizer.vocabulary_size()} tokens but the backbone's "
                f"vocabulary_size is {backbone.vocabulary_size}."
            )
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.tie_weights = tie_weights
        self.carry_state = False
        self.sampled_softmax = 0
        vocabulary_size = backbone.vocabulary_size
        if tie_weights:
            self.output_kernel = None
        else:
            self.output_kernel = self.add_weight(
                shape=(vocabulary_size, backbone.hidden_dim), name="output_kernel",
                initializer=keras.initializers.RandomUniform(-0.1, 0.1),
            )
        self.output_bias = self.add_weight(shape=(vocabulary_size,), name="output_bias", initializer="zeros")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.perplexity = Perplexity(name="perplexity")
        self.sampler_seed = keras.random.SeedGenerator()  # sampled softmax negatives; its state is checkpointed
        self(ops.zeros((1, 1), "int32"))  # build every weight now, as checkpoint restoring needs
        self._carried = CarriedStates()

    def build(self, input_shape):
        self.backbone.build(input_shape)
        self.built = True

    @property
    def tokenizer(self):
        """The preprocessor's tokenizer (None without a preprocessor)."""
        return None if self.preprocessor is None else self.preprocessor.tokenizer

    @property
    def output_embedding(self):
        """The (vocabulary_size, hidden_dim) output matrix."""
        if self.tie_weights:
            return self.backbone.token_embedding.embeddings
        return self.output_kernel

    def call(self, token_ids, initial_state=None, return_state=False, training=None):
        """ids `(batch, time)` -> logits `(batch, time, vocabulary_size)` [, final states]."""
        hidden, states = self.backbone(token_ids, initial_state=initial_state, return_state=True, training=training)
        logits = self.project(ops.cast(hidden, self.compute_dtype))  # float32 even under a mixed-precision backbone
        return (logits, states) if return_state else logits

    def project(self, hidden):
        """hidden `(..., hidden_dim)` -> logits `(..., vocabulary_size)`."""
        return ops.matmul(hidden, ops.transpose(self.output_embedding)) + self.output_bias

    # Training ----------------------------------------------------------------

    def compile(self, optimizer="adam", carry_state=False, sampled_softmax=0, **kwargs):
        """Keras `compile` plus LM options.

        Args:
            optimizer: a Keras optimizer or its name.
            carry_state: bool, carry the recurrent state between batches
                (truncated BPTT over `stream_windows` data).
            sampled_softmax: int, negatives sampled per batch in training
                (Jean et al. 2015; log-uniform sampler, which assumes ids
                sorted by frequency, as textlstm's tokenizers produce); 0 =
                full softmax.
            **kwargs: passed to `keras.Model.compile` (e.g. `jit_compile`).
        """
        if sampled_softmax < 0 or sampled_softmax >= self.backbone.vocabulary_size:
            raise ValueError(
                f"`sampled_softmax` must be in [0, vocabulary_size={self.backbone.vocabulary_size}), "
                f"received {sampled_softmax!r}."
            )
        if sampled_softmax and kwargs.get("jit_compile") is True:
            raise ValueError(
                f"`jit_compile=True` cannot compile `sampled_softmax={sampled_softmax}`: XLA has no "
                f"kernel for the candidate sampler's distinct draws. Use sampled_softmax=0 or jit_compile=False."
            )
        if "loss" in kwargs:
            raise ValueError(f"`loss`: LanguageModel computes its own loss, received {kwargs['loss']!r}.")
        super().compile(optimizer=optimizer, **kwargs)
        self.carry_state = carry_state
        self.sampled_softmax = sampled_softmax

    @property
    def jit_compile(self):
        return super().jit_compile

    @jit_compile.setter
    def jit_compile(self, value):
        # Keras refuses XLA for the whole model if any sublayer cannot compile;
        # the preprocessor (string ops) never runs in train_step or test_step, so
        # only the backbone decides.
        if value and not all(layer.supports_jit for layer in self.backbone._flatten_layers()):
            logger.warning("jit_compile=True is not supported by this backbone; training without XLA.")
            value = False
        self._jit_compile = value

    def get_compile_config(self):
        # A reloaded model is ready for scoring and generation; training is
        # resumed from the run's checkpoints (textlstm.checkpoints), which hold the optimizer.
        return None

    @property
    def metrics(self):
        return [self.loss_tracker, self.perplexity]

    def reset_carried_state(self, phase=None):
        """Zeroes the carried state of `phase` ("train" or "test"; None = both)."""
        for (state_phase, _), variables in self._carried.variables.items():
            if phase in (None, state_phase):
                for variable in variables:
                    variable.assign(tf.zeros_like(variable))

    def training_state_variables(self):
        """`textlstm.checkpoints.default_training_state`, plus the state carried between training windows
        (created by `fit`) in "epoch"."""
        state = default_training_state(self)
        carried = [v for (phase, _), variables in sorted(self._carried.variables.items()) if phase == "train"
                   for v in variables]
        return {"run": state["run"], "epoch": state["epoch"] + carried}

    def _prepare_carried(self, phase, data):
        """Creates (eagerly, with a fixed shape XLA accepts) the state `phase` carries for `data`'s batch size."""
        if not self.carry_state or data is None:
            return
        spec = data.element_spec[0] if isinstance(data, tf.data.Dataset) else None
        batch_size = None if spec is None else spec.shape[0]
        if batch_size is None:
            raise ValueError(
                f"`carry_state=True` needs a tf.data.Dataset with a fixed batch size (e.g. "
                f"textlstm.data.stream_windows), received {type(data).__name__} with batch size {batch_size}."
            )
        if (phase, batch_size) not in self._carried.variables:
            self._carried.variables[(phase, batch_size)] = [
                tf.Variable(tf.zeros((batch_size, self.backbone.hidden_dim)), trainable=False)
                for _ in range(self.backbone.num_layers * self.backbone.states_per_layer)
            ]

    def _read_carried(self, phase, x):
        if not self.carry_state:
            return None
        variables = self._carried.variables[(phase, x.shape[0])]
        per = self.backbone.states_per_layer
        return [[v.read_value() for v in variables[i : i + per]] for i in range(0, len(variables), per)]

    def _write_carried(self, phase, x, states):
        if self.carry_state:
            flat = [s for layer in states for s in layer]
            for variable, value in zip(self._carried.variables[(phase, x.shape[0])], flat):
                variable.assign(tf.cast(tf.stop_gradient(value), variable.dtype))

    def _token_losses(self, hidden, targets, training):
        """Per-token negative log-likelihood `(batch, time)`, in nats."""
        if training and self.sampled_softmax:
            flat_hidden = tf.reshape(hidden, (-1, self.backbone.hidden_dim))  # (batch*time, hidden)
            labels = tf.reshape(tf.cast(targets, "int64"), (-1, 1))  # (batch*time, 1)
            sampled_values = log_uniform_candidates(labels, self.sampled_softmax, self.backbone.vocabulary_size,
                                                    self.sampler_seed.next())
            losses = tf.nn.sampled_softmax_loss(
                self.output_embedding, self.output_bias, labels, flat_hidden,
                num_sampled=self.sampled_softmax, num_classes=self.backbone.vocabulary_size,
                sampled_values=sampled_values,
            )
            return tf.reshape(losses, tf.shape(targets))
        logits = self.project(hidden)  # (batch, time, vocabulary)
        if training:
            return softmax_cross_entropy(logits, targets)
        return -target_log_probs(logits, targets)

    def _step(self, data, training):
        """(mean loss, token losses `(batch, time)`, their weights), reading and writing the carried state."""
        phase = "train" if training else "test"
        x = keras.utils.unpack_x_y_sample_weight(data)[0]
        loss, token_losses, sample_weight, states = self._forward(data, self._read_carried(phase, x), training)
        self._write_carried(phase, x, states)
        return loss, token_losses, sample_weight

    def _forward(self, data, initial_state, training):
        """`_step` from an explicit `initial_state` (per layer, `[h, c]` of `(batch, hidden_dim)`; None = zeros),
        returning the final states too: what `textlstm.distributed` runs on each replica's share of the rows."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is None:
            sample_weight = tf.cast(tf.not_equal(y, PAD_ID), "float32")
        # Stream windows are padded only at the end of the last one (whose padded targets weigh 0 and whose
        # final state nothing reads), so with a carried state the backbone runs unmasked.
        hidden, states = self.backbone(x, initial_state=initial_state, return_state=True, training=training,
                                       padded=not self.carry_state)
        token_losses = self._token_losses(ops.cast(hidden, self.compute_dtype), y, training)  # (batch, time)
        loss = tf.reduce_sum(token_losses * sample_weight) / tf.maximum(tf.reduce_sum(sample_weight), 1.0)
        return loss, token_losses, sample_weight, states

    def _update_metrics(self, token_losses, sample_weight):
        self.loss_tracker.update_state(token_losses, sample_weight=sample_weight)
        self.perplexity.update_state(token_losses, sample_weight=sample_weight)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            loss, token_losses, sample_weight = self._step(data, training=True)
            scaled_loss = self.optimizer.scale_loss(loss)  # the loss itself, unless compile added loss scaling
        gradients = [merge_repeated_rows(g) for g in tape.gradient(scaled_loss, self.trainable_variables)]
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._update_metrics(token_losses, sample_weight)

    def test_step(self, data):
        _, token_losses, sample_weight = self._step(data, training=False)
        return self._update_metrics(token_losses, sample_weight)

    def fit(self, x=None, *args, callbacks=None, **kwargs):
        """Keras `fit`, never shuffling (stream order is what the carried state
        relies on; shuffle in the dataset if the layout allows it). With
        `carry_state`, the state is reset at each epoch start."""
        self._prepare_carried("train", x)
        # First, so a callback restoring a checkpoint mid-epoch (textlstm.checkpoints) writes the state after it.
        callbacks = [_ResetCarriedState()] + list(callbacks or [])
        kwargs["shuffle"] = False
        return super().fit(x, *args, callbacks=callbacks, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        """Keras `evaluate`, always starting from a zero state."""
        self._prepare_carried("test", x)
        self.reset_carried_state("test")
        return super().evaluate(x, *args, **kwargs)

    # Scoring -----------------------------------------------------------------

    def _require_preprocessor(self, method):
        if self.preprocessor is None:
            raise ValueError(f"`{method}` needs a preprocessor, but preprocessor=None; build the LanguageModel "
                             f"with `preprocessor=LanguageModelPreprocessor(...)`.")

    def token_log_probs(self, token_ids):
        """ids `(batch, time)` -> ln p(ids[:, t] | ids[:, :t]) `(batch, time - 1)`, 0 on padding."""
        inputs, targets = token_ids[:, :-1], token_ids[:, 1:]  # (batch, time - 1) each
        # No mask: with right padding a token's output never depends on the padding after it.
        hidden = self.backbone(inputs, training=False, padded=False)  # (batch, time - 1, hidden_dim)
        # The softmax only where a token is, so its cost and memory follow the tokens, not the padded shape.
        is_token = tf.not_equal(targets, PAD_ID)  # (batch, time - 1)
        token_hidden = tf.boolean_mask(ops.cast(hidden, self.compute_dtype), is_token)  # (tokens, hidden_dim)
        token_targets = tf.boolean_mask(targets, is_token)  # (tokens,)
        # Rounded up to a multiple of 512 rows: TF keeps kernels per shape, and a count of its own for every batch
        # grew the process by ~0.4 KB a sentence in the soak test (BENCHMARKS.md).
        tokens = tf.shape(token_targets)[0]
        extra = -tokens % SCORING_ROWS
        token_hidden = tf.pad(token_hidden, [[0, extra], [0, 0]])  # (rows, hidden_dim)
        token_targets = tf.pad(token_targets, [[0, extra]])  # (rows,)
        token_log_probs = target_log_probs(self.project(token_hidden), token_targets)[:tokens]  # (tokens,)
        return tf.scatter_nd(tf.where(is_token), token_log_probs, tf.shape(targets, out_type=tf.int64))

    def score_strings(self, texts):
        """Raw strings in, everything in-graph: what the exported signature runs.

        Returns a dict of
        - `token_ids (batch, time)`: the preprocessor's start token first, padded with 0;
        - `log_probs (batch, time - 1)`: ln p(token | the tokens before it), nats, 0 on padding;
        - `lengths (batch,)`: scored tokens per text (tokens + `</s>`);
        - `starts`, `ends (batch, time - 1)`: each scored token's byte span in its
          text (`</s>` at (n, n), n the text's length), 0 on padding.
        """
        token_ids, starts, ends = self.preprocessor.tokenize_with_offsets(texts)  # ragged (batch, None) each
        token_ids = token_ids.to_tensor(PAD_ID)  # (batch, time)
        log_probs = self.token_log_probs(token_ids)  # (batch, time - 1)
        lengths = tf.reduce_sum(tf.cast(tf.not_equal(token_ids[:, 1:], PAD_ID), "int32"), axis=1)
        return {"token_ids": token_ids, "log_probs": log_probs, "lengths": lengths,
                "starts": starts.to_tensor(0)[:, 1:], "ends": ends.to_tensor(0)[:, 1:]}

    # Generation --------------------------------------------------------------

    def generate(self, prompts, max_length=30, sampler="top_p", temperature=1.0, k=40, p=0.9, seed=None,
                 num_beams=4):
        """Continues each prompt, one token at a time, until `</s>` or `max_length` new tokens.

        Args:
            prompts: list of strings (may be "" to sample from scratch).
            max_length: int, new tokens at most.
            sampler: "greedy", "top_k", "top_p" (nucleus, Holtzman et al.
                2020) or "beam" (beam search: the continuation of highest
                total log-probability among `num_beams` kept at each step;
                KerasHub's `BeamSampler`, which has no length penalty and
                keeps extending a beam after its `</s>`, which is cut off
                here); the KerasHub samplers do the picking.
            temperature: float, divides the logits before sampling.
            k: int, candidates kept by "top_k".
            p: float, probability mass kept by "top_p".
            seed: int, makes sampling repeatable.
            num_beams: int, beams kept by "beam".

        Returns:
            The prompts with their continuations, detokenized.
        """
        self._require_preprocessor("generate")
        if isinstance(prompts, str):
            raise ValueError(f"`prompts` must be a list of strings, received the string {prompts!r}.")
        if not prompts:
            return []
        if not 0 < k:
            raise ValueError(f"`k` must be positive, received {k!r}.")
        if not 0 < p <= 1:
            raise ValueError(f"`p` must be in (0, 1], received {p!r}.")
        if max_length <= 0:
            raise ValueError(f"`max_length` must be positive, received {max_length!r}.")
        if temperature <= 0:
            raise ValueError(f"`temperature` must be positive, received {temperature!r}.")
        if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams < 1:
            raise ValueError(f"`num_beams` must be a positive int, received {num_beams!r}.")
        samplers = {
            "greedy": lambda: keras_hub.samplers.GreedySampler(),
            "top_k": lambda: keras_hub.samplers.TopKSampler(k=min(k, self.backbone.vocabulary_size), seed=seed, temperature=temperature),
            "top_p": lambda: keras_hub.samplers.TopPSampler(p=p, seed=seed, temperature=temperature),
            "beam": lambda: keras_hub.samplers.BeamSampler(num_beams=num_beams, temperature=temperature),
        }
        if sampler not in samplers:
            raise ValueError(f"`sampler` must be one of {sorted(samplers)}, received {sampler!r}.")
        settings = {"greedy": (), "top_k": (k, temperature), "top_p": (p, temperature), "beam": (num_beams, temperature)}
        run = self._generation_function((sampler, *settings[sampler]), samplers[sampler], seed)
        prompt_ids = self.preprocessor.prompt(tf.constant(list(prompts)))  # ragged (batch, None): start token first
        lengths = prompt_ids.row_lengths().numpy()
        total = int(lengths.max()) + max_length
        padded = prompt_ids.to_tensor(PAD_ID, shape=[len(prompts), total])  # (batch, total)
        mask = tf.sequence_mask(lengths, total)  # True on prompt tokens, kept as they are
        if sampler == "beam":  # a beam's score adds up every step it takes: each prompt alone, its steps only
            output = [run(padded[i : i + 1, : length + max_length], mask[i : i + 1, : length + max_length],
                          tf.constant(length, "int32")).numpy()[0] for i, length in enumerate(lengths)]
        else:
            output = run(padded, mask, tf.constant(lengths.min(), "int32")).numpy()
        texts = []
        for ids, length in zip(output, lengths):
            new = ids[length : length + max_length].tolist()
            new = new[: new.index(EOS_ID)] if EOS_ID in new else new
            texts.append(ids[1:length].tolist() + new)
        ids = tf.ragged.constant(texts, dtype="int32", ragged_rank=1)  # (batch, None)
        return [t.decode("utf-8") for t in self.tokenizer.detokenize(ids).numpy()]

    def _generation_function(self, settings, make_sampler, seed):
        """The compiled sampling loop for one sampler's `settings`, traced once and kept.

        One `tf.function` runs the whole loop as a graph (a `tf.while_loop`),
        where eager generation paid Python's dispatch on every op of every
        step. It is kept in `_GENERATION_FUNCTIONS`, beside the model rather
        than on it, so what Keras tracks and saves of the model (weights,
        exports) is what it was before any generation. Each call starts the
        sampler's random state where a fresh `keras.random.SeedGenerator(seed)`
        starts: a seed gives the same text on every call, no seed a random state.
        """
        functions = _GENERATION_FUNCTIONS.setdefault(self, {})
        if settings not in functions:
            if len(functions) == GENERATION_FUNCTIONS_KEPT:  # a sweep of settings keeps only the latest graphs
                functions.pop(next(iter(functions)))
            sampler = make_sampler()
            model = weakref.ref(self)  # the cache must not keep the model alive

            @tf.function(input_signature=(tf.TensorSpec([None, None], "int32"), tf.TensorSpec([None, None], "bool"),
                                          tf.TensorSpec([], "int32")))
            def run(prompt, mask, start):
                return model()._generate(prompt, mask, sampler, start)

            functions[settings] = (sampler, run)
        sampler, run = functions[settings]
        for state in sampler.variables:  # top_k's and top_p's one generator; greedy and beam have none
            state.assign(keras.random.SeedGenerator(seed).state)  # seed=None: a random one, as a fresh sampler has
        return run

    def _generate(self, prompt, mask, sampler, start):
        """Runs `sampler` over `prompt (batch, total)` from position `start` (at most the shortest prompt's
        length); the tokens before it are read once, in one call, to fill the state the sampler starts from."""
        batch_size = tf.shape(prompt)[0]
        per = self.backbone.states_per_layer
        never_sampled = tf.one_hot([PAD_ID, BOS_ID], self.backbone.vocabulary_size, on_value=-1e9)
        never_sampled = tf.reduce_sum(never_sampled, axis=0)  # (vocabulary,)
        # The loop carries the states in the backbone's compute dtype, which is what its LSTMs return.
        zeros = tuple(ops.cast(s, self.backbone.compute_dtype) for layer in self.backbone.initial_state(batch_size)
                      for s in layer)

        # Every token the backbone reads here is a real one (prompts are read up to the shortest one's length,
        # then tokens are sampled, never <pad>), so it runs unmasked: one step then takes the hoisted kernel.
        def read_prompt():  # tokens 0 .. start-2 in one call; token start-1 is the sampler's first input
            states = [list(zeros[i : i + per]) for i in range(0, len(zeros), per)]
            _, states = self.backbone(prompt[:, : start - 1], initial_state=states, return_state=True,
                                      training=False, padded=False)
            return tuple(s for layer in states for s in layer)

        initial = tf.cond(start > 1, read_prompt, lambda: zeros)

        def next_token(prompt, cache, index):  # one step: token index-1 -> logits for index
            tokens = prompt[:, index - 1][:, None]  # (batch, 1), a static 1
            states = [list(cache[i : i + per]) for i in range(0, len(cache), per)]
            hidden, states = self.backbone(tokens, initial_state=states, return_state=True, training=False,
                                           padded=False)  # (batch, 1, hidden)
            logits = self.project(ops.cast(hidden[:, 0, :], self.compute_dtype))  # (batch, vocabulary), float32
            return logits + never_sampled, None, tuple(s for layer in states for s in layer)  # no <pad>, <s> next

        return sampler(next_token, prompt, cache=initial, index=start, mask=mask, stop_token_ids=[EOS_ID])

    # Serialization -----------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.saving.serialize_keras_object(self.backbone),
                "preprocessor": keras.saving.serialize_keras_object(self.preprocessor),
                "tie_weights": self.tie_weights,
            }
        )
        return config


def tokenizer_vocabulary_size(tokenizer):
    """The tokenizer's size, or None while it has no vocabulary (during loading)."""
    try:
        return None if tokenizer is None else tokenizer.vocabulary_size()
    except ValueError:
        return None


class _ResetCarriedState(keras.callbacks.Callback):
    """Zeroes a LanguageModel's carried state at the start of each epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.reset_carried_state("train")
