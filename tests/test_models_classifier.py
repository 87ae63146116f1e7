import keras
import numpy as np
import pytest
import tensorflow as tf

from textlstm.models import (
    ClassifierPredictions,
    LanguageModel,
    LSTMBackbone,
    SentimentClassifier,
    classifier_layer_groups,
    transfer_language_model,
)
from textlstm.preprocessors import ClassifierPreprocessor, LanguageModelPreprocessor
from textlstm.tokenizers import WordTokenizer

TEXTS = ["a fine and moving film", "dull", "the plot is dull and the acting worse", "a fine cast"]


@pytest.fixture(scope="module")
def tokenizer():
    return WordTokenizer.from_texts(TEXTS)


def encode(classifier, texts):
    """Ids `(batch, time)` of `texts` from the classifier's preprocessor."""
    return classifier.preprocessor(tf.constant(texts))


def build_classifier(tokenizer, num_classes=2, bidirectional=True, num_layers=2, hidden_dim=8, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    backbone = LSTMBackbone(tokenizer.vocabulary_size(), embedding_dim=8, hidden_dim=hidden_dim,
                            num_layers=num_layers, bidirectional=bidirectional)
    kwargs.setdefault("preprocessor", ClassifierPreprocessor(tokenizer))
    return SentimentClassifier(backbone, num_classes=num_classes, **kwargs)


@pytest.mark.parametrize("num_classes", [2, 5])
def test_outputs_are_float32_probabilities(tokenizer, num_classes):
    classifier = build_classifier(tokenizer, num_classes=num_classes)
    ids = encode(classifier, TEXTS)
    probabilities = classifier(ids, training=False).numpy()
    assert probabilities.shape == (len(TEXTS), num_classes)
    assert probabilities.dtype == np.float32
    assert (probabilities > 0).all()
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("pooling", ["final", "max", "mean", "concat"])
def test_padding_has_no_effect(tokenizer, pooling):
    classifier = build_classifier(tokenizer, num_classes=3, pooling=pooling)
    ids = encode(classifier, ["a fine and moving film"]).numpy()  # (1, 7), no padding
    padded = np.pad(ids, [(0, 0), (0, 9)])  # (1, 16), nine pad ids
    batch = encode(classifier, ["a fine and moving film", "the plot is dull and the acting worse"])
    expected = classifier(ids, training=False).numpy()
    np.testing.assert_allclose(classifier(padded, training=False).numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(classifier(batch, training=False).numpy()[:1], expected, rtol=1e-5, atol=1e-6)


def test_pooled_features_ignore_padding(tokenizer):
    """max and mean run over the real steps only: checked against numpy on the unpadded outputs."""
    classifier = build_classifier(tokenizer, pooling="concat")
    ids = np.pad(encode(classifier, ["a fine film"]).numpy(), [(0, 0), (0, 6)])  # (1, 11)
    length = int((ids != 0).sum())
    sequence, states = classifier.backbone(ids, return_state=True, training=False)
    features = classifier.pool(ids, sequence, states[-1]).numpy()[0]  # (3 * 16,)
    real = sequence.numpy()[0, :length]  # (length, 16)
    h_forward, h_backward = states[-1][0].numpy()[0], states[-1][2].numpy()[0]
    np.testing.assert_allclose(features[:16], np.concatenate([h_forward, h_backward]), rtol=1e-6)
    np.testing.assert_allclose(h_forward, real[-1, :8], rtol=1e-6)  # forward: after the last real token
    np.testing.assert_allclose(h_backward, real[0, 8:], rtol=1e-6)  # backward: after reading token 0
    np.testing.assert_allclose(features[16:32], real.max(axis=0), rtol=1e-6)
    np.testing.assert_allclose(features[32:], real.mean(axis=0), rtol=1e-5)


def test_config_round_trip_and_keras_file(tmp_path, tokenizer):
    classifier = build_classifier(tokenizer, num_classes=3, pooling="max", dropout=0.3,
                                  label_names=["negative", "neutral", "positive"])
    config = classifier.get_config()
    rebuilt = SentimentClassifier.from_config(config)
    assert rebuilt.get_config() == config
    assert (config["num_classes"], config["pooling"], config["dropout"]) == (3, "max", 0.3)

    classifier.compile(keras.optimizers.Adam(0.01))
    path = tmp_path / "classifier.keras"
    classifier.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(restored, SentimentClassifier)
    assert restored.preprocessor.tokenizer.get_vocabulary() == tokenizer.get_vocabulary()
    texts = TEXTS + ["an unseen word"]
    before, after = classifier.predict(texts), restored.predict(texts)
    np.testing.assert_array_equal(after.probabilities, before.probabilities)
    assert after.labels == before.labels


def test_load_weights_before_fit(tmp_path, tokenizer):
    source = build_classifier(tokenizer, seed=1)
    path = tmp_path / "classifier.weights.h5"
    source.save_weights(path)
    target = build_classifier(tokenizer, seed=2)
    target.load_weights(path)
    ids = encode(source, TEXTS)
    np.testing.assert_array_equal(target(ids, training=False), source(ids, training=False))


def test_predict_on_strings(tokenizer):
    classifier = build_classifier(tokenizer, num_classes=3, label_names=["bad", "so-so", "good"])
    predictions = classifier.predict(TEXTS, batch_size=3)  # two batches, padded differently
    assert isinstance(predictions, ClassifierPredictions)
    assert predictions.texts == TEXTS
    assert predictions.probabilities.shape == (len(TEXTS), 3)
    assert predictions.label_ids.shape == (len(TEXTS),)
    assert set(predictions.labels) <= {"bad", "so-so", "good"}
    assert predictions.labels == [["bad", "so-so", "good"][i] for i in predictions.label_ids]
    np.testing.assert_allclose(predictions.probabilities,
                               classifier(encode(classifier, TEXTS), training=False).numpy(), rtol=1e-5)
    ids_probabilities = classifier.predict(encode(classifier, TEXTS).numpy(), verbose=0)
    np.testing.assert_allclose(ids_probabilities, predictions.probabilities, rtol=1e-5)
    assert classifier.predict([]).probabilities.shape == (0, 3)
    with pytest.raises(ValueError, match=r"list of strings.*'a fine film'"):
        classifier.predict("a fine film")
    without_preprocessor = build_classifier(tokenizer, preprocessor=None)
    with pytest.raises(ValueError, match="preprocessor"):
        without_preprocessor.predict(TEXTS)


def test_compile_defaults_and_fit_on_a_dataset(tokenizer):
    classifier = build_classifier(tokenizer, num_layers=1, dropout=0.0)
    classifier.compile(keras.optimizers.Adam(0.05))
    ids = encode(classifier, TEXTS)
    labels = np.array([1, 0, 0, 1])
    dataset = tf.data.Dataset.from_tensor_slices((ids, labels, np.ones(4, "float32"))).batch(2).repeat(5)
    history = classifier.fit(dataset, epochs=2, shuffle=False, verbose=0)
    assert {"loss", "accuracy"} <= set(history.history)
    assert history.history["loss"][-1] < history.history["loss"][0]
    loss, accuracy = classifier.evaluate(ids, labels, verbose=0)
    assert accuracy == 1.0


def test_bidirectional_backbone_stays_cudnn_eligible(tokenizer):
    classifier = build_classifier(tokenizer, bidirectional=True)
    assert classifier.backbone.cudnn_eligible
    for layer in classifier.backbone.recurrent_layers:
        assert isinstance(layer, keras.layers.Bidirectional)
        for direction in (layer.forward_layer, layer.backward_layer):
            assert keras.activations.serialize(direction.activation) == "tanh"
            assert keras.activations.serialize(direction.recurrent_activation) == "sigmoid"
            assert direction.recurrent_dropout == 0
            assert direction.use_bias is True
            assert direction.unroll is False
            assert direction.use_cudnn in ("auto", True)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_classes=1), r"`num_classes`.*received 1"),
    (dict(pooling="attention"), r"`pooling`.*'attention'"),
    (dict(dropout=1.0), r"`dropout`.*received 1.0"),
    (dict(label_names=["a", "b", "c"]), r"`label_names`.*\['a', 'b', 'c'\]"),
    (dict(label_names=["a", "a"]), r"`label_names`.*\['a', 'a'\]"),
])
def test_invalid_arguments_are_rejected(tokenizer, kwargs, message):
    arguments = dict(num_classes=2)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        build_classifier(tokenizer, **arguments)


