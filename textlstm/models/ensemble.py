"""ClassifierEnsemble: the mean class probabilities of several trained classifiers.

    ids (batch, time) ──► member 1 ──► probabilities (batch, num_classes) ─┐
                      ──► member 2 ──► probabilities (batch, num_classes) ─┼─► mean ──► (batch, num_classes)
                      ──► ...                                              ─┘

Members trained alike from different random initialisations (and dropout
draws) make errors that partly cancel when their probabilities are averaged
(Hansen & Salamon 1990; Lakshminarayanan et al. 2017, "deep ensembles").
The members prepare text alike (equal vocabularies and framing), so the
ensemble takes the same ids (or strings) as each of them, and exports to one
SavedModel.
"""

import hashlib

import keras
import numpy as np
from keras import ops

from textlstm.models.classifier import ClassifierPredictions, TextClassifier
from textlstm.models.language_model import tokenizer_vocabulary_size


@keras.saving.register_keras_serializable(package="textlstm")
class ClassifierEnsemble(keras.Model):
    """Averages the class probabilities of `TextClassifier`s that share labels and preprocessing.

    Args:
        members: a list of at least two trained `TextClassifier`s of one
            class (e.g. all `SentimentClassifier`s) with the same
            `label_names`; with preprocessors (all of them or none), the
            same tokenizer kind, vocabulary, start and end tokens and length
            limit, each member its own tokenizer object (Keras saves a
            shared object once).

    Example:
    >>> from textlstm.models import LSTMBackbone
    >>> from textlstm.preprocessors import ClassifierPreprocessor
    >>> from textlstm.tokenizers import WordTokenizer
    >>> def member():
    ...     tokenizer = WordTokenizer.from_texts(["a fine film", "a dull film"])
    ...     backbone = LSTMBackbone(tokenizer.vocabulary_size(), embedding_dim=8, hidden_dim=8, num_layers=1,
    ...                             bidirectional=True)
    ...     return TextClassifier(backbone, num_classes=2, preprocessor=ClassifierPreprocessor(tokenizer))
    >>> members = [member(), member()]
    >>> ensemble = ClassifierEnsemble(members)
    >>> predictions = ensemble.predict(["a fine film", "dull"])
    >>> predictions.probabilities.shape
    (2, 2)
    >>> expected = np.mean([member.predict(["a fine film", "dull"]).probabilities for member in members], axis=0)
    >>> bool(np.allclose(predictions.probabilities, expected, atol=1e-6))
    True
    """

    def __init__(self, members, **kwargs):
        super().__init__(**kwargs)
        members = list(members)
        if len(members) < 2 or not all(isinstance(member, TextClassifier) for member in members):
            raise ValueError(f"`members` must be a list of at least two TextClassifiers, received "
                             f"{[type(member).__name__ for member in members]!r}.")
        first = members[0]
        for index, member in enumerate(members[1:], start=1):
            if type(member) is not type(first):
                raise ValueError(f"`members`: member {index} is a {type(member).__name__}, member 0 a "
                                 f"{type(first).__name__}; an ensemble's members are of one class.")
            if member.label_names != first.label_names:
                raise ValueError(f"`members`: member {index} has label_names {member.label_names!r}, member 0 "
                                 f"{first.label_names!r}; an ensemble averages the same classes.")
            for name, (mine, theirs) in _framing_differences(member, first).items():  # the first one found
                raise ValueError(f"`members`: member {index} has {name} {mine}, member 0 {theirs}; an ensemble "
                                 f"feeds every member the same ids, so they must prepare text alike.")
        owners = {}
        for index, member in enumerate(members):
            if member.preprocessor is not None:
                owner = owners.setdefault(id(member.preprocessor.tokenizer), index)
                if owner != index:
                    raise ValueError(
                        f"`members`: members {owner} and {index} share one tokenizer object; Keras saves a shared "
                        f"object once and could not load the saved ensemble again: give each member its own "
                        f"tokenizer (e.g. `textlstm.load_tokenizer(path)` once per member, or load each member "
                        f"from its run).")
        self.members = members
        self.num_classes = first.num_classes
        self.label_names = list(first.label_names)
        self.preprocessor = first.preprocessor
        self.built = True  # every member is built

    def call(self, token_ids, training=None):
        """ids `(batch, time)`, right padded with 0 -> mean class probabilities `(batch, num_classes)`."""
        return ops.mean(ops.stack([member(token_ids, training=training) for member in self.members]), axis=0)

    def predict(self, x, batch_size=None, verbose="auto", **kwargs):
        """The members' mean class probabilities of ids, or labelled predictions of strings.

        Args:
            x: a list (or tuple) of strings, which each member's `predict`
                tokenizes; or anything `keras.Model.predict` takes (ids
                `(batch, time)`, a dataset of them), read once and fed to
                every member.
            batch_size, verbose, **kwargs: as `TextClassifier.predict`'s.

        Returns:
            For strings, a `ClassifierPredictions` of the mean probabilities;
            otherwise the mean probabilities `(n, num_classes)`.
        """
        texts = isinstance(x, str) or (isinstance(x, (list, tuple)) and all(isinstance(text, str) for text in x))
        if not texts:  # one pass of `call`, which averages: a generator or a reshuffling dataset is read once
            return super().predict(x, batch_size=batch_size, verbose=verbose, **kwargs)  # (n, num_classes)
        outputs = [member.predict(x, batch_size=batch_size, verbose=verbose, **kwargs) for member in self.members]
        probabilities = np.mean([output.probabilities for output in outputs], axis=0)  # (n, num_classes)
        label_ids = np.argmax(probabilities, axis=-1)  # (n,)
        return ClassifierPredictions(texts=outputs[0].texts, label_ids=label_ids,
                                     labels=[self.label_names[i] for i in label_ids], probabilities=probabilities)

    def get_config(self):
        config = super().get_config()
        config["members"] = [keras.saving.serialize_keras_object(member) for member in self.members]
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["members"] = [keras.saving.deserialize_keras_object(member) for member in config["members"]]
        return cls(**config)


