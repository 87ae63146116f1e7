"""Readers: text files in, decoded lines out, with errors that name file and line.

Besides plain lines (`read_lines`), this module reads labeled sentiment
corpora into `LabeledExamples`: GLUE-style TSV (`read_tsv_labeled`), Kim
(2014)'s `<label> <sentence>` lines (`read_label_prefixed`) and Pang & Lee's
one-file-per-polarity MR (`read_polarity_pair`); `read_sentiment_dataset`
reads the well-known ones in ../shared/data by name, and
`cross_validation_folds` gives the (stratified) k-fold splits used for MR;
`held_out_sentences` splits a phrase-level set (GLUE's SST-2) by sentence.
"""

import collections
import dataclasses
import logging
import os

import numpy as np

logger = logging.getLogger(__name__)

DATA_HELP = (
    "textlstm never downloads data: the corpora live in ../shared/data "
    "(see its README.md) or wherever you put your own copy."
)


class DataError(ValueError):
    """Bad input data; the message names the file, the line and what was wrong."""


def check_exists(path):
    """Raises FileNotFoundError naming `path` and where data comes from."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"data file not found: {path}. {DATA_HELP}")


def numbered_lines(path, encoding):
    """Yields `(line_number, line)` for each line of `path`, newline removed.

    Each line's bytes are decoded on their own, so a decoding error names the
    file, the line and the column.

    Raises:
        FileNotFoundError: `path` does not exist.
        DataError: a line does not decode.
    """
    check_exists(path)
    with open(path, "rb") as f:
        for line_number, raw in enumerate(f, start=1):
            yield line_number, decode_line(raw, encoding, path, line_number)


def decode_line(raw, encoding, path, line_number):
    """A line's bytes decoded, newline removed; a DataError naming file, line and column if they do not decode."""
    try:
        return raw.decode(encoding).rstrip("\r\n")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path}:{line_number}: bytes {raw[error.start:error.end]!r} at column "
            f"{error.start + 1} are not valid {encoding}; pass the file's encoding "
            f"(e.g. encoding='latin-1')."
        ) from None


def read_lines(path, encoding="utf-8", skip_empty=True, max_lines=0):
    """Reads a text file into a list of lines without their newline.

    Args:
        path: str, the file.
        encoding: str, how the bytes are decoded ("utf-8", "latin-1", ...).
        skip_empty: bool, drop lines that are empty after stripping, so an
            empty line never becomes an empty sequence.
        max_lines: int, stop after this many kept lines; 0 = all.

    Raises:
        FileNotFoundError: `path` does not exist.
        DataError: a line does not decode; names file, line and column.

    Example:
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
    ...     _ = f.write("a b\\n\\nc\\n")
    >>> read_lines(f.name)
    ['a b', 'c']
    """
    lines = []
    for _, line in numbered_lines(path, encoding):
        if skip_empty and not line.strip():
            continue
        lines.append(line.strip())
        if max_lines and len(lines) >= max_lines:
            break
    logger.info("read %d lines from %s", len(lines), path)
    return lines


@dataclasses.dataclass
class LabeledExamples:
    """Texts with one integer class label each.

    Attributes:
        texts: list of str, stripped and never empty.
        labels: list of int, `labels[i]` is the class of `texts[i]`.
        source: str, where the examples came from (the file or files read).

    Raises:
        ValueError: `texts` and `labels` differ in length.

    Example:
    >>> examples = LabeledExamples(["good", "bad", "fine"], [1, 0, 1], source="inline")
    >>> len(examples), examples.label_counts()
    (3, {0: 1, 1: 2})
    >>> examples.subset([2, 0]).texts
    ['fine', 'good']
    """

    texts: list[str]
    labels: list[int]
    source: str

    def __post_init__(self):
        if len(self.texts) != len(self.labels):
            raise ValueError(
                f"`texts` and `labels` must have the same length, got {len(self.texts)} texts "
                f"and {len(self.labels)} labels (source {self.source!r})."
            )

    def __len__(self):
        return len(self.texts)

    def subset(self, indices):
        """Returns the examples at `indices` (ints or an int array), in that order."""
        indices = [int(index) for index in indices]
        return LabeledExamples(
            [self.texts[index] for index in indices],
            [self.labels[index] for index in indices],
            source=f"{self.source} (subset of {len(indices)} of {len(self)})",
        )

    def label_counts(self):
        """Returns `{label: number of examples}`, sorted by label."""
        return dict(sorted(collections.Counter(self.labels).items()))


