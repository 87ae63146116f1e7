"""TextClassifier: text classification on an LSTMBackbone, and ULMFiT transfer from language models.

    strings ──► ClassifierPreprocessor ──► ids (batch, time)
        ──► LSTMBackbone ──► pooling ──► Dropout ──► Dense + softmax ──► (batch, num_classes)

`SentimentClassifier` is the sentiment task's subclass, and
`textlstm.models.agreement.AgreementClassifier` the number-agreement one.
`transfer_language_model` initialises the classifier's backbone from a
trained `LanguageModel` (and optionally one trained on reversed text), and
`classifier_layer_groups` splits the weights bottom to top, for
discriminative learning rates and gradual unfreezing (Howard & Ruder 2018).
"""

import dataclasses
import logging

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from textlstm.models.backbone import LSTMBackbone
from textlstm.models.language_model import LanguageModel, tokenizer_vocabulary_size
from textlstm.models.task import Task
from textlstm.preprocessors import ClassifierPreprocessor
from textlstm.tokenizers import PAD_ID

logger = logging.getLogger(__name__)

POOLINGS = ("final", "max", "mean", "concat")


@dataclasses.dataclass
class ClassifierPredictions:
    """What `TextClassifier.predict` returns for a list of strings.

    `label_ids[i]` is the most probable class of `texts[i]`, `labels[i]` its
    name and `probabilities[i]` the whole distribution over classes.
    """

    texts: list
    label_ids: np.ndarray
    labels: list
    probabilities: np.ndarray


