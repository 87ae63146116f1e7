import pytest

from textlstm.data import DataError, read_lines


def test_skips_empty_lines_and_strips(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b" a b \n\n   \nc\r\n")
    assert read_lines(str(path)) == ["a b", "c"]
    assert read_lines(str(path), max_lines=1) == ["a b"]


def test_undecodable_bytes_name_file_line_and_column(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes("fine\nalso fine\ncaf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"bad.txt:3: bytes b'\\xe9' at column 4 are not valid utf-8"):
        read_lines(str(path))


def test_real_latin1_corpus_needs_its_encoding(shared_data):
    # MR polarity is Latin-1 (see its PROVENANCE.txt): UTF-8 fails with a location, latin-1 reads it all.
    path = str(shared_data / "mr_sentence_polarity" / "rt-polarity.pos")
    with pytest.raises(DataError, match=r"rt-polarity.pos:\d+:"):
        read_lines(path)
    lines = read_lines(path, encoding="latin-1")
    assert len(lines) == 5331
    assert any("\xe9" in line for line in lines)


def test_missing_file_names_path_and_data_source(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing.txt.*shared/data"):
        read_lines(str(tmp_path / "nothing.txt"))