def _parse_label(value, num_classes, path, line_number):
    """Returns `value` as an int in [0, num_classes); DataError naming file:line otherwise."""
    stripped = value.strip()
    if not (stripped.isascii() and stripped.isdigit()) or int(stripped) >= num_classes:
        raise DataError(
            f"{path}:{line_number}: label {value!r} is not an integer in [0, {num_classes})."
        )
    return int(stripped)


def _log_examples(examples):
    logger.info(
        "read %d labeled examples %s from %s", len(examples), examples.label_counts(), examples.source
    )


def read_tsv_labeled(
    path, encoding="utf-8", text_column="sentence", label_column="label", num_classes=2, max_lines=0
):
    """Reads a tab-separated file with a header line into `LabeledExamples`.

    The header (line 1) names the columns; every other line is one example
    with exactly as many tab-separated fields as the header (GLUE's SST-2
    `sentence<TAB>label`). Texts are stripped; lines that are entirely empty
    are skipped.

    Args:
        path: str, the file.
        encoding: str, how the bytes are decoded.
        text_column: str, the header name of the text column.
        label_column: str, the header name of the label column.
        num_classes: int, labels must be integers in [0, num_classes).
        max_lines: int, stop after this many examples; 0 = all.

    Returns:
        `LabeledExamples` with `source=path`.

    Raises:
        FileNotFoundError: `path` does not exist.
        DataError: naming file and line: no header, a column missing from
            the header, a line with the wrong number of fields, an empty
            text, a label that is not an integer in [0, num_classes), or
            bytes that do not decode.

    Example:
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     path = os.path.join(directory, "train.tsv")
    ...     with open(path, "w", encoding="utf-8") as f:
    ...         _ = f.write("sentence\\tlabel\\ngreat fun \\t1\\ndull \\t0\\n")
    ...     examples = read_tsv_labeled(path)
    >>> examples.texts, examples.labels
    (['great fun', 'dull'], [1, 0])
    """
    lines = numbered_lines(path, encoding)
    header_line = next(lines, None)
    if header_line is None:
        raise DataError(f"{path}:1: empty file, expected a header line naming the columns.")
    header = [name.strip() for name in header_line[1].split("\t")]
    for argument, column in (("text_column", text_column), ("label_column", label_column)):
        if column not in header:
            raise DataError(
                f"{path}:1: column {column!r} (`{argument}`) is not in the header; found {header}."
            )
    text_index, label_index = header.index(text_column), header.index(label_column)
    texts, labels = [], []
    for line_number, line in lines:
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise DataError(
                f"{path}:{line_number}: expected {len(header)} tab-separated fields {header}, "
                f"found {len(fields)}: {line!r}."
            )
        text = fields[text_index].strip()
        if not text:
            raise DataError(f"{path}:{line_number}: empty text in column {text_column!r}: {line!r}.")
        labels.append(_parse_label(fields[label_index], num_classes, path, line_number))
        texts.append(text)
        if max_lines and len(texts) >= max_lines:
            break
    examples = LabeledExamples(texts, labels, source=path)
    _log_examples(examples)
    return examples


