"""Probes: what a language model knows, asked through a scorer (a Keras model or a SavedModel alike)."""

from textlstm.probes.scorer import (
    KerasScorer,
    SavedModelScorer,
    Scorer,
    TokenScores,
    load_scorer,
    prepare_ptb,
)
