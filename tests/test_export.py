import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from textlstm.export import export_scorer, next_version_dir
from textlstm.preprocessors import LanguageModelPreprocessor
from textlstm.models import LanguageModel, LSTMBackbone
from textlstm.probes import KerasScorer
from textlstm.tokenizers import train_sentencepiece

RELOAD = """
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the SentencePiece op
loaded = tf.saved_model.load(sys.argv[1])
outputs = loaded.signatures["serving_default"](texts=tf.constant(json.loads(sys.argv[2])))
print(json.dumps({k: v.numpy().tolist() for k, v in outputs.items()}))
assert "textlstm" not in sys.modules and "keras_hub" not in sys.modules
"""


def reload_in_subprocess(path, texts):
    result = subprocess.run([sys.executable, "-c", RELOAD, str(path), json.dumps(texts)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("tokenizer_kind", ["word", "sentencepiece"])
def test_exported_scorer_reloads_with_only_tensorflow(tmp_path, ptb_lines, word_tokenizer, tokenizer_kind):
    tokenizer = word_tokenizer if tokenizer_kind == "word" else train_sentencepiece(ptb_lines, vocabulary_size=300)
    keras.utils.set_random_seed(0)
    lm = LanguageModel(LSTMBackbone(tokenizer.vocabulary_size(), embedding_dim=16, hidden_dim=16, num_layers=2),
                       preprocessor=LanguageModelPreprocessor.for_mode(tokenizer, "stream"))
    export_dir = next_version_dir(str(tmp_path), "lm")
    assert export_dir.endswith("lm/1")
    export_scorer(lm, export_dir)
    assert next_version_dir(str(tmp_path), "lm").endswith("lm/2")

    texts = ["the company said it would", "mr. <unk> is chairman of the board"]
    served = reload_in_subprocess(export_dir, texts)
    for row, scores in enumerate(KerasScorer(lm, prepare="none").score(texts)):
        n = served["lengths"][row]
        assert n == len(scores.log_probs)
        np.testing.assert_allclose(served["log_probs"][row][:n], scores.log_probs, rtol=1e-5, atol=1e-6)
        assert served["token_ids"][row][1 : n + 1] == scores.token_ids

    with pytest.raises(FileExistsError, match="never overwritten"):
        export_scorer(lm, export_dir)
    graph = (tmp_path / "lm" / "1" / "saved_model.pb").read_bytes()
    assert (b"Sentencepiece" in graph) == (tokenizer_kind == "sentencepiece")
    assert b"RegexSplit" not in graph  # a word model's export holds core TF ops only


def test_export_after_training_with_carried_state(tmp_path, ptb_lines, word_tokenizer):
    """fit/evaluate create the carried-state variables; the export must neither save nor trip on them."""
    import tensorflow as tf

    from textlstm.data import stream_dataset

    keras.utils.set_random_seed(0)
    lm = LanguageModel(LSTMBackbone(word_tokenizer.vocabulary_size(), embedding_dim=16, hidden_dim=16, num_layers=1),
                       preprocessor=LanguageModelPreprocessor.for_mode(word_tokenizer, "stream"))
    lm.compile("sgd", carry_state=True)
    data = stream_dataset(lm.preprocessor, ptb_lines[:200], batch_size=4, sequence_length=10)
    lm.fit(data, epochs=1, verbose=0)
    lm.evaluate(data, verbose=0)
    export_dir = str(tmp_path / "lm" / "1")
    export_scorer(lm, export_dir)

    texts = ["the company said it would", "shares rose"]
    served = tf.saved_model.load(export_dir).signatures["serving_default"](texts=tf.constant(texts))
    for row, scores in enumerate(KerasScorer(lm, prepare="none").score(texts)):  # the caller's model still scores after the export
        n = int(served["lengths"][row])
        np.testing.assert_allclose(served["log_probs"][row][:n].numpy(), scores.log_probs, rtol=1e-5, atol=1e-6)
