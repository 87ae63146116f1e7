"""Data: readers, tf.data builders and TFDS builders."""

from textlstm.data.language_modeling import (
    batchify,
    encode_lines,
    lm_sentence_dataset,
    lm_stream_dataset,
    stream_windows,
)
from textlstm.data.readers import DataError, read_lines
from textlstm.data.tfds_builders import TextlstmPtb, load_builder, tfds_lines
