"""Models: one LSTMBackbone, task heads on top of it."""

from textlstm.models.backbone import LSTMBackbone
from textlstm.models.cells import PeepholeLSTMCell
from textlstm.models.language_model import LanguageModel, Perplexity
from textlstm.models.classifier import (
    ClassifierPredictions,
    SentimentClassifier,
    TextClassifier,
    classifier_layer_groups,
    transfer_language_model,
)
from textlstm.models.agreement import AgreementClassifier
