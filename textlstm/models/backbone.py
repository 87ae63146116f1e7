"""LSTMBackbone: token embedding + stacked recurrent layers, shared by every task."""

import logging

import keras
from keras import ops

from textlstm.models.cells import PeepholeLSTMCell
from textlstm.models.recurrent import CUDNN_REQUIREMENTS, LSTM, cudnn_report
from textlstm.special_tokens import PAD_ID

logger = logging.getLogger(__name__)

CELL_TYPES = ("lstm", "gru", "peephole_lstm")

INITIALIZERS = {
    "uniform": lambda: keras.initializers.RandomUniform(-0.1, 0.1),
    "glorot_uniform": keras.initializers.GlorotUniform,
    "he_uniform": keras.initializers.HeUniform,
    "orthogonal": keras.initializers.Orthogonal,
}


@keras.saving.register_keras_serializable(package="textlstm")
class LSTMBackbone(keras.Model):
    """Embedding, `num_layers` stacked LSTM (or GRU, or peephole LSTM) layers, dropout between.

        token ids (batch, time) ──► Embedding ──► Dropout
            ──► [LSTM ──► Dropout] x num_layers ──► sequence (batch, time, output_dim)
                                                   └─► final states, per layer

    Dropout sits only on the non-recurrent connections (Zaremba et al. 2014),
    so the defaults stay cuDNN-eligible: tanh/sigmoid, `recurrent_dropout=0`,
    `use_bias=True`, no unroll, and masks from right padding (id 0) only.
    A cuDNN-ineligible setting raises unless `require_cudnn=False`, and is
    then logged as a warning. The peephole LSTM (`textlstm.models.cells`,
    Gers & Schmidhuber 2000) is such a setting: no fused kernel has it.

    Args:
        vocabulary_size: int, number of token ids.
        embedding_dim: int, size of the token embeddings.
        hidden_dim: int, units of each recurrent layer (per direction).
        num_layers: int, stacked recurrent layers.
        cell_type: "lstm", "gru" (both cuDNN-eligible) or "peephole_lstm"
            (`PeepholeLSTMCell` in `keras.layers.RNN`; needs
            `require_cudnn=False`).
        bidirectional: bool, wrap each layer in `Bidirectional` (classifiers
            only; a language model must not see the future).
        dropout: float, dropout rate on the embeddings and between layers.
        word_dropout: float in [0, 1), the probability that a token type
            is dropped for a whole training batch: its row of the embedding
            matrix is zeroed (the kept rows scaled by 1 / (1 - rate)), so
            every occurrence of that word vanishes at once (Gal &
            Ghahramani 2016's word dropout; AWD-LSTM's embedding dropout,
            Merity et al. 2018, uses 0.1). Training only; 0 turns it off.
        activation, recurrent_activation, recurrent_dropout, use_bias,
            unroll: passed to every recurrent layer; see
            `textlstm.models.recurrent.CUDNN_REQUIREMENTS`.
        kernel_initializer: initializer of the input kernels, a Keras name
            ("glorot_uniform", Glorot & Bengio 2010; "he_uniform", He et al.
            2015; "orthogonal") or "uniform" (±0.1, Zaremba et al. 2014).
        recurrent_initializer: the same for the recurrent kernels;
            "orthogonal" (Saxe et al. 2014) is Keras's default.
        require_cudnn: bool, refuse settings the cuDNN kernel cannot run.
        dtype: Keras's dtype policy of every layer of the stack, e.g.
            "mixed_float16" (float16 compute, float32 weights: GPU tensor
            cores) or "mixed_bfloat16"; the task models on top stay float32
            (their softmax and loss too) and add loss scaling for float16.

    Example:
    >>> import numpy as np
    >>> backbone = LSTMBackbone(vocabulary_size=50, embedding_dim=8, hidden_dim=16, num_layers=2)
    >>> sequence, states = backbone(np.ones((3, 5), "int32"), return_state=True)
    >>> tuple(sequence.shape), len(states), len(states[0])
    ((3, 5, 16), 2, 2)
    """

    def __init__(
        self,
        vocabulary_size,
        embedding_dim=200,
        hidden_dim=200,
        num_layers=2,
        cell_type="lstm",
        bidirectional=False,
        dropout=0.0,
        word_dropout=0.0,
        activation="tanh",
        recurrent_activation="sigmoid",
        recurrent_dropout=0.0,
        use_bias=True,
        unroll=False,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        require_cudnn=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("vocabulary_size", vocabulary_size), ("embedding_dim", embedding_dim),
                            ("hidden_dim", hidden_dim), ("num_layers", num_layers)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive int, received {value!r}.")
        if cell_type not in CELL_TYPES:
            raise ValueError(f"`cell_type` must be one of {CELL_TYPES}, received {cell_type!r}.")
        for name, value in (("dropout", dropout), ("word_dropout", word_dropout)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), received {value!r}.")
        for name, value in (("kernel_initializer", kernel_initializer),
                            ("recurrent_initializer", recurrent_initializer)):
            if value not in INITIALIZERS:
                raise ValueError(f"`{name}` must be one of {sorted(INITIALIZERS)}, received {value!r}.")
        settings = dict(activation=activation, recurrent_activation=recurrent_activation,
                        recurrent_dropout=recurrent_dropout, use_bias=use_bias, unroll=unroll)
        ineligible = {k: v for k, v in settings.items() if v != CUDNN_REQUIREMENTS[k]}
        if cell_type == "peephole_lstm":
            ineligible["cell_type"] = cell_type
        if ineligible and require_cudnn:
            name, value = next(iter(ineligible.items()))
            needs = CUDNN_REQUIREMENTS.get(name, "lstm or gru")
            raise ValueError(
                f"`{name}={value!r}` is not cuDNN-eligible (needs {needs!r}); "
                f"pass require_cudnn=False to allow the slow kernel."
            )
        if ineligible:
            logger.warning("LSTMBackbone: cuDNN-ineligible settings %s; GPUs use the generic kernel.", ineligible)

        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.cell_type = cell_type
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.word_dropout = word_dropout
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self.recurrent_dropout = recurrent_dropout
        self.use_bias = use_bias
        self.unroll = unroll
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.require_cudnn = require_cudnn
        self.output_dim = hidden_dim * (2 if bidirectional else 1)

        self.token_embedding = keras.layers.Embedding(
            vocabulary_size, embedding_dim,
            embeddings_initializer=keras.initializers.RandomUniform(-0.1, 0.1),
            name="token_embedding", dtype=self.dtype_policy,
        )
        if word_dropout:  # only then: a seed generator is a variable, which checkpoints would then have to hold
            self.word_dropout_seed = keras.random.SeedGenerator(name="word_dropout_seed")
        self.embedding_dropout = keras.layers.Dropout(dropout, name="embedding_dropout", dtype=self.dtype_policy)
        self.recurrent_layers = []
        self.layer_dropouts = []
        for i in range(num_layers):
            layer = self._recurrent_layer(i, settings)
            if bidirectional:
                layer = keras.layers.Bidirectional(layer, name=f"bidirectional_{i}", dtype=self.dtype_policy)
            self.recurrent_layers.append(layer)
            self.layer_dropouts.append(keras.layers.Dropout(dropout, name=f"dropout_{i}", dtype=self.dtype_policy))

    def _recurrent_layer(self, index, settings):
        """Layer `index` of the stack, unwrapped: returns sequences and states."""
        initializers = dict(kernel_initializer=INITIALIZERS[self.kernel_initializer](),
                            recurrent_initializer=INITIALIZERS[self.recurrent_initializer]())
        name = f"{self.cell_type}_{index}"
        if self.cell_type == "peephole_lstm":
            settings = dict(settings)
            unroll = settings.pop("unroll")
            cell = PeepholeLSTMCell(self.hidden_dim, **initializers, **settings, dtype=self.dtype_policy)
            return keras.layers.RNN(cell, return_sequences=True, return_state=True, unroll=unroll, name=name,
                                    dtype=self.dtype_policy)
        layer_class = LSTM if self.cell_type == "lstm" else keras.layers.GRU
        return layer_class(self.hidden_dim, return_sequences=True, return_state=True, name=name,
                           dtype=self.dtype_policy, **initializers, **settings)

    def build(self, input_shape):
        self.token_embedding.build(input_shape)
        shape = (input_shape[0], input_shape[1], self.embedding_dim)
        for layer in self.recurrent_layers:
            layer.build(shape)
            shape = (input_shape[0], input_shape[1], self.output_dim)
        self.built = True

    @property
    def cudnn_eligible(self):
        """Whether every recurrent layer can run the fused cuDNN kernel (`cudnn_report` says why not)."""
        return cudnn_report(self)["eligible"]

    @property
    def states_per_layer(self):
        """Tensors of state per layer: (h, c) for an LSTM (peephole or not), (h,) for a GRU, times directions."""
        return (1 if self.cell_type == "gru" else 2) * (2 if self.bidirectional else 1)

    def initial_state(self, batch_size):
        """Zero states: a list (one per layer) of lists of `(batch, hidden_dim)` tensors."""
        return [[ops.zeros((batch_size, self.hidden_dim)) for _ in range(self.states_per_layer)]
                for _ in range(self.num_layers)]

    def call(self, token_ids, initial_state=None, return_state=False, training=None, padded=True):
        """Runs the stack.

        Args:
            token_ids: int `(batch, time)`, right padded with 0.
            initial_state: optional list (per layer) of state lists, as
                returned by a previous call with `return_state=True`.
            return_state: bool, also return the final states.
            padded: bool; False when no row is padded, or when nothing
                after a row's padding is used (truncated-BPTT windows,
                padded only at the very end of a stream): the layers then
                run without a mask, saving its per-step blending.

        Returns:
            `sequence (batch, time, output_dim)`, and with `return_state`
            the final states, a list per layer.
        """
        mask = ops.not_equal(token_ids, PAD_ID) if padded else None  # (batch, time)
        x = self.embed(token_ids, training=training)  # (batch, time, embedding_dim)
        x = self.embedding_dropout(x, training=training)
        final_states = []
        for i, (layer, dropout) in enumerate(zip(self.recurrent_layers, self.layer_dropouts)):
            state = None if initial_state is None else list(initial_state[i])
            outputs = layer(x, mask=mask, initial_state=state, training=training)
            x, states = outputs[0], list(outputs[1:])  # x: (batch, time, output_dim)
            x = dropout(x, training=training)
            final_states.append(states)
        if return_state:
            return x, final_states
        return x

    def embed(self, token_ids, training=None):
        """The token embeddings `(batch, time, embedding_dim)`, with whole words dropped when training."""
        x = self.token_embedding(token_ids)  # (batch, time, embedding_dim)
        if not (training and self.word_dropout):
            return x
        keep = keras.random.uniform((self.vocabulary_size,), seed=self.word_dropout_seed) >= self.word_dropout
        scale = ops.cast(keep, x.dtype) / (1.0 - self.word_dropout)  # (vocabulary,): one draw per word type
        return x * ops.expand_dims(ops.take(scale, token_ids, axis=0), -1)  # (batch, time, embedding_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "embedding_dim": self.embedding_dim,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "cell_type": self.cell_type,
                "bidirectional": self.bidirectional,
                "dropout": self.dropout,
                "word_dropout": self.word_dropout,
                "activation": self.activation,
                "recurrent_activation": self.recurrent_activation,
                "recurrent_dropout": self.recurrent_dropout,
                "use_bias": self.use_bias,
                "unroll": self.unroll,
                "kernel_initializer": self.kernel_initializer,
                "recurrent_initializer": self.recurrent_initializer,
                "require_cudnn": self.require_cudnn,
            }
        )
        return config
