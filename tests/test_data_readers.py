import collections

import numpy as np
import pytest

from textlstm.data import (
    SENTIMENT_DATASETS,
    DataError,
    LabeledExamples,
    cross_validation_folds,
    held_out_sentences,
    read_label_prefixed,
    read_lines,
    read_polarity_pair,
    read_sentiment_dataset,
    read_tsv_labeled,
)


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


# Labeled sentiment data.


def test_sst2_glue_splits_sizes_and_labels(shared_data):
    train = read_sentiment_dataset("sst2_glue", "train", data_dir=str(shared_data))
    test = read_sentiment_dataset("sst2_glue", "test", data_dir=str(shared_data))
    assert (len(train), len(test)) == (60614, 872)
    assert train.label_counts() == {0: 26786, 1: 33828}
    assert set(test.labels) == {0, 1}
    # The GLUE files end each sentence with a space before the tab: texts come out stripped.
    assert train.texts[:2] == ["when are bears bears and", "kids , spirit"]
    assert all(text and text == text.strip() for text in train.texts + test.texts)
    assert train.source.endswith("train.tsv")


def test_kim2014_binary_and_fine_grained(shared_data):
    binary_train = read_sentiment_dataset("sst2_kim2014", "train", data_dir=str(shared_data))
    fine_test = read_sentiment_dataset("sst5_kim2014", "test", data_dir=str(shared_data))
    assert len(binary_train) == 6920 and set(binary_train.labels) == {0, 1}
    assert len(fine_test) == 2210
    assert fine_test.label_counts() == {0: 279, 1: 633, 2: 389, 3: 510, 4: 399}
    assert fine_test.texts[0] == "no movement , no yuks , not much of anything ."
    # UTF-8 in these files: "crème brûlée" decodes.
    assert "rancid crème brûlée" in fine_test.texts[1]
    first_dev = read_sentiment_dataset("sst2_kim2014", "dev", data_dir=str(shared_data), max_lines=5)
    assert first_dev.labels == [0, 0, 0, 0, 1]
    assert SENTIMENT_DATASETS["sst2_kim2014"].label_names == ("negative", "positive")
    assert SENTIMENT_DATASETS["sst5_kim2014"].label_names == (
        "very negative", "negative", "neutral", "positive", "very positive")
    assert SENTIMENT_DATASETS["sst5_kim2014"].num_classes == 5


def test_mr_is_latin1_negatives_then_positives(shared_data):
    examples = read_sentiment_dataset("mr", "all", data_dir=str(shared_data))
    assert len(examples) == 10662
    assert examples.label_counts() == {0: 5331, 1: 5331}
    assert examples.labels == [0] * 5331 + [1] * 5331
    # Line 32 of rt-polarity.neg and line 44 of rt-polarity.pos hold Latin-1 bytes 0xe9, 0xf3, 0xed.
    assert examples.texts[31] == "the action clichés just pile up ."
    assert examples.texts[5331 + 43].startswith("'compleja e intelectualmente retadora , el ladrón de orquídeas")
    assert read_sentiment_dataset("mr", "all", data_dir=str(shared_data), max_lines=3).labels == [0, 0, 0, 1, 1, 1]


def test_mr_read_as_utf8_names_file_and_line(shared_data):
    folder = shared_data / "mr_sentence_polarity"
    with pytest.raises(DataError, match=r"rt-polarity.neg:32: bytes b'\\xe9' at column 17 are not valid utf-8"):
        read_polarity_pair(str(folder / "rt-polarity.pos"), str(folder / "rt-polarity.neg"), encoding="utf-8")


def test_unknown_dataset_split_or_missing_file(tmp_path, shared_data):
    with pytest.raises(ValueError, match=r"`name` must be one of \['mr', 'sst2_glue', .*got 'imdb'"):
        read_sentiment_dataset("imdb", "train", data_dir=str(shared_data))
    with pytest.raises(ValueError, match=r"`split` for 'mr' must be one of \['all'\], got 'train'"):
        read_sentiment_dataset("mr", "train", data_dir=str(shared_data))
    with pytest.raises(ValueError, match=r"`split` for 'sst2_glue' .*\['train', 'dev', 'test'\], got 'valid'"):
        read_sentiment_dataset("sst2_glue", "valid", data_dir=str(shared_data))
    with pytest.raises(FileNotFoundError, match=r"stsa.fine.dev.*never downloads"):
        read_sentiment_dataset("sst5_kim2014", "dev", data_dir=str(tmp_path))


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_tsv_reads_by_header_names(tmp_path):
    path = write(tmp_path / "swapped.tsv", "label\tid\tsentence\n1\ta\t good \n\n0\tb\tbad\n")
    examples = read_tsv_labeled(path)
    assert (examples.texts, examples.labels, examples.source) == (["good", "bad"], [1, 0], path)
    assert read_tsv_labeled(path, max_lines=1).texts == ["good"]


