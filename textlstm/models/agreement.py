"""AgreementClassifier: number prediction (Linzen, Dupoux & Goldberg 2016) on an LSTMBackbone.

    prefix "The keys to the cabinet" ──► ClassifierPreprocessor ──► [start] ids, no end token (batch, time)
        ──► unidirectional LSTMBackbone ──► last layer's state after the last prefix word (batch, hidden_dim)
        ──► Dropout ──► Dense + softmax ──► p(singular), p(plural) (batch, 2)

Linzen et al.'s supervised "number prediction" task: the model reads a
sentence up to (not including) a present-tense verb and says whether that
verb is singular or plural. It reads left to right, as a language model
does, so a language model's backbone can initialise it
(`transfer_language_model`), and its accuracy by attractor count (nouns of
the other number between subject and verb) is comparable with a language
model's on the same items (`textlstm.probes.number_prediction`).
"""

import keras

from textlstm.models.backbone import LSTMBackbone
from textlstm.models.classifier import TextClassifier
from textlstm.preprocessors import ClassifierPreprocessor

LABEL_NAMES = ("singular", "plural")


@keras.saving.register_keras_serializable(package="textlstm")
class AgreementClassifier(TextClassifier):
    """The number of the verb that follows a prefix, from the last prefix state.

        ids (batch, time): [start] w_1 ... w_n, right padded with 0
            ──► LSTMBackbone (left to right) ──► last layer's h after w_n (batch, hidden_dim)
            ──► Dropout ──► Dense ──► softmax (batch, 2): ["singular", "plural"]

    A `TextClassifier` with two classes, `label_names=["singular",
    "plural"]` and "final" pooling. The backbone must be unidirectional: a
    backward direction would read the prefix from its end, which a language
    model cannot, and the state must be the one a left-to-right reader has
    after the last prefix word, so the preprocessor must not append an end
    token.

    Args:
        backbone: a unidirectional `LSTMBackbone`.
        preprocessor: optional `ClassifierPreprocessor` with
            `add_end_token=False`, turns prefixes into ids for `predict`;
            saved with the model. `sequence_length=None` keeps every word:
            truncation keeps the first words and would drop the ones
            nearest the verb.
        dropout: float in [0, 1), dropout on the final state before the
            output layer.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Raises:
        ValueError: `backbone` is bidirectional, `preprocessor` adds an end
            token, or any argument `TextClassifier` refuses.

    Example:
    >>> from textlstm.tokenizers import WordTokenizer
    >>> tokenizer = WordTokenizer.from_texts(["the keys to the cabinet", "the key"])
    >>> backbone = LSTMBackbone(tokenizer.vocabulary_size(), embedding_dim=8, hidden_dim=8, num_layers=1)
    >>> preprocessor = ClassifierPreprocessor(tokenizer, add_end_token=False, sequence_length=None)
    >>> classifier = AgreementClassifier(backbone, preprocessor=preprocessor)
    >>> predictions = classifier.predict(["the keys to the cabinet", "the key"])
    >>> predictions.probabilities.shape, set(predictions.labels) <= {"singular", "plural"}
    ((2, 2), True)
    """

    def __init__(self, backbone, preprocessor=None, dropout=0.5, **kwargs):
        if isinstance(backbone, LSTMBackbone) and backbone.bidirectional:
            raise ValueError(
                "`backbone` must be unidirectional: the prefix is read left to right, as a language model "
                "reads it; received a backbone with bidirectional=True."
            )
        if isinstance(preprocessor, ClassifierPreprocessor) and preprocessor.add_end_token:
            raise ValueError(
                "`preprocessor` must have add_end_token=False: the prediction comes from the state after the "
                "last prefix word; received a preprocessor with add_end_token=True."
            )
        super().__init__(backbone, num_classes=len(LABEL_NAMES), preprocessor=preprocessor, pooling="final",
                         dropout=dropout, label_names=list(LABEL_NAMES), **kwargs)

    def get_config(self):
        config = super().get_config()
        for fixed in ("num_classes", "pooling", "label_names"):  # set by __init__, not arguments of it
            del config[fixed]
        return config
