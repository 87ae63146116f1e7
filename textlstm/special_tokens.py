"""The id convention every tokenizer and model of textlstm shares.

    id 0 <pad>   right padding; the backbone masks it
    id 1 <unk>   anything out of vocabulary
    id 2 <s>     beginning of a sentence
    id 3 </s>    end of a sentence (the LM predicts it)

A module of its own, free of TensorFlow, so that `LSTMBackbone` also loads
under Keras's JAX and torch backends (`benchmarks/gpu_backends_speed.py`).
"""

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
