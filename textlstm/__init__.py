"""textlstm: LSTM text models on Keras 3 and TensorFlow.

The public API: tokenizers, preprocessors, data pipelines, the shared
LSTMBackbone and the task models on it, run configs and the recipes.

Everything runs on Keras's TensorFlow backend (the default set here):
tokenization, `tf.data` pipelines and exports are TensorFlow graphs. Under
another backend (`KERAS_BACKEND=jax` or `torch`, set before the first
import) only `LSTMBackbone` and `PeepholeLSTMCell` load: the backbone then
runs those backends' own fused cuDNN LSTM on a GPU for batches it is told
hold no padding (`padded=False`: their cuDNN paths take no mask;
`benchmarks/gpu_backends_speed.py`).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's C++ start-up chatter out of the CLI

import keras  # noqa: E402

from textlstm.models import LSTMBackbone, PeepholeLSTMCell  # noqa: E402

__version__ = "0.1.0"

if keras.backend.backend() == "tensorflow":
    from textlstm.config import (
        AgreementConfig,
        LanguageModelConfig,
        RunConfig,
        SentimentConfig,
        load_config,
    )
    from textlstm.models import (
        AgreementClassifier,
        ClassifierEnsemble,
        LanguageModel,
        SentimentClassifier,
        TextClassifier,
    )
    from textlstm.probes import KerasScorer, SavedModelScorer, TokenScores, load_scorer
    from textlstm.preprocessors import ClassifierPreprocessor, LanguageModelPreprocessor
    from textlstm.recipes import (
        evaluate_language_model,
        export_run,
        load_agreement_classifier,
        load_classifier,
        load_language_model,
        train_agreement,
        train_language_model,
        train_sentiment,
    )
    from textlstm.runs import RunDirectory
    from textlstm.tokenizers import (
        SentencePieceTokenizer,
        WordTokenizer,
        load_tokenizer,
        save_tokenizer,
        train_sentencepiece,
    )
