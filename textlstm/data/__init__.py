"""Data: readers, tf.data builders and TFDS builders."""

from textlstm.data.sequences import bucketed_batches, labeled_dataset, sentence_dataset
from textlstm.data.streams import (
    batchify,
    file_stream_dataset,
    non_empty,
    stream_dataset,
    stream_windows,
    token_stream,
)
from textlstm.data.readers import DataError, read_lines
from textlstm.data.readers import (
    SENTIMENT_DATASETS,
    LabeledExamples,
    SentimentDatasetInfo,
    cross_validation_folds,
    held_out_sentences,
    read_label_prefixed,
    read_polarity_pair,
    read_sentiment_dataset,
    read_tsv_labeled,
)
from textlstm.data.tfds_builders import TextlstmPtb, load_builder, tfds_lines
from textlstm.data.conllu import Sentence, Token, read_conllu
from textlstm.data.number_agreement import (
    NumberItem,
    attractor_bucket,
    extract_number_items,
    load_number_items,
    other_number_form,
    read_number_items,
    write_number_items,
)
