import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from textlstm.data import stream_windows
from textlstm.models import LanguageModel, LSTMBackbone
from textlstm.models.language_model import log_uniform_candidates, merge_repeated_rows, softmax_cross_entropy
from textlstm.preprocessors import LanguageModelPreprocessor
from textlstm.probes import KerasScorer
from textlstm.tokenizers import BOS_ID, EOS_ID, PAD_ID, WordTokenizer


def test_score_matches_log_softmax_of_logits(tiny_lm):
    scores = KerasScorer(tiny_lm, prepare="none").score(["the company said", "n't"])
    first = scores[0]
    assert first.tokens == ["the", "company", "said", "</s>"]
    ids = np.array([[EOS_ID] + first.token_ids])  # a stream-mode model reads </s> first
    log_probs = tf.nn.log_softmax(tiny_lm(ids[:, :-1])).numpy()[0]
    expected = [log_probs[t, i] for t, i in enumerate(first.token_ids)]
    np.testing.assert_allclose(first.log_probs, expected, rtol=1e-5)
    np.testing.assert_allclose(first.surprisals, [-lp / math.log(2) for lp in expected], rtol=1e-5)
    assert len(scores[1].log_probs) == 2  # padding of the shorter text is not scored
    with pytest.raises(ValueError, match="list of strings"):
        KerasScorer(tiny_lm, prepare="none").score("one string")


def test_save_load_gives_identical_outputs(tmp_path, tiny_lm):
    path = tmp_path / "lm.keras"
    tiny_lm.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    ids = np.array([[2, 10, 11, 12, 0]], "int32")
    np.testing.assert_array_equal(restored(ids), tiny_lm(ids))
    texts = ["the company said it would", "mr. <unk> is chairman"]
    assert [s.log_probs for s in KerasScorer(restored, prepare="none").score(texts)] == [s.log_probs for s in KerasScorer(tiny_lm, prepare="none").score(texts)]
    assert restored.get_config()["backbone"] == tiny_lm.get_config()["backbone"]


def test_tied_weights_share_the_embedding(word_tokenizer):
    def build(tie):
        backbone = LSTMBackbone(word_tokenizer.vocabulary_size(), embedding_dim=16, hidden_dim=16, num_layers=1)
        return LanguageModel(backbone, tie_weights=tie)

    tied, untied = build(True), build(False)
    assert untied.count_params() - tied.count_params() == word_tokenizer.vocabulary_size() * 16
    assert tied.output_embedding is tied.backbone.token_embedding.embeddings