def test_tsv_extra_tab_names_file_line_and_field_counts(tmp_path):
    path = write(tmp_path / "extra.tsv", "sentence\tlabel\nfine\t1\nbad\tmovie\t0\n")
    with pytest.raises(DataError, match=r"extra.tsv:3: expected 2 tab-separated fields .*found 3: 'bad\\tmovie\\t0'"):
        read_tsv_labeled(path)
    path = write(tmp_path / "missing.tsv", "sentence\tlabel\nno label here\n")
    with pytest.raises(DataError, match=r"missing.tsv:2: expected 2 .*found 1: 'no label here'"):
        read_tsv_labeled(path)


def test_tsv_missing_column_names_column_and_header(tmp_path):
    path = write(tmp_path / "header.tsv", "text\tlabel\nfine\t1\n")
    with pytest.raises(DataError, match=r"header.tsv:1: column 'sentence' .*found \['text', 'label'\]"):
        read_tsv_labeled(path)
    assert read_tsv_labeled(path, text_column="text").texts == ["fine"]
    with pytest.raises(DataError, match=r"empty.tsv:1: empty file"):
        read_tsv_labeled(write(tmp_path / "empty.tsv", ""))


@pytest.mark.parametrize("label", ["7", "pos", "-1", ""])
def test_tsv_bad_label_names_file_line_and_value(tmp_path, label):
    path = write(tmp_path / "labels.tsv", f"sentence\tlabel\nfine\t1\nodd\t{label}\n")
    with pytest.raises(DataError, match=rf"labels.tsv:3: label '{label}' is not an integer in \[0, 2\)"):
        read_tsv_labeled(path)


def test_tsv_label_range_follows_num_classes_and_empty_text_fails(tmp_path):
    path = write(tmp_path / "fine.tsv", "sentence\tlabel\nfine\t4\n")
    assert read_tsv_labeled(path, num_classes=5).labels == [4]
    path = write(tmp_path / "blank.tsv", "sentence\tlabel\nfine\t1\n  \t0\n")
    with pytest.raises(DataError, match=r"blank.tsv:3: empty text in column 'sentence'"):
        read_tsv_labeled(path)


def test_tsv_undecodable_bytes_name_file_and_line(tmp_path):
    path = tmp_path / "latin.tsv"
    path.write_bytes("sentence\tlabel\ncaf\xe9\t1\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.tsv:2: bytes b'\\xe9' at column 4"):
        read_tsv_labeled(str(path))
    assert read_tsv_labeled(str(path), encoding="latin-1").texts == ["café"]


def test_label_prefixed_reads_and_reports_bad_lines(tmp_path):
    path = write(tmp_path / "ok.txt", "1 good film \n\n0 bad film\n")
    assert read_label_prefixed(path).texts == ["good film", "bad film"]
    for name, content, message in [
        ("seven.txt", "1 good\n7 great\n", r"seven.txt:2: label '7' is not an integer in \[0, 2\)"),
        ("word.txt", "pos great\n", r"word.txt:1: label 'pos' is not an integer in \[0, 2\)"),
        ("nospace.txt", "1 good\n1 fine\n0\n", r"nospace.txt:3: expected '<label> <sentence>'.*: '0'"),
    ]:
        with pytest.raises(DataError, match=message):
            read_label_prefixed(write(tmp_path / name, content))
    assert read_label_prefixed(write(tmp_path / "seven5.txt", "4 great\n"), num_classes=5).labels == [4]


def test_labeled_examples_subset_and_counts():
    examples = LabeledExamples(["a", "b", "c", "d"], [0, 1, 1, 1], source="inline")
    part = examples.subset(np.array([3, 0]))
    assert (part.texts, part.labels, len(part)) == (["d", "a"], [1, 0], 2)
    assert examples.label_counts() == {0: 1, 1: 3}
    with pytest.raises(ValueError, match=r"same length, got 2 texts and 1 labels"):
        LabeledExamples(["a", "b"], [0], source="inline")


def test_cross_validation_folds_partition_all_examples():
    folds = cross_validation_folds(103, 10, seed=1)
    assert len(folds) == 10
    test_sizes = [len(test) for _, test in folds]
    assert max(test_sizes) - min(test_sizes) <= 1 and sum(test_sizes) == 103
    all_test = np.concatenate([test for _, test in folds])
    assert sorted(all_test.tolist()) == list(range(103))  # every example in exactly one test fold
    for train, test in folds:
        assert len(np.intersect1d(train, test)) == 0
        assert sorted(np.concatenate([train, test]).tolist()) == list(range(103))
    # Deterministic with a seed; another seed shuffles differently.
    again = cross_validation_folds(103, 10, seed=1)
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(folds, again))
    other = cross_validation_folds(103, 10, seed=2)
    assert not all(np.array_equal(a, b) for (_, a), (_, b) in zip(folds, other))


def word_runs(text):
    words = text.split()
    return {" ".join(words[start:end]) for start in range(len(words)) for end in range(start + 1, len(words) + 1)}


