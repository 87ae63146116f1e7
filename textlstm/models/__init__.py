"""Models: one LSTMBackbone, task heads on top of it.

The backbone and its cells are plain Keras and load under any backend; the
task models hold TensorFlow tokenizers and losses (see `textlstm`).
"""

import keras

from textlstm.models.backbone import LSTMBackbone
from textlstm.models.cells import PeepholeLSTMCell

if keras.backend.backend() == "tensorflow":
    from textlstm.models.language_model import LanguageModel, Perplexity
    from textlstm.models.classifier import (
        ClassifierPredictions,
        SentimentClassifier,
        TextClassifier,
        classifier_layer_groups,
        transfer_language_model,
    )
    from textlstm.models.agreement import AgreementClassifier
    from textlstm.models.ensemble import ClassifierEnsemble