@keras.saving.register_keras_serializable(package="textlstm")
class TextClassifier(Task):
    """Class probabilities from a pooled `LSTMBackbone` encoding of the text.

        ids (batch, time) ──► LSTMBackbone ──► sequence (batch, time, output_dim), final states
            ──► pooling ──► Dropout ──► Dense ──► softmax (batch, num_classes)

    Poolings, all blind to the right padding (id 0):

    - "final": the last layer's final hidden state of each direction,
      concatenated. With masking, the forward state is the one after the
      last real token, the backward one after reading back to the first.
    - "max": max over the real time steps of the last layer's outputs
      (max-over-time pooling, Collobert et al. 2011).
    - "mean": mean over the real time steps of the same outputs.
    - "concat": [final, max, mean], ULMFiT's concat pooling (Howard & Ruder
      2018).

    A bidirectional backbone (`bidirectional=True`, Schuster & Paliwal 1997)
    reads each text both ways, and `transfer_language_model` can fill its
    two directions from a forward and a backward language model; a
    unidirectional backbone works too, and takes a forward language model
    only. Tasks subclass it (`SentimentClassifier`, `AgreementClassifier`).

    `compile(optimizer)` defaults to sparse categorical cross-entropy and
    accuracy, so `fit` takes `(ids, labels)` or `(ids, labels,
    sample_weight)` batches; `predict` takes ids, or a list of strings when
    the classifier has a preprocessor.

    Args:
        backbone: an `LSTMBackbone`, bidirectional or not.
        num_classes: int >= 2.
        preprocessor: optional `ClassifierPreprocessor`, turns strings into
            ids for `predict`; saved with the model.
        pooling: "final", "max", "mean" or "concat".
        dropout: float in [0, 1), dropout on the pooled features before the
            output layer (Srivastava et al. 2014).
        label_names: optional list of `num_classes` distinct strings, the
            class names `predict` returns; defaults to "0", "1", ...

    Example:
    >>> from textlstm.tokenizers import WordTokenizer
    >>> tokenizer = WordTokenizer.from_texts(["a fine film", "a dull film"])
    >>> backbone = LSTMBackbone(tokenizer.vocabulary_size(), embedding_dim=8, hidden_dim=8,
    ...                         num_layers=1, bidirectional=True)
    >>> classifier = TextClassifier(backbone, num_classes=2, label_names=["negative", "positive"],
    ...                             preprocessor=ClassifierPreprocessor(tokenizer))
    >>> predictions = classifier.predict(["a fine film", "dull", "a film"])
    >>> len(predictions.labels), predictions.probabilities.shape
    (3, (3, 2))
    >>> set(predictions.labels) <= {"negative", "positive"}
    True
    """

    def __init__(self, backbone, num_classes, preprocessor=None, pooling="concat", dropout=0.5,
                 label_names=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(backbone, LSTMBackbone):
            raise ValueError(f"`backbone` must be an LSTMBackbone, received {type(backbone).__name__}.")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"`num_classes` must be an int >= 2, received {num_classes!r}.")
        if preprocessor is not None and not isinstance(preprocessor, ClassifierPreprocessor):
            raise ValueError(
                f"`preprocessor` must be a ClassifierPreprocessor or None, received {type(preprocessor).__name__}."
            )
        vocabulary_size = None if preprocessor is None else tokenizer_vocabulary_size(preprocessor.tokenizer)
        if vocabulary_size not in (None, backbone.vocabulary_size):
            raise ValueError(
                f"`preprocessor` has a tokenizer of {vocabulary_size} tokens but the backbone's "
                f"vocabulary_size is {backbone.vocabulary_size}."
            )
        if pooling not in POOLINGS:
            raise ValueError(f"`pooling` must be one of {list(POOLINGS)}, received {pooling!r}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1), received {dropout!r}.")
        if label_names is None:
            label_names = [str(i) for i in range(num_classes)]
        label_names = list(label_names)
        if (len(label_names) != num_classes or len(set(label_names)) != num_classes
                or not all(isinstance(name, str) for name in label_names)):
            raise ValueError(
                f"`label_names` must be {num_classes} distinct strings (num_classes={num_classes}), "
                f"received {label_names!r}."
            )
        self.backbone = backbone
        self.num_classes = num_classes
        self.preprocessor = preprocessor
        self.pooling = pooling
        self.dropout = dropout
        self.label_names = label_names
        self.pooled_dropout = keras.layers.Dropout(dropout, name="pooled_dropout")
        # float32 probabilities even under a mixed-precision policy.
        self.output_layer = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="output")
        self(ops.ones((1, 1), "int32"))  # build every weight now, as checkpoint restoring and load_weights need

    def build(self, input_shape):
        self.backbone.build(input_shape)
        self.built = True

    def call(self, token_ids, training=None):
        """ids `(batch, time)`, right padded with 0 -> class probabilities `(batch, num_classes)`."""
        sequence, states = self.backbone(token_ids, return_state=True, training=training)  # (batch, time, output_dim)
        features = self.pool(token_ids, sequence, states[-1])  # (batch, features)
        features = self.pooled_dropout(features, training=training)
        return self.output_layer(features)  # (batch, num_classes)

    def pool(self, token_ids, sequence, last_layer_states):
        """The pooled features `(batch, features)` of the last layer's outputs and final states.

        Args:
            token_ids: int `(batch, time)`, right padded with 0; every row
                holds at least one real token.
            sequence: `(batch, time, output_dim)`, the last layer's outputs.
            last_layer_states: the last layer's final states, `[h, c]` per
                direction for an LSTM, `[h]` for a GRU.
        """
        mask = ops.expand_dims(ops.not_equal(token_ids, PAD_ID), -1)  # (batch, time, 1)
        pooled = {}
        if self.pooling in ("final", "concat"):
            states_per_direction = len(last_layer_states) // (2 if self.backbone.bidirectional else 1)
            pooled["final"] = ops.concatenate(last_layer_states[::states_per_direction], axis=-1)  # (batch, output_dim)
        if self.pooling in ("max", "concat"):
            pooled["max"] = ops.max(ops.where(mask, sequence, float("-inf")), axis=1)  # (batch, output_dim)
        if self.pooling in ("mean", "concat"):
            mask = ops.cast(mask, sequence.dtype)
            total = ops.sum(sequence * mask, axis=1)  # (batch, output_dim)
            pooled["mean"] = total / ops.maximum(ops.sum(mask, axis=1), 1)  # (batch, output_dim)
        return ops.concatenate([pooled[name] for name in ("final", "max", "mean") if name in pooled], axis=-1)

    def compile(self, optimizer="adam", loss="sparse_categorical_crossentropy", metrics=("accuracy",), **kwargs):
        """Keras `compile`, with the classification loss and accuracy as defaults.

        Args:
            optimizer: a Keras optimizer or its name.
            loss: the loss on the probabilities; integer labels by default.
            metrics: metrics to track.
            **kwargs: passed to `keras.Model.compile` (e.g. `jit_compile`).
        """
        super().compile(optimizer=optimizer, loss=loss, metrics=list(metrics or []), **kwargs)

    def get_compile_config(self):
        # A reloaded model is ready for prediction; training resumes from the
        # run directory's training checkpoints (textlstm.checkpoints), which hold the optimizer
        # (a per-layer-group MultiOptimizer has no serializable config).
        return None

    def predict(self, x, batch_size=None, verbose="auto", **kwargs):
        """Class probabilities of ids, or labelled predictions of strings.

        Args:
            x: a list (or tuple) of strings, which the preprocessor turns
                into ids; or anything `keras.Model.predict` takes (ids
                `(batch, time)`, a dataset of them).
            batch_size: int, texts (or id rows) per batch; 32 by default.
            verbose: Keras's progress display; for strings "auto" is quiet.
            **kwargs: passed to `keras.Model.predict`.

        Returns:
            For strings, a `ClassifierPredictions`; otherwise the
            probabilities `(n, num_classes)` as a numpy array.
        """
        if isinstance(x, str):
            raise ValueError(f"`x` must be a list of strings, received the string {x!r}; pass [{x!r}].")
        if not isinstance(x, (list, tuple)) or not all(isinstance(text, str) for text in x):
            return super().predict(x, batch_size=batch_size, verbose=verbose, **kwargs)
        if self.preprocessor is None:
            raise ValueError(
                "`x` holds strings, which need a preprocessor, but preprocessor=None; build the "
                f"{type(self).__name__} with `preprocessor=ClassifierPreprocessor(tokenizer)` or pass ids."
            )
        texts = list(x)
        if not texts:
            return ClassifierPredictions(texts=[], label_ids=np.zeros((0,), "int64"), labels=[],
                                         probabilities=np.zeros((0, self.num_classes), "float32"))
        # Each batch is padded to its own longest text.
        dataset = tf.data.Dataset.from_tensor_slices(texts).batch(batch_size or 32).map(self.preprocessor)
        probabilities = super().predict(dataset, verbose=0 if verbose == "auto" else verbose, **kwargs)
        label_ids = np.argmax(probabilities, axis=-1)  # (n,)
        return ClassifierPredictions(
            texts=texts,
            label_ids=label_ids,
            labels=[self.label_names[i] for i in label_ids],
            probabilities=probabilities,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.saving.serialize_keras_object(self.backbone),
                "num_classes": self.num_classes,
                "preprocessor": keras.saving.serialize_keras_object(self.preprocessor),
                "pooling": self.pooling,
                "dropout": self.dropout,
                "label_names": self.label_names,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="textlstm")