def test_backbone_and_preprocessor_are_checked(tokenizer):
    with pytest.raises(ValueError, match="`backbone` must be an LSTMBackbone, received Dense"):
        SentimentClassifier(keras.layers.Dense(2), num_classes=2)
    backbone = LSTMBackbone(tokenizer.vocabulary_size() + 1, embedding_dim=8, hidden_dim=8, num_layers=1)
    with pytest.raises(ValueError, match=rf"`preprocessor`.*{tokenizer.vocabulary_size()} tokens"):
        SentimentClassifier(backbone, num_classes=2, preprocessor=ClassifierPreprocessor(tokenizer))


# Transfer from language models (ULMFiT) ---------------------------------------


def build_lm(tokenizer, seed, hidden_dim=16, num_layers=2, mode="sentence"):
    keras.utils.set_random_seed(seed)
    backbone = LSTMBackbone(tokenizer.vocabulary_size(), embedding_dim=16, hidden_dim=hidden_dim,
                            num_layers=num_layers)
    return LanguageModel(backbone, preprocessor=LanguageModelPreprocessor.for_mode(tokenizer, mode),
                         tie_weights=hidden_dim == 16)


def build_transfer_classifier(tokenizer, num_layers=2, bidirectional=True):
    keras.utils.set_random_seed(3)
    backbone = LSTMBackbone(tokenizer.vocabulary_size(), embedding_dim=16, hidden_dim=16,
                            num_layers=num_layers, bidirectional=bidirectional)
    return SentimentClassifier(backbone, num_classes=2, preprocessor=ClassifierPreprocessor(tokenizer))


