"""Property-based tests (hypothesis): tokenizer round trips, batch layouts, the SyntaxGym formula parser."""

import re
import unicodedata

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textlstm.data.streams import batchify, stream_windows
from textlstm.probes.syntaxgym import parse_formula
from textlstm.tokenizers import (BOS_ID, PAD_ID, SPECIAL_TOKENS, UNK, UNK_ID, WordTokenizer, train_sentencepiece,
                                 words_of)

# Tokenizers are built once per module; hypothesis then draws texts for them.
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def tokenizers(ptb_lines):
    return {"word": WordTokenizer.from_texts(ptb_lines[:500]),
            "unigram": train_sentencepiece(ptb_lines[:500], vocabulary_size=300)}


TEXTS = st.text(st.characters(codec="utf-8"), max_size=60)
SPACES = " \t\n\v\f\r"  # the whitespace of tf.strings.split


@SLOW
@given(text=TEXTS)
def test_word_tokenizer_round_trip_of_any_text(tokenizers, text):
    tokenizer = tokenizers["word"]
    vocabulary = set(tokenizer.get_vocabulary()) - {"<pad>", "<s>", "</s>"}
    ids = np.asarray(tokenizer.tokenize([text]).to_list()[0])
    words = [word for word in re.split(f"[{SPACES}]+", text) if word]
    assert len(ids) == len(words)  # one id per whitespace word, whatever the characters
    assert PAD_ID not in ids and BOS_ID not in ids  # text never reaches the control ids
    expected = " ".join(word if word in vocabulary else UNK for word in words)
    assert tokenizer.detokenize([ids.tolist()]).numpy()[0].decode("utf-8") == expected


@SLOW  # A word that is a lone NUL is the one word Keras's StringLookup cannot find (it maps to <unk>).
@given(texts=st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=60), min_size=1,
                      max_size=5), lowercase=st.booleans())
def test_a_word_vocabulary_holds_every_word_the_tokenizer_sees_in_its_texts(texts, lowercase):
    tokenizer = WordTokenizer.from_texts(texts, lowercase=lowercase)
    for ids in tokenizer.tokenize(texts).to_list():  # no word of the training texts is unknown
        literal_specials = any(word in SPECIAL_TOKENS for text in texts for word in words_of(text, lowercase))
        assert UNK_ID not in ids or literal_specials


@SLOW
@given(text=TEXTS)
def test_sentencepiece_tokenizes_any_text_into_its_vocabulary(tokenizers, text):
    tokenizer = tokenizers["unigram"]
    ids, starts, ends = (part.to_list()[0] for part in tokenizer.tokenize_with_offsets([text]))
    assert all(0 <= i < tokenizer.vocabulary_size() for i in ids)
    assert PAD_ID not in ids and BOS_ID not in ids
    size = len(text.encode("utf-8"))
    assert all(0 <= start <= end <= size for start, end in zip(starts, ends))  # byte spans inside the text


@SLOW
@given(words=st.lists(st.sampled_from(["the", "company", "said", "it", "would", "n't", "$", "N", "mr.", "a"]),
                      max_size=12),
       spaces=st.sampled_from([" ", "  ", " \t "]))
def test_sentencepiece_round_trip_of_text_in_its_alphabet(tokenizers, words, spaces):
    tokenizer = tokenizers["unigram"]
    text = spaces.join(words)
    ids = tokenizer.tokenize([text]).to_list()[0]
    detokenized = tokenizer.detokenize([ids]).numpy()[0].decode("utf-8")
    assert detokenized == unicodedata.normalize("NFKC", " ".join(words))


@settings(max_examples=200, deadline=None)
@given(length=st.integers(4, 300), batch_size=st.integers(1, 6), sequence_length=st.integers(1, 12))
def test_every_token_of_a_stream_is_one_target_once_in_order(length, batch_size, sequence_length):
    tokens = np.arange(length) + 4  # distinct ids, so each target can be traced to its position
    if length // batch_size < 2:
        with pytest.raises(ValueError, match="too few for batch_size"):
            stream_windows(tokens, batch_size, sequence_length, keep_last=True)
        return
    rows = batchify(tokens, batch_size)  # (batch, columns); a last, shorter window is padded (keep_last)
    targets = [[] for _ in range(batch_size)]
    inputs = [[] for _ in range(batch_size)]
    for x, y, weight in stream_windows(tokens, batch_size, sequence_length, keep_last=True):
        x, y, weight = x.numpy(), y.numpy(), weight.numpy()
        for row in range(batch_size):
            kept = weight[row] == 1
            targets[row] += y[row][kept].tolist()
            inputs[row] += x[row][kept].tolist()
            assert (y[row][~kept] == PAD_ID).all()
    for row in range(batch_size):
        assert targets[row] == rows[row, 1:].tolist()  # every token after a row's first, once, in order
        assert inputs[row] == rows[row, :-1].tolist()  # each predicted from the token before it


# A formula, and the value a reference evaluation gives it, built side by side.
REGIONS = {("a", 1): 1.5, ("b", 1): 2.25, ("a", 2): -0.5, ("b-c.d", 3): 4.0}


@st.composite
def number_expressions(draw, depth=0):
    """(SyntaxGym text, its value)."""
    kind = draw(st.sampled_from(["reference", "number"] + (["sum", "bracket"] if depth < 3 else [])))
    if kind == "reference":
        condition, region = draw(st.sampled_from(sorted(REGIONS)))
        return f"({region};%{condition}%)", REGIONS[(condition, region)]
    if kind == "number":
        value = draw(st.integers(0, 999)) / 4
        return f"{value}", value
    if kind == "bracket":
        text, value = draw(number_expressions(depth=depth + 1))
        return f"[{text}]", value
    left, left_value = draw(number_expressions(depth=depth + 1))
    right, right_value = draw(number_expressions(depth=depth + 1))
    if right.lstrip().startswith("-"):
        right, right_value = f"[{right}]", right_value
    operator_ = draw(st.sampled_from("+-"))
    return f"[{left} {operator_} {right}]", left_value + right_value if operator_ == "+" else left_value - right_value


@st.composite
def truth_expressions(draw, depth=0):
    kind = draw(st.sampled_from(["comparison"] + (["and", "or"] if depth < 2 else [])))
    if kind == "comparison":
        left, left_value = draw(number_expressions())
        right, right_value = draw(number_expressions())
        comparison = draw(st.sampled_from("<>"))
        return f"{left} {comparison} {right}", left_value < right_value if comparison == "<" else left_value > right_value
    left, left_value = draw(truth_expressions(depth=depth + 1))
    right, right_value = draw(truth_expressions(depth=depth + 1))
    if kind == "and":
        return f"({left}) & ({right})", left_value and right_value
    return f"({left}) | ({right})", left_value or right_value


@settings(max_examples=300, deadline=None)
@given(formula=truth_expressions(), spacing=st.sampled_from(["", " ", "  "]))
def test_formula_parser_evaluates_as_a_reference(formula, spacing):
    text, expected = formula
    text = text.replace(" ", spacing)
    assert parse_formula(text).evaluate(REGIONS) == expected, text


@settings(max_examples=200, deadline=None)
@given(formula=truth_expressions(), dangling=st.sampled_from(["&", "|", "<", "+", "[", "(3;%a%", ")"]))
def test_formula_parser_refuses_a_broken_formula_naming_the_position(formula, dangling):
    text = f"{formula[0]} {dangling}"
    with pytest.raises(ValueError, match=r"position \d+"):
        parse_formula(text)