class SentimentClassifier(TextClassifier):
    """Binary and five-class sentiment (SST-2, SST-5, MR): a `TextClassifier`, usually on a Bidirectional backbone.

    The sentiment recipe builds it with a bidirectional `LSTMBackbone`
    (Schuster & Paliwal 1997) and "concat" pooling; its arguments, shapes
    and saved form are `TextClassifier`'s. It stays a class of its own so
    that `model.keras` files saved under this name keep loading.

    Example:
    >>> from textlstm.tokenizers import WordTokenizer
    >>> tokenizer = WordTokenizer.from_texts(["a fine film", "a dull film"])
    >>> backbone = LSTMBackbone(tokenizer.vocabulary_size(), embedding_dim=8, hidden_dim=8,
    ...                         num_layers=1, bidirectional=True)
    >>> classifier = SentimentClassifier(backbone, num_classes=2, label_names=["negative", "positive"],
    ...                                  preprocessor=ClassifierPreprocessor(tokenizer))
    >>> classifier.predict(["a fine film"]).probabilities.shape
    (1, 2)
    """


def transfer_language_model(classifier, language_model, backward_language_model=None):
    """Copies language models' embedding and recurrent layers into a classifier's backbone (ULMFiT).

    The first step of ULMFiT (Howard & Ruder 2018): start the classifier
    from a language model's weights, then fine-tune. The models must share
    their vocabulary, `embedding_dim`, `hidden_dim` and `cell_type`; their
    numbers of layers may differ: classifier layers with no language-model
    layer to copy keep their initialisation.

    - Unidirectional classifier: layer i takes the language model's layer i.
    - Bidirectional classifier: the forward direction of layer i takes
      `language_model`'s layer i, the backward direction
      `backward_language_model`'s (one trained on reversed text, as
      ULMFiT's backward model); without it the backward direction keeps
      its initialisation. From layer 1 on a direction reads
      concat(forward, backward) outputs of the layer below (2 * hidden_dim
      rows of kernel, forward first), where a language model's layer reads
      hidden_dim: the language model's kernel goes into the rows reading
      that direction's own outputs and the rows reading the other direction
      are zeroed, so each direction starts out computing exactly what its
      language model computed.

    The classifier has one embedding: it takes `language_model`'s. The
    backward direction therefore reads the forward model's embedding, and
    computes what the backward model computed only where the two
    embeddings agree; fine-tuning adapts it.

    Args:
        classifier: a `TextClassifier` (any subclass) with a preprocessor.
        language_model: a `LanguageModel` with a preprocessor. A warning
            is logged when its start token differs from the classifier's.
        backward_language_model: optional `LanguageModel` trained on
            reversed text, for a bidirectional classifier.

    Returns:
        A report, e.g. `{"embedding": "forward LM", "layers": [{"layer": 0,
        "forward": "copied", "backward": "initialised"}, ...]}`; "backward"
        only for a bidirectional classifier.
    """
    if not isinstance(classifier, TextClassifier):
        raise ValueError(f"`classifier` must be a TextClassifier, received {type(classifier).__name__}.")
    if classifier.preprocessor is None:
        raise ValueError("`classifier` has preprocessor=None; transfer needs its tokenizer to compare vocabularies.")
    target = classifier.backbone
    sources = {"language_model": language_model}
    if backward_language_model is not None:
        if not target.bidirectional:
            raise ValueError(
                "`backward_language_model` needs a bidirectional classifier backbone, but the "
                "classifier's backbone has bidirectional=False."
            )
        sources["backward_language_model"] = backward_language_model
    for name, source in sources.items():
        _check_transferable(classifier, name, source)
    if classifier.preprocessor.start_token != language_model.preprocessor.start_token:
        logger.warning(
            "transfer_language_model: the classifier's sequences open with %r, the language model's with %r; "
            "a ClassifierPreprocessor with start_token=%r shows the layers what they saw in training.",
            classifier.preprocessor.start_token, language_model.preprocessor.start_token,
            language_model.preprocessor.start_token,
        )

    hidden_dim = target.hidden_dim
    target.token_embedding.set_weights(language_model.backbone.token_embedding.get_weights())
    report = {"embedding": "forward LM", "layers": []}
    for i, layer in enumerate(target.recurrent_layers):
        if not target.bidirectional:
            report["layers"].append({"layer": i, "forward": _copy_layer(language_model, i, layer)})
            continue
        entry = {"layer": i}
        for direction, sub_layer, source, rows in (
            ("forward", layer.forward_layer, language_model, slice(0, hidden_dim)),
            ("backward", layer.backward_layer, backward_language_model, slice(hidden_dim, 2 * hidden_dim)),
        ):
            entry[direction] = _copy_layer(source, i, sub_layer, rows if i > 0 else None)
        report["layers"].append(entry)
    logger.info("transfer_language_model: %s", report)
    return report


