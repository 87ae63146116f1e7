"""AgreementClassifier: number prediction from the last prefix state, its refusals, saving and LM transfer."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from textlstm.models import (
    AgreementClassifier,
    LanguageModel,
    LSTMBackbone,
    SentimentClassifier,
    TextClassifier,
    classifier_layer_groups,
    transfer_language_model,
)
from textlstm.preprocessors import ClassifierPreprocessor, LanguageModelPreprocessor
from textlstm.tokenizers import EOS, WordTokenizer

PREFIXES = ["the keys to the cabinet", "the key", "", "the author of the books that he loves"]


@pytest.fixture(scope="module")
def tokenizer():
    return WordTokenizer.from_texts(PREFIXES)


def make_preprocessor(tokenizer, **kwargs):
    kwargs.setdefault("add_end_token", False)
    return ClassifierPreprocessor(tokenizer, sequence_length=None, **kwargs)


def build_classifier(tokenizer, num_layers=2, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    backbone = LSTMBackbone(tokenizer.vocabulary_size(), embedding_dim=16, hidden_dim=16, num_layers=num_layers)
    kwargs.setdefault("preprocessor", make_preprocessor(tokenizer))
    return AgreementClassifier(backbone, **kwargs)


def test_is_a_two_class_text_classifier_on_the_final_state(tokenizer):
    classifier = build_classifier(tokenizer)
    assert isinstance(classifier, TextClassifier) and not isinstance(classifier, SentimentClassifier)
    assert (classifier.num_classes, classifier.pooling, classifier.label_names) == (2, "final", ["singular", "plural"])


def test_predict_on_prefixes(tokenizer):
    classifier = build_classifier(tokenizer)
    predictions = classifier.predict(PREFIXES, batch_size=3)  # two batches, padded differently
    assert predictions.probabilities.shape == (len(PREFIXES), 2)
    assert predictions.label_ids.shape == (len(PREFIXES),)
    assert predictions.labels == [["singular", "plural"][i] for i in predictions.label_ids]
    np.testing.assert_allclose(predictions.probabilities.sum(axis=-1), 1.0, rtol=1e-5)
    ids = classifier.preprocessor(tf.constant(PREFIXES)).numpy()  # (4, 1 + longest prefix)
    assert (ids[:, 0] == classifier.preprocessor.start_token_id).all()
    assert ids[2].tolist() == [classifier.preprocessor.start_token_id] + [0] * (ids.shape[1] - 1)  # "": the start only
    np.testing.assert_allclose(classifier(ids, training=False).numpy(), predictions.probabilities, rtol=1e-5)


def test_the_prediction_reads_the_state_after_the_last_prefix_word(tokenizer):
    """Padding aside, the features are the last layer's h after the last word: no end token, no backward pass."""
    classifier = build_classifier(tokenizer)
    ids = classifier.preprocessor(tf.constant(["the keys to the cabinet"])).numpy()  # (1, 6)
    padded = np.pad(ids, [(0, 0), (0, 5)])  # (1, 11)
    sequence, states = classifier.backbone(padded, return_state=True, training=False)
    features = classifier.pool(padded, sequence, states[-1]).numpy()  # (1, 16)
    np.testing.assert_allclose(features, sequence.numpy()[:, ids.shape[1] - 1], rtol=1e-6)
    np.testing.assert_allclose(classifier(padded, training=False).numpy(), classifier(ids, training=False).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_a_bidirectional_backbone_is_refused(tokenizer):
    backbone = LSTMBackbone(tokenizer.vocabulary_size(), embedding_dim=8, hidden_dim=8, num_layers=1,
                            bidirectional=True)
    with pytest.raises(ValueError, match=r"`backbone` must be unidirectional.*bidirectional=True"):
        AgreementClassifier(backbone)


def test_a_preprocessor_adding_an_end_token_is_refused(tokenizer):
    with pytest.raises(ValueError, match=r"`preprocessor` must have add_end_token=False.*add_end_token=True"):
        build_classifier(tokenizer, preprocessor=make_preprocessor(tokenizer, add_end_token=True))


def test_text_classifier_checks_still_apply(tokenizer):
    with pytest.raises(ValueError, match="`backbone` must be an LSTMBackbone, received Dense"):
        AgreementClassifier(keras.layers.Dense(2))
    with pytest.raises(ValueError, match=r"`dropout`.*received 1.0"):
        build_classifier(tokenizer, dropout=1.0)


def test_get_config_mirrors_init_and_round_trips(tokenizer):
    classifier = build_classifier(tokenizer, dropout=0.2, name="agreement")
    config = classifier.get_config()
    assert set(config) == {"name", "trainable", "dtype", "backbone", "preprocessor", "dropout"}
    assert (config["dropout"], config["name"]) == (0.2, "agreement")
    rebuilt = AgreementClassifier.from_config(config)
    assert rebuilt.get_config() == config
    assert rebuilt.preprocessor.add_end_token is False and rebuilt.preprocessor.sequence_length is None


def test_keras_file_round_trip(tmp_path, tokenizer):
    classifier = build_classifier(tokenizer)
    classifier.compile(keras.optimizers.Adam(0.01))
    path = tmp_path / "agreement.keras"
    classifier.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(restored, AgreementClassifier)
    assert restored.preprocessor.tokenizer.get_vocabulary() == tokenizer.get_vocabulary()
    prefixes = PREFIXES + ["an unseen word"]
    before, after = classifier.predict(prefixes), restored.predict(prefixes)
    np.testing.assert_array_equal(after.probabilities, before.probabilities)
    assert after.labels == before.labels


def test_transfer_from_a_language_model_fills_the_weights(tokenizer):
    keras.utils.set_random_seed(1)
    lm_backbone = LSTMBackbone(tokenizer.vocabulary_size(), embedding_dim=16, hidden_dim=16, num_layers=2)
    lm = LanguageModel(lm_backbone, preprocessor=LanguageModelPreprocessor.for_mode(tokenizer, "stream"))
    classifier = build_classifier(tokenizer, preprocessor=make_preprocessor(tokenizer, start_token=EOS))
    report = transfer_language_model(classifier, lm)
    assert report == {"embedding": "forward LM", "layers": [{"layer": 0, "forward": "copied"},
                                                            {"layer": 1, "forward": "copied"}]}
    np.testing.assert_array_equal(classifier.backbone.token_embedding.get_weights()[0],
                                  lm.backbone.token_embedding.get_weights()[0])
    for mine, theirs in zip(classifier.backbone.recurrent_layers, lm.backbone.recurrent_layers):
        for mine_weights, their_weights in zip(mine.get_weights(), theirs.get_weights(), strict=True):
            np.testing.assert_array_equal(mine_weights, their_weights)
    # The classifier's last prefix state is the LM's hidden state after the same ids.
    ids = classifier.preprocessor(tf.constant(["the keys to the cabinet"]))  # (1, 6)
    sequence, states = classifier.backbone(ids, return_state=True, training=False)
    lm_sequence = lm.backbone(ids, training=False)  # (1, 6, 16)
    np.testing.assert_allclose(classifier.pool(ids, sequence, states[-1]).numpy(), lm_sequence.numpy()[:, -1],
                               rtol=1e-6)
    groups = classifier_layer_groups(classifier)
    assert len(groups) == 4 and sum(map(len, groups)) == len(classifier.trainable_variables)
