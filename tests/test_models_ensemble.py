import keras
import numpy as np
import pytest
import tensorflow as tf

from textlstm.export import export_model
from textlstm.models import ClassifierEnsemble, LSTMBackbone, SentimentClassifier, TextClassifier
from textlstm.preprocessors import ClassifierPreprocessor
from textlstm.tokenizers import WordTokenizer

TEXTS = ["a fine and moving film", "dull", "the plot is dull and the acting worse", "a fine cast"]
LABELS = ["negative", "positive"]


def member(seed, texts=TEXTS, classifier_class=SentimentClassifier, preprocessor=True, **preprocessor_kwargs):
    """A classifier with a tokenizer of its own, learnt from `texts` (as members loaded from runs have)."""
    tokenizer = WordTokenizer.from_texts(texts)
    keras.utils.set_random_seed(seed)
    backbone = LSTMBackbone(tokenizer.vocabulary_size(), embedding_dim=8, hidden_dim=8, num_layers=1,
                            bidirectional=True)
    return classifier_class(backbone, num_classes=2, label_names=LABELS,
                            preprocessor=ClassifierPreprocessor(tokenizer, **preprocessor_kwargs) if preprocessor else None)


def test_predicts_the_mean_of_its_members():
    members = [member(seed) for seed in (1, 2, 3)]
    ensemble = ClassifierEnsemble(members)
    texts = TEXTS + ["an unseen word"]
    member_probabilities = [m.predict(texts).probabilities for m in members]
    assert not np.allclose(member_probabilities[0], member_probabilities[1])  # the members differ
    predictions = ensemble.predict(texts)
    expected = np.mean(member_probabilities, axis=0)
    np.testing.assert_allclose(predictions.probabilities, expected, atol=1e-6)
    assert predictions.labels == [LABELS[i] for i in expected.argmax(axis=1)]
    ids = members[0].preprocessor(tf.constant(texts))
    np.testing.assert_allclose(ensemble(ids), expected, atol=1e-6)  # on ids too
    np.testing.assert_allclose(ensemble.predict(ids, verbose=0), expected, atol=1e-6)
    def shuffled():  # each pass over it comes in another order
        return tf.data.Dataset.from_tensor_slices(ids).shuffle(8, seed=0, reshuffle_each_iteration=True).batch(2)

    order = np.concatenate(list(shuffled().as_numpy_iterator()))  # a fresh copy's first pass
    np.testing.assert_allclose(ensemble.predict(shuffled(), verbose=0),  # read once, so in that order
                               np.mean([m.predict(order, verbose=0) for m in members], axis=0), atol=1e-6)
    empty = ensemble.predict([])
    assert empty.labels == [] and empty.probabilities.shape == (0, 2)


def test_members_without_preprocessors_average_ids():
    members = [member(seed, preprocessor=False) for seed in (1, 2)]
    ensemble = ClassifierEnsemble(members)
    ids = np.array([[2, 5, 6, 3, 0], [2, 7, 3, 0, 0]], "int32")  # (batch, time), right padded
    np.testing.assert_allclose(ensemble.predict(ids, verbose=0),
                               np.mean([m.predict(ids, verbose=0) for m in members], axis=0), atol=1e-6)


def test_keras_file_and_export_keep_its_answers(tmp_path):
    ensemble = ClassifierEnsemble([member(seed) for seed in (1, 2)])
    path = tmp_path / "ensemble.keras"
    ensemble.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(restored, ClassifierEnsemble) and len(restored.members) == 2
    before = ensemble.predict(TEXTS).probabilities
    np.testing.assert_array_equal(restored.predict(TEXTS).probabilities, before)

    version_dir = export_model(restored, str(tmp_path / "saved_models"), "ensemble")
    served = tf.saved_model.load(version_dir).signatures["serving_default"](texts=tf.constant(TEXTS))
    np.testing.assert_allclose(served["probabilities"].numpy(), before, atol=1e-5)
    assert [label.decode() for label in served["label"].numpy()] == [LABELS[i] for i in before.argmax(axis=1)]


def test_members_must_agree():
    with pytest.raises(ValueError, match=r"at least two TextClassifiers, received \['SentimentClassifier'\]"):
        ClassifierEnsemble([member(1)])
    with pytest.raises(ValueError, match=r"received \['SentimentClassifier', 'Sequential'\]"):
        ClassifierEnsemble([member(1), keras.Sequential()])
    with pytest.raises(ValueError, match="member 1 is a TextClassifier, member 0 a SentimentClassifier"):
        ClassifierEnsemble([member(1), member(2, classifier_class=TextClassifier)])
    other_labels = member(2)
    other_labels.label_names = ["bad", "good"]
    with pytest.raises(ValueError, match=r"member 1 has label_names \['bad', 'good'\]"):
        ClassifierEnsemble([member(1), other_labels])
    with pytest.raises(ValueError, match="member 1 has sequence_length 3, member 0 128"):
        ClassifierEnsemble([member(1), member(2, sequence_length=3)])
    with pytest.raises(ValueError, match=r"member 2 has tokenizer vocabulary of 6 tokens \(id 4: \['other'\]\), "
                                         r"member 0 of 16 tokens \(id 4: \['a'\]\)"):
        ClassifierEnsemble([member(1), member(2), member(3, texts=["other words"])])
    with pytest.raises(ValueError, match="member 1 has preprocessor None, member 0 ClassifierPreprocessor"):
        ClassifierEnsemble([member(1), member(2, preprocessor=False)])
    shared = member(1)
    keras.utils.set_random_seed(2)
    sharing = SentimentClassifier(LSTMBackbone(shared.backbone.vocabulary_size, embedding_dim=8, hidden_dim=8,
                                               num_layers=1, bidirectional=True), num_classes=2, label_names=LABELS,
                                  preprocessor=shared.preprocessor)
    with pytest.raises(ValueError, match="members 0 and 1 share one tokenizer object"):
        ClassifierEnsemble([shared, sharing])