def _check_transferable(classifier, name, language_model):
    """Raises a ValueError naming what differs between `classifier` and `language_model`."""
    if not isinstance(language_model, LanguageModel):
        raise ValueError(f"`{name}` must be a LanguageModel, received {type(language_model).__name__}.")
    if language_model.tokenizer is None:
        raise ValueError(f"`{name}` has no tokenizer (preprocessor=None); transfer needs it to compare vocabularies.")
    classifier_vocabulary = classifier.preprocessor.tokenizer.get_vocabulary()
    source_vocabulary = language_model.tokenizer.get_vocabulary()
    if classifier_vocabulary != source_vocabulary:
        first = next((i for i, (a, b) in enumerate(zip(classifier_vocabulary, source_vocabulary)) if a != b),
                     min(len(classifier_vocabulary), len(source_vocabulary)))
        raise ValueError(
            f"vocabularies differ: the classifier's preprocessor.tokenizer has {len(classifier_vocabulary)} "
            f"tokens, `{name}`'s tokenizer {len(source_vocabulary)}; first difference at id {first}: "
            f"{classifier_vocabulary[first : first + 1]} vs {source_vocabulary[first : first + 1]}."
        )
    for attribute in ("embedding_dim", "hidden_dim", "cell_type"):
        classifier_value = getattr(classifier.backbone, attribute)
        source_value = getattr(language_model.backbone, attribute)
        if classifier_value != source_value:
            raise ValueError(
                f"`{attribute}` differs: the classifier's backbone has {attribute}={classifier_value!r}, "
                f"`{name}`'s backbone has {attribute}={source_value!r}."
            )