def read_label_prefixed(path, encoding="utf-8", num_classes=2, max_lines=0):
    """Reads `<label> <sentence>` lines (Kim 2014's SST files) into `LabeledExamples`.

    The label is everything before the first whitespace; the rest, stripped,
    is the text. Lines that are entirely empty are skipped.

    Args:
        path: str, the file.
        encoding: str, how the bytes are decoded.
        num_classes: int, labels must be integers in [0, num_classes).
        max_lines: int, stop after this many examples; 0 = all.

    Returns:
        `LabeledExamples` with `source=path`.

    Raises:
        FileNotFoundError: `path` does not exist.
        DataError: naming file and line: a line without a sentence after
            its label, a label that is not an integer in [0, num_classes),
            or bytes that do not decode.

    Example:
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     path = os.path.join(directory, "stsa.fine.dev")
    ...     with open(path, "w", encoding="utf-8") as f:
    ...         _ = f.write("4 a stirring , funny film\\n1 one long string of cliches .\\n")
    ...     examples = read_label_prefixed(path, num_classes=5)
    >>> examples.labels, examples.texts[1]
    ([4, 1], 'one long string of cliches .')
    """
    texts, labels = [], []
    for line_number, line in numbered_lines(path, encoding):
        if not line.strip():
            continue
        fields = line.split(maxsplit=1)
        if len(fields) != 2:
            raise DataError(
                f"{path}:{line_number}: expected '<label> <sentence>', found no sentence after "
                f"the label: {line!r}."
            )
        labels.append(_parse_label(fields[0], num_classes, path, line_number))
        texts.append(fields[1].strip())
        if max_lines and len(texts) >= max_lines:
            break
    examples = LabeledExamples(texts, labels, source=path)
    _log_examples(examples)
    return examples


def read_polarity_pair(positive_path, negative_path, encoding="latin-1", max_lines=0):
    """Reads one-sentence-a-line positive and negative files (Pang & Lee's MR).

    The examples come negatives first (label 0, in file order), then
    positives (label 1, in file order), as in harvardnlp's rt-polarity.all;
    shuffle or use `cross_validation_folds` before training. Lines are
    stripped and empty lines skipped (`read_lines`).

    Args:
        positive_path: str, the positive sentences (label 1).
        negative_path: str, the negative sentences (label 0).
        encoding: str, how the bytes are decoded; MR's rt-polarity files
            are Latin-1.
        max_lines: int, read at most this many lines from each file; 0 = all.

    Returns:
        `LabeledExamples` whose source names both files.

    Raises:
        FileNotFoundError: a file does not exist.
        DataError: a line does not decode; names file, line and column.

    Example:
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     positive, negative = os.path.join(directory, "pos"), os.path.join(directory, "neg")
    ...     with open(positive, "wb") as f:
    ...         _ = f.write("a clich\\xe9 , but fun\\n".encode("latin-1"))
    ...     with open(negative, "wb") as f:
    ...         _ = f.write(b"simplistic , silly and tedious . \\n")
    ...     examples = read_polarity_pair(positive, negative)
    >>> examples.texts, examples.labels
    (['simplistic , silly and tedious .', 'a cliché , but fun'], [0, 1])
    """
    negatives = read_lines(negative_path, encoding=encoding, max_lines=max_lines)
    positives = read_lines(positive_path, encoding=encoding, max_lines=max_lines)
    examples = LabeledExamples(
        negatives + positives,
        [0] * len(negatives) + [1] * len(positives),
        source=f"{negative_path} (label 0) + {positive_path} (label 1)",
    )
    _log_examples(examples)
    return examples