def test_transfer_fills_both_directions(word_tokenizer):
    forward_lm, backward_lm = build_lm(word_tokenizer, seed=1), build_lm(word_tokenizer, seed=2)
    classifier = build_transfer_classifier(word_tokenizer)
    report = transfer_language_model(classifier, forward_lm, backward_lm)
    assert report == {"embedding": "forward LM", "layers": [
        {"layer": 0, "forward": "copied", "backward": "copied"},
        {"layer": 1, "forward": "copied", "backward": "copied"},
    ]}
    target = classifier.backbone
    np.testing.assert_array_equal(target.token_embedding.embeddings.numpy(),
                                  forward_lm.backbone.token_embedding.embeddings.numpy())
    layer_0, layer_1 = target.recurrent_layers
    for sub_layer, lm in ((layer_0.forward_layer, forward_lm), (layer_0.backward_layer, backward_lm)):
        for copied, source in zip(sub_layer.get_weights(), lm.backbone.recurrent_layers[0].get_weights()):
            np.testing.assert_array_equal(copied, source)
    forward_kernel, forward_recurrent, forward_bias = layer_1.forward_layer.get_weights()
    lm_kernel, lm_recurrent, lm_bias = forward_lm.backbone.recurrent_layers[1].get_weights()
    assert forward_kernel.shape == (32, 64)
    np.testing.assert_array_equal(forward_kernel[:16], lm_kernel)
    np.testing.assert_array_equal(forward_kernel[16:], 0)
    np.testing.assert_array_equal(forward_recurrent, lm_recurrent)
    np.testing.assert_array_equal(forward_bias, lm_bias)
    backward_kernel = layer_1.backward_layer.get_weights()[0]
    np.testing.assert_array_equal(backward_kernel[:16], 0)
    np.testing.assert_array_equal(backward_kernel[16:], backward_lm.backbone.recurrent_layers[1].get_weights()[0])

    ids = encode(classifier, ["the company said it would buy the shares"])  # (1, 10), no padding
    embeddings = target.token_embedding(ids)  # (1, 10, 16)
    classifier_outputs = layer_0.forward_layer(embeddings)[0].numpy()  # (1, 10, 16)
    lm_outputs = forward_lm.backbone.recurrent_layers[0](forward_lm.backbone.token_embedding(ids))[0].numpy()
    np.testing.assert_allclose(classifier_outputs, lm_outputs, rtol=1e-5, atol=1e-6)
    # The whole stack: the forward half of the top layer computes what the forward LM computes.
    sequence = target(ids, training=False).numpy()  # (1, 10, 32)
    np.testing.assert_allclose(sequence[..., :16], forward_lm.backbone(ids, training=False).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_backward_direction_computes_the_backward_lm_on_reversed_text(word_tokenizer):
    forward_lm, backward_lm = build_lm(word_tokenizer, seed=1), build_lm(word_tokenizer, seed=2)
    # One embedding serves both directions: with a shared embedding, both computations match exactly.
    backward_lm.backbone.token_embedding.set_weights(forward_lm.backbone.token_embedding.get_weights())
    classifier = build_transfer_classifier(word_tokenizer)
    transfer_language_model(classifier, forward_lm, backward_lm)
    ids = encode(classifier, ["the company said it would buy the shares"]).numpy()  # (1, 10)
    sequence = classifier.backbone(ids, training=False).numpy()  # (1, 10, 32)
    reversed_outputs = backward_lm.backbone(ids[:, ::-1], training=False).numpy()  # (1, 10, 16)
    np.testing.assert_allclose(sequence[..., 16:], reversed_outputs[:, ::-1], rtol=1e-5, atol=1e-6)


def test_transfer_between_different_depths(word_tokenizer):
    forward_lm = build_lm(word_tokenizer, seed=1, num_layers=2)
    classifier = build_transfer_classifier(word_tokenizer, num_layers=3)
    initial = [w.copy() for w in classifier.backbone.recurrent_layers[2].get_weights()]
    initial_backward = [w.copy() for w in classifier.backbone.recurrent_layers[0].backward_layer.get_weights()]
    report = transfer_language_model(classifier, forward_lm)
    assert [(layer["forward"], layer["backward"]) for layer in report["layers"]] == [
        ("copied", "initialised"), ("copied", "initialised"), ("initialised", "initialised"),
    ]
    for kept, before in zip(classifier.backbone.recurrent_layers[2].get_weights(), initial):
        np.testing.assert_array_equal(kept, before)
    for kept, before in zip(classifier.backbone.recurrent_layers[0].backward_layer.get_weights(), initial_backward):
        np.testing.assert_array_equal(kept, before)

    unidirectional = build_transfer_classifier(word_tokenizer, num_layers=1, bidirectional=False)
    report = transfer_language_model(unidirectional, forward_lm)
    assert report["layers"] == [{"layer": 0, "forward": "copied"}]
    ids = encode(unidirectional, ["the company said"])
    lm_layer_0 = forward_lm.backbone.recurrent_layers[0]
    expected = lm_layer_0(forward_lm.backbone.token_embedding(ids))[0].numpy()  # (1, 5, 16)
    np.testing.assert_allclose(unidirectional.backbone(ids, training=False).numpy(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="`backward_language_model`.*bidirectional=False"):
        transfer_language_model(unidirectional, forward_lm, forward_lm)


def test_transfer_warns_about_a_different_start_token(word_tokenizer, caplog):
    classifier = build_transfer_classifier(word_tokenizer, num_layers=1)  # sequences open with <s>
    with caplog.at_level("WARNING", logger="textlstm.models.classifier"):
        transfer_language_model(classifier, build_lm(word_tokenizer, seed=1, num_layers=1, mode="sentence"))
        assert not caplog.records
        transfer_language_model(classifier, build_lm(word_tokenizer, seed=1, num_layers=1, mode="stream"))
    assert "start_token='</s>'" in caplog.text


def test_transfer_rejects_mismatched_models(word_tokenizer):
    classifier = build_transfer_classifier(word_tokenizer)
    other_tokenizer = WordTokenizer.from_texts(TEXTS)
    other_lm = LanguageModel(LSTMBackbone(other_tokenizer.vocabulary_size(), embedding_dim=16, hidden_dim=16,
                                          num_layers=1),
                             preprocessor=LanguageModelPreprocessor(other_tokenizer))
    size = word_tokenizer.vocabulary_size()
    with pytest.raises(ValueError, match=rf"vocabularies differ.*{size} tokens.*`language_model`.*"
                                         rf"{other_tokenizer.vocabulary_size()}"):
        transfer_language_model(classifier, other_lm)
    narrow_lm = build_lm(word_tokenizer, seed=1, hidden_dim=8)
    with pytest.raises(ValueError, match=r"`hidden_dim` differs.*hidden_dim=16.*`backward_language_model`.*hidden_dim=8"):
        transfer_language_model(classifier, build_lm(word_tokenizer, seed=2), narrow_lm)


def test_layer_groups_cover_every_trainable_variable_once(tokenizer):
    classifier = build_classifier(tokenizer, num_layers=2)
    groups = classifier_layer_groups(classifier)
    assert len(groups) == 4  # embedding, layer 0, layer 1, head
    assert [v.name for v in groups[0]] == ["embeddings"]
    assert len(groups[1]) == len(groups[2]) == 6  # kernel, recurrent kernel, bias per direction
    assert groups[1][0] is classifier.backbone.recurrent_layers[0].forward_layer.cell.kernel
    assert {id(v) for v in groups[-1]} == {id(v) for v in classifier.output_layer.trainable_variables}
    grouped = [id(v) for group in groups for v in group]
    assert len(grouped) == len(set(grouped))
    assert sorted(grouped) == sorted(id(v) for v in classifier.trainable_variables)


def test_a_bfloat16_backbone_from_the_config_field_keeps_a_float32_head(tokenizer):
    from textlstm.config import SentimentConfig, config_from_dict
    from textlstm.recipes.run_steps import build_backbone

    config = config_from_dict(SentimentConfig, {"precision": "mixed_bfloat16", "embedding_dim": 8, "hidden_dim": 8,
                                                "num_layers": 1})
    backbone = build_backbone(config, tokenizer.vocabulary_size(), bidirectional=True)
    classifier = SentimentClassifier(backbone, num_classes=2, preprocessor=ClassifierPreprocessor(tokenizer))
    classifier.compile()
    assert backbone.dtype_policy.name == "mixed_bfloat16" and backbone.cudnn_eligible
    assert not isinstance(classifier.optimizer, keras.optimizers.LossScaleOptimizer)  # bfloat16 needs no scaling
    probabilities = classifier.predict(["a fine film", "dull"]).probabilities
    assert probabilities.dtype == np.float32 and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="precision"):
        config_from_dict(SentimentConfig, {"precision": "float16"})