def _copy_layer(language_model, index, layer, kernel_rows=None):
    """Copies `language_model`'s recurrent layer `index` into the Keras RNN `layer`; returns what happened.

    With `kernel_rows`, the language model's input kernel goes into those
    rows of `layer`'s wider kernel and the other rows become zero.
    """
    if language_model is None or index >= language_model.backbone.num_layers:
        return "initialised"
    weights = language_model.backbone.recurrent_layers[index].get_weights()  # kernel, recurrent kernel[, bias]
    if kernel_rows is not None:
        kernel = np.zeros(layer.cell.kernel.shape, weights[0].dtype)  # (2 * hidden, gates * hidden)
        kernel[kernel_rows] = weights[0]  # weights[0]: (hidden, gates * hidden)
        weights[0] = kernel
    layer.set_weights(weights)
    return "copied"


def classifier_layer_groups(classifier):
    """The classifier's trainable variables in groups, bottom to top (Howard & Ruder 2018).

    For discriminative learning rates (a smaller rate for lower groups) and
    gradual unfreezing (unfreeze one more group from the top each epoch).

    Args:
        classifier: a `TextClassifier` (any subclass).

    Returns:
        A list of lists of variables: `[embedding]`, `[layer 0]`, ...,
        `[layer num_layers - 1]`, `[head]`, the head holding every other
        trainable variable. Each trainable variable is in exactly one group.
    """
    backbone = classifier.backbone
    groups = [list(backbone.token_embedding.trainable_variables)]
    groups += [list(layer.trainable_variables) for layer in backbone.recurrent_layers]
    grouped = {id(variable) for group in groups for variable in group}
    groups.append([variable for variable in classifier.trainable_variables if id(variable) not in grouped])
    return groups
