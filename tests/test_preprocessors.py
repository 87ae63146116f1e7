"""One preprocessor per task: what a model scores and samples from is what it was trained on."""

import pytest
import tensorflow as tf

from textlstm.config import LanguageModelConfig, config_from_dict
from textlstm.preprocessors import ClassifierPreprocessor, LanguageModelPreprocessor
from textlstm.probes import KerasScorer
from textlstm.recipes.language_model import build_language_model, make_train_dataset
from textlstm.tokenizers import BOS_ID, EOS_ID, PAD_ID, WordTokenizer, train_tokenizer


@pytest.mark.parametrize("mode", ["stream", "sentence"])
@pytest.mark.parametrize("kind", ["word", "unigram", "bpe"])
def test_the_first_scored_token_follows_a_start_token_seen_there_in_training(mode, kind, ptb_lines):
    lines = ptb_lines[:60]
    config = config_from_dict(LanguageModelConfig, {
        "mode": mode, "tokenizer": kind, "vocabulary_size": 400, "embedding_dim": 8, "hidden_dim": 8,
        "num_layers": 1, "batch_size": 4, "sequence_length": 10, "sampled_softmax": 0})
    tokenizer = train_tokenizer(kind, lines, 400)
    lm = build_language_model(config, tokenizer)
    trained_pairs = set()  # every (input token, next token) the model is trained on
    for x, y, w in make_train_dataset(config, lm.preprocessor, lines, "train").as_numpy_iterator():
        trained_pairs.update(zip(x[w > 0].tolist(), y[w > 0].tolist()))

    scored = KerasScorer(lm, prepare="none").score(lines[:20])
    start_ids = lm.preprocessor(lines[:20]).numpy()[:, 0]  # what score() feeds the model first
    assert set(start_ids.tolist()) == {EOS_ID if mode == "stream" else BOS_ID}
    for start_id, scores in zip(start_ids, scored):
        assert (int(start_id), scores.token_ids[0]) in trained_pairs  # that first step was trained on
    prompt = lm.preprocessor.prompt(tf.constant(["the"])).to_list()[0]
    assert prompt[0] == start_ids[0]  # generation starts from the same token


def test_preprocessor_pads_right_truncates_and_round_trips():
    tokenizer = WordTokenizer.from_texts(["a b c d e"])
    preprocessor = ClassifierPreprocessor(tokenizer, sequence_length=3)
    ids = preprocessor(["a b c d e", "b"]).numpy()
    assert ids.tolist() == [[BOS_ID, 4, 5, 6, EOS_ID], [BOS_ID, 5, EOS_ID, PAD_ID, PAD_ID]]
    restored = ClassifierPreprocessor.from_config(preprocessor.get_config())  # the vocabulary is an asset
    assert restored.get_config() == preprocessor.get_config()  # of the .keras file, not of the config
    assert [a.tolist() for a in preprocessor.encode_lines(["a b", "c"], add_start_token=False)] == [
        [4, 5, EOS_ID], [6, EOS_ID]]


@pytest.mark.parametrize("kwargs, message", [
    (dict(start_token="<bos>"), r"`start_token` must be one of \['</s>', '<s>'\], received '<bos>'"),
    (dict(sequence_length=0), r"`sequence_length` must be a positive int or None, received 0"),
])
def test_bad_preprocessor_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LanguageModelPreprocessor(WordTokenizer.from_texts(["a"]), **kwargs)