def test_held_out_sentences_keep_their_phrases_out_of_training(shared_data):
    train, dev = (read_sentiment_dataset("sst2_glue", split, data_dir=str(shared_data)) for split in ("train", "dev"))
    pooled = LabeledExamples(train.texts + dev.texts, train.labels + dev.labels, "sst2_glue train + dev")
    kept, held_out = held_out_sentences(pooled, 872, seed=3)
    assert len(held_out) == 872
    assert 58_000 < len(kept) < 62_000  # 67,349 rows less 872 sentences and the ~7k phrases only they hold
    held_texts = set(held_out.texts)
    assert np.mean([len(text.split()) for text in held_texts]) > 15  # whole sentences (test.tsv: 19.5 words)
    # No training row contains a held-out sentence; a training row that is a phrase of a held-out sentence
    # is a phrase of another training row too.
    kept_texts = [" ".join(text.split()) for text in kept.texts]
    kept_runs = collections.Counter(run for text in set(kept_texts) for run in word_runs(text))  # copies once
    assert not held_texts & set(kept_runs)
    held_runs = set().union(*(word_runs(text) for text in held_texts))
    shared_phrases = [text for text in kept_texts if text in held_runs]
    assert len(shared_phrases) > 1000 and all(kept_runs[text] > 1 for text in shared_phrases)
    # dev.tsv, the default validation, is mostly phrases of training rows.
    train_text = " \n ".join(" ".join(text.split()) for text in train.texts)
    assert np.mean([f" {' '.join(text.split())} " in f" {train_text} " for text in dev.texts[:100]]) > 0.8


def test_held_out_sentences_are_drawn_with_the_seed():
    examples = LabeledExamples([f"sentence {n} is here" for n in range(20)] + ["is here", "sentence 3"],
                               [n % 2 for n in range(22)], "inline")
    train, held_out = held_out_sentences(examples, 5, seed=3)
    assert held_out.texts == [f"sentence {n} is here" for n in (1, 3, 4, 12, 19)]
    assert "is here" in train.texts  # inside the 15 sentences that train
    assert "sentence 3" not in train.texts  # only inside a held-out sentence
    assert held_out_sentences(examples, 5, seed=3)[1].texts == held_out.texts
    assert held_out_sentences(examples, 5, seed=2)[1].texts != held_out.texts
    with pytest.raises(ValueError, match=r"`num_sentences` must be in \[1, 20\] \(the sentences found in inline\), got 21"):
        held_out_sentences(examples, 21)


def test_held_out_sentences_match_whole_words_and_drop_copies():
    examples = LabeledExamples(
        ["a  dullish   plot", "a dull", "dull", "a dull plot", "a fine film", "a dull plot"], [0, 0, 0, 0, 1, 0], "inline")
    # Sentences, longest first: "a  dullish   plot" (spaces do not count), "a dull plot" (the first copy),
    # "a fine film". "a dull" is a run of "a dull plot" only: "dull" is not a word of "dullish".
    train, held_out = held_out_sentences(examples, 1, seed=1)
    assert held_out.texts == ["a dull plot"]
    assert train.texts == ["a  dullish   plot", "a fine film"]  # "a dull", "dull" and the copy only inside it
    train, held_out = held_out_sentences(examples, 1, seed=11)
    assert held_out.texts == ["a  dullish   plot"]
    assert train.texts == ["a dull", "dull", "a dull plot", "a fine film", "a dull plot"]


def test_cross_validation_folds_stratified_on_mr(shared_data):
    examples = read_sentiment_dataset("mr", "all", data_dir=str(shared_data))
    labels = np.array(examples.labels)
    folds = cross_validation_folds(len(examples), 10, seed=0, labels=labels)
    test_sizes = [len(test) for _, test in folds]
    assert sorted(set(test_sizes)) == [1066, 1067]
    for train, test in folds:
        # 533.1 positives per fold on average: each fold holds 533 or 534, i.e. ~50% in train and test.
        assert int(labels[test].sum()) in (533, 534)
        assert abs(labels[train].mean() - 0.5) < 0.001
        assert len(np.intersect1d(train, test)) == 0
    assert sorted(np.concatenate([test for _, test in folds]).tolist()) == list(range(len(examples)))
    # Skewed labels: each fold keeps the 1-in-5 proportion.
    skewed = np.array([1] * 20 + [0] * 80)
    for _, test in cross_validation_folds(100, 5, labels=skewed):
        assert skewed[test].sum() == 4
    # A fold split feeds LabeledExamples.subset.
    train, test = folds[0]
    assert len(examples.subset(train)) + len(examples.subset(test)) == len(examples)


def test_cross_validation_folds_bad_arguments():
    with pytest.raises(ValueError, match=r"`num_folds` must be in \[2, num_examples=10\], got 1"):
        cross_validation_folds(10, 1)
    with pytest.raises(ValueError, match=r"`num_folds` must be in \[2, num_examples=10\], got 11"):
        cross_validation_folds(10, 11)
    with pytest.raises(ValueError, match=r"`labels` must have num_examples=10 entries, got shape \(9,\)"):
        cross_validation_folds(10, 2, labels=[0] * 9)
