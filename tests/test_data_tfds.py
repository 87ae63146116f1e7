import time

import pytest

from textlstm.data import read_lines, tfds_lines


def test_ptb_builder_reads_the_manual_dir_in_order(ptb_tfds_dir, ptb_dir):
    lines = tfds_lines("textlstm_ptb", "validation", data_dir=str(ptb_tfds_dir))
    assert lines == read_lines(str(ptb_dir / "ptb.valid.txt"))  # every sentence, document order kept
    head = tfds_lines("textlstm_ptb", "test", data_dir=str(ptb_tfds_dir), max_lines=5)
    assert head == read_lines(str(ptb_dir / "ptb.test.txt"), max_lines=5)


def test_unknown_split_names_the_splits(ptb_tfds_dir):
    with pytest.raises(ValueError, match=r"`split` 'valid' is not a split of TFDS 'textlstm_ptb'.*'validation'"):
        tfds_lines("textlstm_ptb", "valid", data_dir=str(ptb_tfds_dir))


def test_unprepared_stock_dataset_fails_fast_without_network(tmp_path):
    start = time.monotonic()
    with pytest.raises(FileNotFoundError, match=r"'lm1b' is not prepared in .*tfds build lm1b"):
        tfds_lines("lm1b", "train", data_dir=str(tmp_path))
    assert time.monotonic() - start < 30


def test_missing_manual_dir_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="manual_dir not found: .*nowhere"):
        tfds_lines("textlstm_ptb", "train", data_dir=str(tmp_path), manual_dir=str(tmp_path / "nowhere"))