@pytest.mark.parametrize("kwargs, message", [
    (dict(bidirectional=True), "bidirectional"),
    (dict(embedding_dim=8), r"embedding_dim=8, hidden_dim=16"),
])
def test_invalid_backbones_are_rejected(kwargs, message):
    args = dict(vocabulary_size=20, embedding_dim=16, hidden_dim=16, num_layers=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        LanguageModel(LSTMBackbone(**args))


def test_carried_state_equals_one_long_sequence():
    """Evaluating BPTT windows with the carried state = running each stream in one piece."""
    keras.utils.set_random_seed(1)
    lm = LanguageModel(LSTMBackbone(40, embedding_dim=8, hidden_dim=8, num_layers=2))
    stream = np.random.RandomState(0).randint(4, 40, size=2 * 31)
    windows = stream_windows(stream, batch_size=2, sequence_length=6, keep_last=True)
    lm.compile(carry_state=True)
    carried = lm.evaluate(windows, return_dict=True, verbose=0)["loss"]
    rows = stream.reshape(2, 31)
    whole = keras.losses.sparse_categorical_crossentropy(rows[:, 1:], lm(rows[:, :-1]), from_logits=True)
    np.testing.assert_allclose(carried, float(np.mean(whole)), rtol=1e-5)
    lm.compile(carry_state=False)
    fresh = lm.evaluate(windows, return_dict=True, verbose=0)["loss"]
    assert abs(fresh - carried) > 1e-4  # without carrying, each window starts from zeros


def test_sampled_negatives_are_distinct_log_uniform_and_a_function_of_the_seed():
    labels = tf.constant([[0], [7], [95]], "int64")
    draw = tf.function(lambda seed: log_uniform_candidates(labels, 90, 100, seed))  # in a graph, as in training
    sampled, true_expected, sampled_expected = (t.numpy() for t in draw(tf.constant([3, 4])))
    assert sorted(set(sampled.tolist())) == sorted(sampled.tolist()) and len(sampled) == 90  # 90 of 100: many rounds
    assert (0 <= sampled).all() and (sampled < 100).all()
    assert (draw(tf.constant([3, 4]))[0].numpy() == sampled).all()  # a pure function of the seed
    assert not (draw(tf.constant([3, 5]))[0].numpy() == sampled).all()
    assert 0 < true_expected[2, 0] < true_expected[1, 0] <= true_expected[0, 0] <= 1  # Zipfian: rare ids come later
    # Expected counts follow TF's rule (`ExpectedCountHelper`) for the draws it took, as TF's own sampler's do.
    probability = (np.log([2, 9, 97]) - np.log([1, 8, 96])) / np.log(101)  # P(0), P(7), P(95)

    def counts(tries, num_sampled):
        return probability * num_sampled if tries == num_sampled else -np.expm1(tries * np.log1p(-probability))

    # Each class is drawn as often as its expected count says: the draws are log-uniform, as TF's.
    drawn = np.zeros(100)
    for seed in range(400):
        sampled = log_uniform_candidates(labels, 10, 100, tf.constant([seed, 2]))[0]
        drawn[sampled.numpy()] += 1
    inclusion = drawn / 400
    all_counts = log_uniform_candidates(tf.constant(np.arange(100)[:, None], "int64"), 10, 100,
                                        tf.constant([0, 2]))[1].numpy()[:, 0]  # one draw's expected counts
    for k in (0, 1, 5, 20, 60):
        assert abs(inclusion[k] - all_counts[k]) < 0.12 * all_counts[k] + 0.03, (k, inclusion[k], all_counts[k])
    for seed in range(5):
        for expected in (log_uniform_candidates(labels, 5, 100, tf.constant([seed, 1]))[1],
                         tf.random.log_uniform_candidate_sampler(labels, 1, 5, True, 100, seed=seed)[1]):
            expected = expected.numpy()[:, 0]
            tries = next(t for t in range(5, 10000) if abs(counts(t, 5)[0] - expected[0]) < 1e-5)
            np.testing.assert_allclose(expected, counts(tries, 5), rtol=1e-4)


def test_sampled_softmax_training_lowers_full_loss():
    keras.utils.set_random_seed(2)
    lm = LanguageModel(LSTMBackbone(50, embedding_dim=16, hidden_dim=16, num_layers=1))
    pattern = np.tile(np.arange(4, 14), 40)  # a deterministic cycle: perfectly predictable
    windows = stream_windows(pattern, batch_size=4, sequence_length=10)
    # Adam's second moment sees each embedding row's summed gradient (merge_repeated_rows), as with a dense one.
    lm.compile(keras.optimizers.Adam(0.05), carry_state=True, sampled_softmax=10)
    before = lm.evaluate(windows, return_dict=True, verbose=0)["perplexity"]
    lm.fit(windows, epochs=5, verbose=0)
    after = lm.evaluate(windows, return_dict=True, verbose=0)["perplexity"]
    assert before > 40 and after < 3
    with pytest.raises(ValueError, match=r"`sampled_softmax` must be in \[0, vocabulary_size=50\), received 50"):
        lm.compile(sampled_softmax=50)


def test_generate_samplers(tiny_lm):
    greedy = tiny_lm.generate(["the company", "mr."], max_length=5, sampler="greedy")
    assert greedy == tiny_lm.generate(["the company", "mr."], max_length=5, sampler="greedy")
    assert greedy[0].startswith("the company") and greedy[1].startswith("mr.")
    assert all(len(text.split()) <= len(prompt.split()) + 5 for text, prompt in zip(greedy, ["the company", "mr."]))
    sampled = tiny_lm.generate(["the"] * 4, max_length=8, sampler="top_k", k=50, seed=3, temperature=2.0)
    assert sampled == tiny_lm.generate(["the"] * 4, max_length=8, sampler="top_k", k=50, seed=3, temperature=2.0)
    assert len(set(sampled)) > 1  # high temperature, distinct rows
    assert len(tiny_lm.generate([""], max_length=4, sampler="top_p", p=0.5, seed=0)) == 1
    with pytest.raises(ValueError, match="`sampler` must be one of"):
        tiny_lm.generate(["the"], sampler="nucleus")
    with pytest.raises(ValueError, match="`num_beams` must be a positive int, received 0"):
        tiny_lm.generate(["the"], sampler="beam", num_beams=0)
    with pytest.raises(ValueError, match="`temperature` must be positive, received 0"):
        tiny_lm.generate(["the"], temperature=0)


def test_generation_is_compiled_once_and_matches_the_eager_loop(tiny_lm):
    """`generate` runs the sampler as one traced graph, kept per sampler setting: the text equals the
    sampler run op by op (tf.function run eagerly), and a seed repeats its text across calls of other seeds
    and shapes without a retrace."""
    from textlstm.models.language_model import _GENERATION_FUNCTIONS

    prompts = ["the company said", "", "mr."]
    calls = dict(max_length=6, sampler="top_p", p=0.95, seed=5, temperature=3.0)
    compiled = tiny_lm.generate(prompts, **calls)
    _, first = _GENERATION_FUNCTIONS[tiny_lm][("top_p", 0.95, 3.0)]
    tf.config.run_functions_eagerly(True)
    try:
        eager = tiny_lm.generate(prompts, **calls)
    finally:
        tf.config.run_functions_eagerly(False)
    assert compiled == eager
    tiny_lm.generate(["the"] * 5, max_length=9, sampler="top_p", p=0.95, seed=6, temperature=3.0)  # other shapes
    assert tiny_lm.generate(prompts, **calls) == compiled
    assert tiny_lm.generate(prompts, **{**calls, "seed": 6}) != compiled
    _, run = _GENERATION_FUNCTIONS[tiny_lm][("top_p", 0.95, 3.0)]
    assert run is first and run.experimental_get_tracing_count() == 1  # kept, and traced once for all shapes
    unseeded = [tiny_lm.generate(["the"], max_length=8, sampler="top_p", temperature=3.0)[0] for _ in range(4)]
    assert len(set(unseeded)) > 1  # no seed: each call draws anew


def test_kept_generation_functions_neither_keep_the_model_alive_nor_grow_without_bound(word_tokenizer):
    import gc
    import weakref

    from textlstm.models.language_model import _GENERATION_FUNCTIONS, GENERATION_FUNCTIONS_KEPT

    lm = LanguageModel(LSTMBackbone(word_tokenizer.vocabulary_size(), embedding_dim=8, hidden_dim=8, num_layers=1),
                       preprocessor=LanguageModelPreprocessor.for_mode(word_tokenizer, "stream"))
    for k in range(1, GENERATION_FUNCTIONS_KEPT + 3):
        lm.generate(["the"], max_length=1, sampler="top_k", k=k, seed=0)
    assert len(_GENERATION_FUNCTIONS[lm]) == GENERATION_FUNCTIONS_KEPT
    assert ("top_k", 1, 1.0) not in _GENERATION_FUNCTIONS[lm]  # the oldest went first
    model = weakref.ref(lm)
    del lm
    gc.collect()
    assert model() is None


def test_beam_search_equals_a_reference_beam_search():
    """Three steps of beam search after prompts of different lengths equal a NumPy reference (keep the
    `num_beams` best sequences each step, return the best at the end), on a model whose next-token
    distributions are far from uniform. (Here, before each prompt had its own sampler call cut to its length
    plus `max_length`, the shorter prompt's beams ran on into the padding and returned another text.)"""
    keras.utils.set_random_seed(2)
    word_tokenizer = WordTokenizer.from_texts(["the company said profits rose in the quarter"])
    vocabulary_size = word_tokenizer.vocabulary_size()
    lm = LanguageModel(LSTMBackbone(vocabulary_size, embedding_dim=8, hidden_dim=8, num_layers=1),
                       preprocessor=LanguageModelPreprocessor.for_mode(word_tokenizer, "stream"))
    peaked = np.random.RandomState(2).normal(0, 3, size=vocabulary_size)
    # No </s> (never stop early); no <pad> or <s> either, which generation never samples: the reference's
    # log-probs then need no renormalisation.
    never = np.isin(np.arange(vocabulary_size), [PAD_ID, BOS_ID, EOS_ID])
    lm.output_bias.assign(np.where(never, -50.0, peaked))
    embedding = lm.backbone.token_embedding.embeddings
    embedding.assign(embedding * 20)  # the context matters: the best path is not a chain of argmaxes
    tokens = np.array([t for t in range(1, vocabulary_size) if t != BOS_ID])
    prompts = ["the company", "profits rose in the"]

    def reference(prompt, num_beams, steps=3):
        beams = lm.preprocessor.prompt(tf.constant([prompt])).to_tensor().numpy()  # (1, prompt length)
        scores = np.zeros(1)
        for _ in range(steps):
            candidates = np.concatenate([np.repeat(beams, len(tokens), axis=0), np.tile(tokens, len(beams))[:, None]],
                                        axis=1)
            totals = np.repeat(scores, len(tokens)) + lm.token_log_probs(candidates).numpy()[:, -1]
            order = np.argsort(-totals)[:num_beams]
            beams, scores = candidates[order], totals[order]
        return word_tokenizer.detokenize(tf.constant(beams[:1, 1:])).numpy()[0].decode()

    for num_beams in (2, vocabulary_size):
        assert (lm.generate(prompts, max_length=3, sampler="beam", num_beams=num_beams)
                == [reference(prompt, num_beams) for prompt in prompts])
    assert (lm.generate(prompts, max_length=6, sampler="beam", num_beams=1)
            == lm.generate(prompts, max_length=6, sampler="greedy"))


def test_generation_stops_at_eos(word_tokenizer):
    keras.utils.set_random_seed(4)
    lm = LanguageModel(LSTMBackbone(word_tokenizer.vocabulary_size(), embedding_dim=8, hidden_dim=8, num_layers=1),
                       preprocessor=LanguageModelPreprocessor.for_mode(word_tokenizer, "stream"))
    lm.output_bias.assign(np.where(np.arange(lm.backbone.vocabulary_size) == EOS_ID, 50.0, 0.0))
    assert lm.generate(["the company"], max_length=10, sampler="greedy") == ["the company"]


def test_sentencepiece_lm_save_load_round_trip(tmp_path, ptb_lines):
    from textlstm.tokenizers import SentencePieceTokenizer, train_sentencepiece

    tokenizer = train_sentencepiece(ptb_lines, vocabulary_size=300, model_type="bpe")
    lm = LanguageModel(LSTMBackbone(300, embedding_dim=8, hidden_dim=8, num_layers=1), preprocessor=LanguageModelPreprocessor.for_mode(tokenizer, "stream"))
    lm.save(tmp_path / "spm_lm.keras")
    restored = keras.saving.load_model(tmp_path / "spm_lm.keras", safe_mode=True)
    assert isinstance(restored.tokenizer, SentencePieceTokenizer)
    texts = ["the company said", "profits rose sharply"]
    assert [s.log_probs for s in KerasScorer(restored, prepare="none").score(texts)] == [s.log_probs for s in KerasScorer(lm, prepare="none").score(texts)]
    assert restored.generate(["the"], max_length=4, sampler="greedy") == lm.generate(["the"], max_length=4,
                                                                                       sampler="greedy")


def test_xla_trains_with_a_tokenizer_attached(word_tokenizer):
    keras.utils.set_random_seed(0)
    lm = LanguageModel(LSTMBackbone(word_tokenizer.vocabulary_size(), embedding_dim=8, hidden_dim=8, num_layers=1),
                       preprocessor=LanguageModelPreprocessor.for_mode(word_tokenizer, "stream"))
    lm.compile("sgd", carry_state=True, jit_compile=True)
    assert lm.jit_compile is True  # the tokenizer's string ops never run in train_step
    x = np.random.RandomState(0).randint(4, word_tokenizer.vocabulary_size(), size=(3, 4, 6))
    windows = tf.data.Dataset.from_tensor_slices((x, np.roll(x, -1, axis=-1), np.ones(x.shape, "float32")))
    history = lm.fit(windows, epochs=2, verbose=0)  # compiled by XLA, carried state included
    assert history.history["loss"][1] < history.history["loss"][0]
    with pytest.raises(ValueError, match=r"`jit_compile=True` cannot compile `sampled_softmax=8`"):
        lm.compile("sgd", jit_compile=True, sampled_softmax=8)


def test_mixed_precision_backbone_trains_with_float32_softmax_and_loss_scaling(tmp_path, word_tokenizer):
    keras.utils.set_random_seed(0)
    backbone = LSTMBackbone(50, embedding_dim=16, hidden_dim=16, num_layers=2, dtype="mixed_float16")
    lm = LanguageModel(backbone)
    windows = stream_windows(np.tile(np.arange(4, 14), 40), batch_size=4, sequence_length=10)
    lm.compile(keras.optimizers.Adam(0.02), carry_state=True)
    assert isinstance(lm.optimizer, keras.optimizers.LossScaleOptimizer)
    hidden = backbone(np.ones((2, 3), "int32"))
    assert hidden.dtype == "float16" and lm(np.ones((2, 3), "int32")).dtype == "float32"
    assert all(variable.dtype == "float32" for variable in lm.trainable_variables)
    before = lm.evaluate(windows, return_dict=True, verbose=0)["perplexity"]
    lm.fit(windows, epochs=4, verbose=0)
    after = lm.evaluate(windows, return_dict=True, verbose=0)["perplexity"]
    assert np.isfinite(after) and after < before / 3
    lm.save(tmp_path / "mixed.keras")
    restored = keras.saving.load_model(tmp_path / "mixed.keras", safe_mode=True)
    assert restored.backbone.dtype_policy.name == "mixed_float16"
    np.testing.assert_allclose(restored(np.ones((2, 3), "int32")), lm(np.ones((2, 3), "int32")), atol=1e-3)
    # Generation carries float16 states through its compiled loop (float32 zeros there would not trace).
    generating = LanguageModel(LSTMBackbone(word_tokenizer.vocabulary_size(), embedding_dim=8, hidden_dim=8,
                                            num_layers=2, dtype="mixed_float16"),
                               preprocessor=LanguageModelPreprocessor.for_mode(word_tokenizer, "stream"))
    for sampler in ("top_k", "beam"):
        texts = generating.generate(["the company", "mr."], max_length=3, sampler=sampler, seed=0)
        assert texts[0].startswith("the company") and texts[1].startswith("mr.")


def test_repeated_rows_of_a_sparse_gradient_are_merged_before_clipping():
    """A word twice in a batch gives its embedding row two slices; clipnorm must see the summed row's norm."""
    sparse = tf.IndexedSlices(tf.constant([[3.0, 0.0], [1.0, 2.0], [3.0, 0.0]]), tf.constant([4, 1, 4]),
                              tf.constant([6, 2]))
    merged = merge_repeated_rows(sparse)
    dense = tf.convert_to_tensor(sparse)
    np.testing.assert_allclose(tf.convert_to_tensor(merged).numpy(), dense.numpy())
    assert sorted(merged.indices.numpy().tolist()) == [1, 4]
    assert float(tf.norm(merged.values)) == pytest.approx(float(tf.norm(dense)))  # sqrt(36 + 5)
    assert float(tf.norm(sparse.values)) != pytest.approx(float(tf.norm(dense)))  # sqrt(18 + 5): what Keras would clip by
    plain = tf.ones((2, 2))
    assert merge_repeated_rows(plain) is plain


@pytest.mark.parametrize("mode", ["eager", "tf.function", "XLA"])
def test_softmax_cross_entropy_has_the_fused_ops_loss_and_gradient(mode):
    """Training's full-softmax loss: the values and gradient of TF's fused op, for weighted tokens, eagerly and
    traced as training runs it (with and without XLA)."""
    logits = tf.constant(np.random.default_rng(0).normal(size=(3, 5, 11)) * 4, tf.float32)  # (batch, time, vocab)
    targets = tf.constant(np.random.default_rng(1).integers(0, 11, size=(3, 5)), tf.int32)
    weights = tf.constant(np.random.default_rng(2).uniform(size=(3, 5)), tf.float32)

    def values_and_gradient(loss):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            values = loss(logits, targets)  # (batch, time)
            total = tf.reduce_sum(values * weights)
        return values, tape.gradient(total, logits)

    fused = lambda x, y: tf.nn.sparse_softmax_cross_entropy_with_logits(y, x)  # noqa: E731
    ours = {"eager": values_and_gradient, "tf.function": tf.function(values_and_gradient),
            "XLA": tf.function(values_and_gradient, jit_compile=True)}[mode](softmax_cross_entropy)
    expected = values_and_gradient(fused)
    np.testing.assert_allclose(ours[0], expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours[1], expected[1], rtol=1e-5, atol=1e-6)
    assert np.abs(ours[1]).max() > 0.1  # a gradient that is not all zeros
