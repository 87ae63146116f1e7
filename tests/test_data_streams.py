import numpy as np
import pytest

from textlstm.data import batchify, sentence_dataset, stream_dataset, stream_windows, token_stream
from textlstm.preprocessors import LanguageModelPreprocessor
from textlstm.tokenizers import BOS_ID, EOS_ID, WordTokenizer


def stream_preprocessor(tokenizer):
    return LanguageModelPreprocessor.for_mode(tokenizer, "stream")


def sentence_preprocessor(tokenizer):
    return LanguageModelPreprocessor.for_mode(tokenizer, "sentence")


def test_batchify_hand_checked():
    # 11 tokens, 3 streams: the last 2 tokens are trimmed, each row is a contiguous stretch.
    assert batchify(np.arange(11), 3).tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    with pytest.raises(ValueError, match="too few"):
        batchify(np.arange(3), 3)


def test_stream_windows_hand_checked():
    # stream 0..13, 2 streams -> rows [0..6] and [7..13]; windows of 3 over inputs [:, :-1].
    windows = list(stream_windows(np.arange(14), batch_size=2, sequence_length=3).as_numpy_iterator())
    assert len(windows) == 2
    x, y, w = windows[0]
    assert x.tolist() == [[0, 1, 2], [7, 8, 9]]
    assert y.tolist() == [[1, 2, 3], [8, 9, 10]]
    x, y, w = windows[1]
    assert x.tolist() == [[3, 4, 5], [10, 11, 12]]
    assert y.tolist() == [[4, 5, 6], [11, 12, 13]]
    assert w.min() == 1.0


def test_stream_windows_keep_last_pads_right_with_zero_weight():
    windows = list(stream_windows(np.arange(1, 17), 2, 3, keep_last=True).as_numpy_iterator())
    assert len(windows) == 3  # 7 input steps a row: 3 + 3 + 1 (padded to 3)
    x, y, w = windows[-1]
    assert x.tolist() == [[7, 0, 0], [15, 0, 0]]
    assert y.tolist() == [[8, 0, 0], [16, 0, 0]]
    assert w.tolist() == [[1, 0, 0], [1, 0, 0]]
    scored = sum(float(w.sum()) for _, _, w in windows)
    assert scored == 14  # every input->target pair of both rows is scored exactly once


def test_stream_opens_with_eos_and_ends_every_line_with_it():
    tokenizer = WordTokenizer.from_texts(["a b", "c"])
    assert token_stream(stream_preprocessor(tokenizer), ["a b", "c"]).tolist() == [EOS_ID, 4, 5, EOS_ID, 6, EOS_ID]
    with pytest.raises(ValueError, match="start_token='<s>'"):
        token_stream(sentence_preprocessor(tokenizer), ["a b"])
    dataset = stream_dataset(stream_preprocessor(tokenizer), ["a b", "c"] * 10, batch_size=2, sequence_length=4)
    x, y, _ = next(iter(dataset))
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])


def test_sentence_mode_right_padding_and_masks():
    lines = ["a b c", "", "a", "   ", "b c", "a b c a b c"]
    tokenizer = WordTokenizer.from_texts(lines)
    batches = list(sentence_dataset(sentence_preprocessor(tokenizer), lines, batch_size=4).as_numpy_iterator())
    seen = 0
    for x, y, w in batches:
        assert (x[:, 0] == BOS_ID).all()
        for row_x, row_y, row_w in zip(x, y, w):
            n = int(row_w.sum())
            seen += 1
            assert n >= 2  # never an empty sequence: at least one word and </s>
            assert row_y[n - 1] == EOS_ID
            assert (row_y[n:] == 0).all() and (row_w[n:] == 0).all()  # padding only on the right
            assert (row_y[:n] != 0).all()
    assert seen == 4  # the blank lines became no sequence at all


def test_sentence_mode_declares_its_number_of_batches(ptb_lines):
    lines = ptb_lines[:500]
    tokenizer = WordTokenizer.from_texts(lines)
    dataset = sentence_dataset(sentence_preprocessor(tokenizer), lines, batch_size=16)
    counted = sum(1 for _ in dataset)
    assert int(dataset.cardinality()) == counted
    assert counted > len(lines) // 16  # buckets each end with a partial batch


def test_stream_skips_blank_lines_and_names_its_source_in_errors():
    tokenizer = WordTokenizer.from_texts(["a b", "c"])
    preprocessor = stream_preprocessor(tokenizer)
    dataset = stream_dataset(preprocessor, ["a b", "", "c", " "] * 10, batch_size=2, sequence_length=4)
    # 51 tokens (</s>, then a b </s> c </s> ten times) -> 2 rows of 25 -> 24 targets a row, 6 full windows of 4
    assert int(sum(w.numpy().sum() for _, _, w in dataset)) == 2 * 24
    with pytest.raises(ValueError, match=r"valid.txt: no non-empty lines to model \(received 2 lines\)"):
        stream_dataset(preprocessor, ["", "  "], batch_size=2, sequence_length=4, source="valid.txt")
    with pytest.raises(ValueError, match=r"test.txt: stream of \d+ steps per row is shorter than sequence_length=35"):
        stream_dataset(preprocessor, ["a b c"] * 3, batch_size=2, sequence_length=35, source="test.txt")
    with pytest.raises(ValueError, match=r"train.txt: no non-empty lines"):
        sentence_dataset(sentence_preprocessor(tokenizer), [""], batch_size=2, source="train.txt")