def cross_validation_folds(num_examples, num_folds, seed=0, labels=None):
    """Splits `range(num_examples)` into `num_folds` (train, test) index pairs.

    A permutation seeded by `seed` is dealt round-robin into `num_folds`
    test folds, so every example is in exactly one test fold and fold sizes
    differ by at most 1. With `labels`, the permutation is first grouped by
    label (stratified, like sklearn's `StratifiedKFold`): each fold then
    holds each label's examples to within 1 of an equal share, so label
    proportions match across folds.

    Args:
        num_examples: int, how many examples there are.
        num_folds: int, in [2, num_examples]; MR's literature uses 10.
        seed: int, the same seed gives the same folds.
        labels: optional sequence of `num_examples` labels to stratify by.

    Returns:
        list of `num_folds` pairs `(train_indices, test_indices)`, sorted
        int64 numpy arrays; fold `k`'s train indices are all the others.

    Raises:
        ValueError: `num_folds` is outside [2, num_examples], or `labels`
            does not have `num_examples` entries.

    Example:
    >>> folds = cross_validation_folds(5, 2, labels=[0, 0, 0, 1, 1])
    >>> [(len(train), len(test)) for train, test in folds]
    [(2, 3), (3, 2)]
    >>> sorted(int(index) for _, test in folds for index in test)
    [0, 1, 2, 3, 4]
    """
    if num_folds < 2 or num_folds > num_examples:
        raise ValueError(
            f"`num_folds` must be in [2, num_examples={num_examples}], got {num_folds}."
        )
    order = np.random.default_rng(seed).permutation(num_examples)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (num_examples,):
            raise ValueError(
                f"`labels` must have num_examples={num_examples} entries, got shape {labels.shape}."
            )
        order = order[np.argsort(labels[order], kind="stable")]
    fold_of_example = np.empty(num_examples, dtype=np.int64)
    fold_of_example[order] = np.arange(num_examples) % num_folds
    return [
        (np.flatnonzero(fold_of_example != fold), np.flatnonzero(fold_of_example == fold))
        for fold in range(num_folds)
    ]


def held_out_sentences(examples, num_sentences, seed=0):
    """Splits phrase-level examples by sentence: `num_sentences` whole sentences, and the phrases only they hold.

    A phrase-level treebank set (GLUE's SST-2 train: SST's non-neutral
    training sentences and their labeled phrases) cannot be split by row: most
    phrases of a held-out row's sentence would stay in training. SST's own
    train/dev split (Socher et al. 2013) is by sentence; this rebuilds one:
    the sentences are the rows that no longer row contains as a run of whole
    words (of identical rows, the first), `num_sentences` of them are drawn
    with `seed`, and any other row trains only if a sentence left in
    training contains it (copies of a held-out sentence train only so).

    Args:
        examples: `LabeledExamples`, phrases and their sentences.
        num_sentences: int, in [1, number of sentences found].
        seed: int, the same seed draws the same sentences.

    Returns:
        `(train, held_out)`, `LabeledExamples` in the order of `examples`;
        rows found only inside held-out sentences are in neither.

    Raises:
        ValueError: `num_sentences` is outside [1, number of sentences].

    Example:
    >>> examples = LabeledExamples(["a fine film", "fine", "a dull plot", "dull", "a"], [1, 1, 0, 0, 1], "inline")
    >>> train, held_out = held_out_sentences(examples, 1, seed=0)
    >>> held_out.texts, train.texts
    (['a dull plot'], ['a fine film', 'fine', 'a'])
    """
    words = [text.split() for text in examples.texts]
    inside_sentences, sentences = set(), []  # every run of words of a sentence found so far; their rows
    for index in sorted(range(len(words)), key=lambda index: -len(words[index])):  # longest first
        if " ".join(words[index]) not in inside_sentences:
            sentences.append(index)
            inside_sentences |= _word_runs(words[index])
    del inside_sentences  # ~2M strings on SST-2; the kept sentences' runs are built next
    if not 1 <= num_sentences <= len(sentences):
        raise ValueError(f"`num_sentences` must be in [1, {len(sentences)}] (the sentences found in "
                         f"{examples.source}), got {num_sentences}.")
    held = set(np.random.default_rng(seed).choice(sorted(sentences), num_sentences, replace=False).tolist())
    kept_runs = set()
    for index in sentences:
        if index not in held:
            kept_runs |= _word_runs(words[index])
    train = [index for index in range(len(words)) if index not in held and " ".join(words[index]) in kept_runs]
    logger.info("%s: %d sentences among %d rows; %d held out, with %d rows found only inside them; %d rows train",
                examples.source, len(sentences), len(words), len(held), len(words) - len(train) - len(held),
                len(train))
    return examples.subset(train), examples.subset(sorted(held))


def _word_runs(words):
    """Every contiguous run of `words`, joined by single spaces."""
    return {" ".join(words[start:end]) for start in range(len(words)) for end in range(start + 1, len(words) + 1)}


