"""textlstm: LSTM text models on Keras 3 and TensorFlow.

The public API: tokenizers, preprocessors, data pipelines, the shared
LSTMBackbone and the task models on it, run configs and the recipes.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's C++ start-up chatter out of the CLI

from textlstm.config import (  # noqa: E402
    AgreementConfig,
    LanguageModelConfig,
    RunConfig,
    SentimentConfig,
    load_config,
)
from textlstm.models import (  # noqa: E402
    AgreementClassifier,
    LanguageModel,
    LSTMBackbone,
    SentimentClassifier,
    TextClassifier,
)
from textlstm.probes import KerasScorer, SavedModelScorer, TokenScores, load_scorer  # noqa: E402
from textlstm.preprocessors import ClassifierPreprocessor, LanguageModelPreprocessor  # noqa: E402
from textlstm.recipes import (  # noqa: E402
    evaluate_language_model,
    export_run,
    load_agreement_classifier,
    load_classifier,
    load_language_model,
    train_agreement,
    train_language_model,
    train_sentiment,
)
from textlstm.runs import RunDirectory  # noqa: E402
from textlstm.tokenizers import (  # noqa: E402
    SentencePieceTokenizer,
    WordTokenizer,
    load_tokenizer,
    save_tokenizer,
    train_sentencepiece,
)

__version__ = "0.1.0"
