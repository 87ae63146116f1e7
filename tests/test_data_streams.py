import numpy as np
import pytest

from textlstm.data import (
    batchify,
    file_stream_dataset,
    sentence_dataset,
    stream_dataset,
    stream_windows,
    token_stream,
)
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


def file_windows(preprocessor, paths, batch_size, sequence_length):
    return list(file_stream_dataset(preprocessor, paths, batch_size, sequence_length).as_numpy_iterator())


def test_file_streams_hold_every_line_once_in_order(tmp_path, ptb_lines, word_tokenizer):
    """Each row continues from window to window; the rows' tokens are, in order, the in-memory stream of the file."""
    preprocessor = stream_preprocessor(word_tokenizer)
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("\n".join(ptb_lines[:150]) + "\n\n  \n", encoding="utf-8")  # blank lines are skipped
    second.write_text("\n".join(ptb_lines[150:300]) + "\n", encoding="utf-8")
    batch_size, length = 4, 7
    windows = file_windows(preprocessor, [str(first), str(second)], batch_size, length)
    x = np.concatenate([w[0] for w in windows], axis=1)  # (batch, windows * length)
    y = np.concatenate([w[1] for w in windows], axis=1)
    assert x.shape[0] == batch_size and all(w[2].min() == 1.0 for w in windows)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # y is x shifted, across window edges too
    rows = np.concatenate([x, y[:, -1:]], axis=1)  # each stream's tokens, as read
    assert (rows[:, 0] == EOS_ID).all()  # every stream opens with </s>: its first line follows </s>
    whole = token_stream(preprocessor, ptb_lines[:300])
    # Each row is the in-memory stream from one line on, and the rows come in file order (the shortest
    # stream ends the epoch, so a row may stop before the next row's first line).
    line_starts = np.flatnonzero(whole == EOS_ID)
    position = 0
    for row in rows:
        matches = [start for start in line_starts[line_starts >= position]
                   if np.array_equal(whole[start : start + len(row)], row)]
        assert matches, "a row is not a stretch of the file's stream"
        position = matches[0] + len(row)
    tokens = sum(len(ids) for ids in preprocessor.encode_lines(ptb_lines[:300], add_start_token=False))
    assert rows.size > 0.8 * tokens  # an epoch ends with the shortest stream: little is left out


def test_file_streams_report_bad_bytes_and_too_little_text_before_training(tmp_path, word_tokenizer):
    preprocessor = stream_preprocessor(word_tokenizer)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"the company\nprofits \xff rose\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: bytes b'\\xff' at column 9 are not valid utf-8"):
        file_stream_dataset(preprocessor, str(bad), 2, 5)
    short = tmp_path / "short.txt"
    short.write_text("one line\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="short.txt: 1 non-empty lines, too few for batch_size=2"):
        file_stream_dataset(preprocessor, str(short), 2, 5)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        file_stream_dataset(preprocessor, str(tmp_path / "missing.txt"), 2, 5)
    with pytest.raises(ValueError, match="`paths` lists a file more than once"):
        file_stream_dataset(preprocessor, [str(short), str(short)], 2, 5)
    lopsided = tmp_path / "lopsided.txt"
    lopsided.write_text("a " * 500 + "\nb\nc\nd\n", encoding="utf-8")  # one line holds most of the bytes
    with pytest.raises(ValueError, match="cannot be cut at line ends into batch_size=3 streams"):
        file_stream_dataset(preprocessor, str(lopsided), 3, 5)


MEMORY_SCRIPT = """
import resource, sys
from textlstm.data import file_stream_dataset
from textlstm.preprocessors import LanguageModelPreprocessor
from textlstm.tokenizers import WordTokenizer
tokenizer = WordTokenizer.from_texts(["the company said profits rose in the quarter"] * 2)
preprocessor = LanguageModelPreprocessor.for_mode(tokenizer, "stream")
for path in sys.argv[1:]:  # the small file first: the pipeline's own memory is then in place
    windows = sum(1 for _ in file_stream_dataset(preprocessor, path, 20, 35))
    print(windows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def test_memory_does_not_grow_with_the_file(tmp_path):
    """One process streams a 1 MB file, then a 16 MB one: every window comes, and the peak memory after the
    second is within 10 MB of the peak after the first (a second pipeline's own functions and buffers take a
    few MB); holding the text (Python strings, then ids) would add several times the 15 MB more."""
    import subprocess
    import sys

    line = "the company said profits rose sharply in the third quarter of the year\n"  # 13 words and </s>
    paths, lines = [], []
    for megabytes in (1, 16):
        paths.append(tmp_path / f"{megabytes}.txt")
        lines.append(megabytes * 1_000_000 // len(line))
        paths[-1].write_text(line * lines[-1], encoding="utf-8")
    result = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, *map(str, paths)], capture_output=True,
                            text=True, timeout=600, check=True)
    (small_windows, small_peak), (big_windows, big_peak) = [map(int, row.split()) for row in
                                                              result.stdout.splitlines()]
    for windows, count in zip((small_windows, big_windows), lines):
        assert windows >= 0.95 * count * 14 / (20 * 35)  # every stream read to (about) its end
    assert big_peak - small_peak < 10_000_000, (small_peak, big_peak)