BINARY_LABEL_NAMES = ("negative", "positive")
FIVE_CLASS_LABEL_NAMES = ("very negative", "negative", "neutral", "positive", "very positive")


@dataclasses.dataclass(frozen=True)
class SentimentDatasetInfo:
    """A well-known sentiment corpus under ../shared/data.

    Attributes:
        label_names: tuple of str, `label_names[label]` names class `label`.
        file_format: str, "tsv", "label_prefixed" or "polarity_pair".
        split_files: dict, split name -> tuple of paths relative to the
            data directory (for "polarity_pair": positive file, negative file).
        encoding: str, how the files are decoded.

    Example:
    >>> SENTIMENT_DATASETS["sst5_kim2014"].num_classes, SENTIMENT_DATASETS["mr"].label_names
    (5, ('negative', 'positive'))
    """

    label_names: tuple
    file_format: str
    split_files: dict
    encoding: str = "utf-8"

    @property
    def num_classes(self):
        return len(self.label_names)


def _kim_splits(prefix):
    return {split: (f"sst_kim2014/{prefix}.{split}",) for split in ("train", "dev", "test")}


# Dataset name -> SentimentDatasetInfo: the names read_sentiment_dataset knows.
SENTIMENT_DATASETS = {
    "sst2_glue": SentimentDatasetInfo(
        BINARY_LABEL_NAMES, "tsv", {split: (f"sst2_glue/{split}.tsv",) for split in ("train", "dev", "test")}
    ),
    "sst2_kim2014": SentimentDatasetInfo(BINARY_LABEL_NAMES, "label_prefixed", _kim_splits("stsa.binary")),
    "sst5_kim2014": SentimentDatasetInfo(FIVE_CLASS_LABEL_NAMES, "label_prefixed", _kim_splits("stsa.fine")),
    "mr": SentimentDatasetInfo(
        BINARY_LABEL_NAMES,
        "polarity_pair",
        {"all": ("mr_sentence_polarity/rt-polarity.pos", "mr_sentence_polarity/rt-polarity.neg")},
        encoding="latin-1",
    ),
}


def read_sentiment_dataset(name, split, data_dir="../shared/data", max_lines=0):
    """Reads one split of a well-known sentiment corpus by name.

    Names (see `SENTIMENT_DATASETS`): "sst2_glue" (GLUE's phrase-level SST-2
    TSV; train/dev/test), "sst2_kim2014" and "sst5_kim2014" (Kim 2014's
    sentence-level SST-2 / SST-5; train/dev/test), "mr" (Pang & Lee's
    sentence polarity, Latin-1; split "all" only, as it has no split: use
    `cross_validation_folds`).

    Args:
        name: str, a key of `SENTIMENT_DATASETS`.
        split: str, one of that dataset's splits.
        data_dir: str, the folder holding the corpora's folders.
        max_lines: int, stop after this many examples (for "mr": this many
            from each polarity file); 0 = all.

    Returns:
        `LabeledExamples`, labels in [0, SENTIMENT_DATASETS[name].num_classes).

    Raises:
        ValueError: unknown `name` or `split`; lists the valid ones.
        FileNotFoundError: a file is missing from `data_dir`.
        DataError: a file is malformed; names file and line.
    """
    if name not in SENTIMENT_DATASETS:
        raise ValueError(f"`name` must be one of {sorted(SENTIMENT_DATASETS)}, got {name!r}.")
    info = SENTIMENT_DATASETS[name]
    if split not in info.split_files:
        raise ValueError(
            f"`split` for {name!r} must be one of {list(info.split_files)}, got {split!r}."
        )
    paths = [os.path.join(data_dir, relative_path) for relative_path in info.split_files[split]]
    if info.file_format == "tsv":
        return read_tsv_labeled(
            paths[0], encoding=info.encoding, num_classes=info.num_classes, max_lines=max_lines
        )
    if info.file_format == "label_prefixed":
        return read_label_prefixed(
            paths[0], encoding=info.encoding, num_classes=info.num_classes, max_lines=max_lines
        )
    return read_polarity_pair(*paths, encoding=info.encoding, max_lines=max_lines)