def _framing_differences(member, first):
    """{what: (member's, first's)} for each way `member` turns text into ids unlike `first`."""
    if (member.preprocessor is None) != (first.preprocessor is None):
        return {"preprocessor": tuple(type(classifier.preprocessor).__name__ if classifier.preprocessor else "None"
                                      for classifier in (member, first))}
    if member.preprocessor is None:
        return {}
    differences = {}
    for name in ("start_token", "add_end_token", "sequence_length"):
        mine, theirs = getattr(member.preprocessor, name), getattr(first.preprocessor, name)
        if mine != theirs:
            differences[name] = (repr(mine), repr(theirs))
    tokenizers = member.preprocessor.tokenizer, first.preprocessor.tokenizer
    kinds = [f"{type(tokenizer).__name__}(lowercase={getattr(tokenizer, 'lowercase', None)})"
             for tokenizer in tokenizers]
    if kinds[0] != kinds[1]:
        differences["tokenizer"] = tuple(kinds)
    # None while a saved ensemble loads (tokenizers get their vocabularies after construction); the members
    # were compared when the ensemble was first built.
    if None in [tokenizer_vocabulary_size(tokenizer) for tokenizer in tokenizers]:
        return differences
    vocabularies = [tokenizer.get_vocabulary() for tokenizer in tokenizers]
    if vocabularies[0] != vocabularies[1]:
        first_difference = next((i for i, (a, b) in enumerate(zip(*vocabularies)) if a != b),
                                min(map(len, vocabularies)))
        differences["tokenizer vocabulary"] = tuple(
            f"of {len(vocabulary)} tokens (id {first_difference}: {vocabulary[first_difference:first_difference + 1]})"
            for vocabulary in vocabularies)
    protos = [getattr(tokenizer, "proto", None) for tokenizer in tokenizers]  # SentencePiece: normalisation too
    if None not in protos and protos[0] != protos[1]:
        differences["SentencePiece model"] = tuple(f"sha1 {hashlib.sha1(proto).hexdigest()[:10]}" for proto in protos)
    return differences
