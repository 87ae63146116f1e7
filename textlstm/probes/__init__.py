"""Probes: what a language model knows, asked through a scorer (a Keras model or a SavedModel alike),
and what its cells compute (`gates`, `diagnostic`, `number_units`, which read a Keras model's weights)."""

from textlstm.probes.gates import CellTrace, Intervention, inspect, unroll

from textlstm.probes.scorer import (
    KerasScorer,
    SavedModelScorer,
    Scorer,
    TokenScores,
    load_scorer,
    prepare_ptb,
)
