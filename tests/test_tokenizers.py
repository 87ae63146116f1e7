import numpy as np
import pytest
import tensorflow as tf

from textlstm.tokenizers import (
    SPECIAL_TOKENS,
    SentencePieceTokenizer,
    WordTokenizer,
    load_tokenizer,
    save_tokenizer,
    train_sentencepiece,
)


def test_word_vocabulary_from_counts():
    tokenizer = WordTokenizer.from_texts(["b a a", "c a b", "<unk> d"], vocabulary_size=6)
    # Specials first, then by count (a:3, b:2), ties alphabetically (c before d); <unk> is not a word.
    assert tokenizer.get_vocabulary() == list(SPECIAL_TOKENS) + ["a", "b"]
    assert WordTokenizer.from_texts(["b a a", "c a b"], min_count=2).get_vocabulary()[4:] == ["a", "b"]


def test_word_round_trip_and_unknowns(word_tokenizer, ptb_lines):
    ids = word_tokenizer.tokenize(ptb_lines[:50])
    assert word_tokenizer.detokenize(ids).numpy().astype(str).tolist() == ptb_lines[:50]
    unknown = word_tokenizer.tokenize(["the zzzqqq"]).to_list()[0]
    assert unknown[1] == word_tokenizer.unk_id == 1
    assert word_tokenizer.token_to_id("<unk>") == 1 and word_tokenizer.id_to_token(3) == "</s>"
    with pytest.raises(ValueError, match=r"`id` must be in"):
        word_tokenizer.id_to_token(10**6)


def test_word_tokenizer_runs_in_tf_data(word_tokenizer):
    dataset = tf.data.Dataset.from_tensor_slices(["the company", "the"]).map(word_tokenizer.tokenize)
    eager = [word_tokenizer.tokenize(t).numpy().tolist() for t in ["the company", "the"]]
    assert [x.numpy().tolist() for x in dataset] == eager


def test_word_vocabulary_must_start_with_specials():
    with pytest.raises(ValueError, match="`vocabulary` must start with"):
        WordTokenizer(["a", "b", "c", "d"])


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_sentencepiece_from_texts_round_trip(sst_lines, model_type):
    tokenizer = train_sentencepiece(texts=sst_lines, vocabulary_size=500, model_type=model_type)
    assert [tokenizer.id_to_token(i) for i in range(4)] == list(SPECIAL_TOKENS)
    assert tokenizer.vocabulary_size() == 500
    texts = sst_lines[:50]
    assert any(not text.isascii() for text in sst_lines)
    ids = tokenizer.tokenize(tf.constant(texts))
    assert [t.decode("utf-8") for t in tokenizer.detokenize(ids).numpy()] == texts
    dataset = tf.data.Dataset.from_tensor_slices(texts[:3]).map(tokenizer.tokenize)
    assert [x.numpy().tolist() for x in dataset] == ids.to_list()[:3]
    assert tokenizer.detokenize(tokenizer.tokenize(["a ☃ b"])).numpy()[0].decode() == "a <unk> b"


def test_sentencepiece_from_a_generator_equals_from_a_list(ptb_lines):
    from_list = train_sentencepiece(texts=ptb_lines, vocabulary_size=300)
    from_generator = train_sentencepiece(texts=(line for line in ptb_lines), vocabulary_size=300)
    assert from_generator.proto == from_list.proto  # a one-pass iterator gives the same model


def test_sentencepiece_from_files(ptb_dir):
    tokenizer = train_sentencepiece(files=[str(ptb_dir / "ptb.valid.txt")], vocabulary_size=300, model_type="bpe")
    assert tokenizer.vocabulary_size() == 300
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        train_sentencepiece(files=["missing.txt"], vocabulary_size=300)


def test_sentencepiece_rejects_foreign_special_ids():
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(["a b c d e f"] * 20), model_writer=model,
                                   vocab_size=10, minloglevel=2)  # stock ids: unk=0, bos=1, eos=2
    with pytest.raises(ValueError, match="at id 0"):
        SentencePieceTokenizer(proto=model.getvalue())


@pytest.mark.parametrize("kind", ["word", "unigram"])
def test_save_and_load_round_trip(tmp_path, ptb_lines, kind):
    if kind == "word":
        tokenizer = WordTokenizer.from_texts(ptb_lines)
    else:
        tokenizer = train_sentencepiece(texts=ptb_lines, vocabulary_size=300)
    save_tokenizer(tokenizer, str(tmp_path / "tok"))
    restored = load_tokenizer(str(tmp_path / "tok"))
    assert type(restored) is type(tokenizer)
    assert restored.get_vocabulary() == tokenizer.get_vocabulary()
    texts = tf.constant(ptb_lines[:10])
    assert restored.tokenize(texts).to_list() == tokenizer.tokenize(texts).to_list()


@pytest.mark.parametrize("kind", ["word", "sentencepiece"])
def test_literal_control_tokens_in_text_never_become_control_ids(kind, word_tokenizer, ptb_lines):
    """'<pad>', '<s>' and '</s>' typed in a text are words: no masked id, no fake sentence boundary."""
    from textlstm.preprocessors import LanguageModelPreprocessor

    tokenizer = word_tokenizer if kind == "word" else train_sentencepiece(texts=ptb_lines, vocabulary_size=300)
    texts = ["the <pad> company </s> said <s> so", "<pad>"]
    for ids in tokenizer.tokenize(tf.constant(texts)).to_list() + [tokenizer.tokenize("</s>").numpy().tolist()]:
        assert ids and not {0, 2, 3} & set(ids), ids
    framed = LanguageModelPreprocessor.for_mode(tokenizer, "sentence")(tf.constant(texts)).numpy()
    assert (framed[:, 0] == 2).all() and ((framed == 3).sum(axis=1) == 1).all()  # one <s>, one </s> a row
    assert (framed[0] != 0).all()  # the longest row: no padding inside it
