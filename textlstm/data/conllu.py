"""CoNLL-U reader: Universal Dependencies treebanks into `Sentence`s of `Token`s.

Only the syntactic words are kept: multiword-token ranges (`3-4  don't`) and
empty nodes (`8.1`) are skipped, so `sentence.tokens[i].index == i + 1`.
Comments are read for `# sent_id = ...` and `# text = ...` and otherwise
ignored. The shared corpus is UD English EWT v2.16 in
../shared/data/ud_english_ewt (`en_ewt-ud-{train,dev,test}.conllu`).
"""

import dataclasses
import logging
import os

from textlstm.data.readers import DataError, numbered_lines

logger = logging.getLogger(__name__)

UD_EWT_HELP = "the data is in ../shared/data/ud_english_ewt (UD English EWT v2.16)"


@dataclasses.dataclass
class Token:
    """One syntactic word of a CoNLL-U sentence (the DEPS and MISC columns are dropped).

    Attributes:
        index: int, the CoNLL-U ID, 1-based.
        form: str, the word as written.
        lemma: str.
        upos: str, universal part of speech ("NOUN", "VERB", "AUX", ...).
        xpos: str, language-specific tag (Penn Treebank for English: "VBZ", ...).
        feats: dict of str to str, the morphological features ({"Number": "Sing"}).
        head: int, the index of the governing word, 0 for the root.
        deprel: str, the relation to the head ("nsubj", "aux:pass", ...).
    """

    index: int
    form: str
    lemma: str
    upos: str
    xpos: str
    feats: dict[str, str]
    head: int
    deprel: str


@dataclasses.dataclass
class Sentence:
    """A CoNLL-U sentence.

    Attributes:
        sent_id: str, from `# sent_id = ...`, else "<file name>:<first line number>".
        text: str, from `# text = ...`, else the forms joined by spaces.
        tokens: list of Token, the syntactic words in order.
    """

    sent_id: str
    text: str
    tokens: list[Token]


def _parse_feats(value, path, line_number):
    """Returns the FEATS column `value` ("_" or "A=x|B=y") as a dict; DataError naming file:line otherwise."""
    if value == "_":
        return {}
    feats = {}
    for feature in value.split("|"):
        name, equals, feature_value = feature.partition("=")
        if not (name and equals and feature_value):
            raise DataError(f"{path}:{line_number}: bad FEATS {value!r}, expected '_' or 'Name=Value|...'.")
        feats[name] = feature_value
    return feats


def _parse_token(columns, path, line_number):
    """Returns the Token of a 10-column word line."""
    index, form, lemma, upos, xpos, feats, head, deprel = columns[:8]
    if not head.isdigit():
        raise DataError(f"{path}:{line_number}: HEAD must be a non-negative integer, got {head!r}.")
    return Token(int(index), form, lemma, upos, xpos, _parse_feats(feats, path, line_number), int(head), deprel)


def read_conllu(path, encoding="utf-8"):
    """Reads a CoNLL-U file into sentences of syntactic words.

    Args:
        path: str or path-like, the .conllu file.
        encoding: str, how the bytes are decoded.

    Returns:
        list of Sentence, in file order.

    Raises:
        FileNotFoundError: `path` does not exist.
        DataError (a ValueError): naming file and line: a line that does not
            decode, a word line without 10 tab-separated columns, an ID that
            is not an integer, range or decimal, words out of order, a HEAD
            that is not an integer or a bad FEATS column.

    Example:
    >>> import tempfile
    >>> rows = ["1 It it PRON PRP Number=Sing 2 nsubj _ _", "2 works work VERB VBZ _ 0 root _ _"]
    >>> with tempfile.NamedTemporaryFile("w", suffix=".conllu", delete=False) as f:
    ...     _ = f.write("# sent_id = s1\\n" + "\\n".join("\\t".join(row.split()) for row in rows) + "\\n")
    >>> [sentence] = read_conllu(f.name)
    >>> sentence.sent_id, sentence.text, sentence.tokens[0].feats
    ('s1', 'It works', {'Number': 'Sing'})
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"CoNLL-U file not found: {path}; {UD_EWT_HELP}.")
    sentences = []
    sent_id, text, tokens, first_line = None, None, [], None

    def finish_sentence():
        if tokens:
            sentences.append(Sentence(
                sent_id or f"{os.path.basename(path)}:{first_line}",
                text if text is not None else " ".join(token.form for token in tokens),
                tokens,
            ))

    for line_number, line in numbered_lines(path, encoding):
        if first_line is None:
            first_line = line_number
        if not line.strip():
            finish_sentence()
            sent_id, text, tokens, first_line = None, None, [], None
        elif line.startswith("#"):
            key, equals, value = line[1:].partition("=")
            if equals and key.strip() == "sent_id":
                sent_id = value.strip()
            elif equals and key.strip() == "text":
                text = value.strip()
        else:
            columns = line.split("\t")
            if len(columns) != 10:
                raise DataError(
                    f"{path}:{line_number}: expected 10 tab-separated columns, got {len(columns)}: {line!r}."
                )
            word_id = columns[0]
            if "-" in word_id or "." in word_id:
                first, _, last = word_id.replace(".", "-").partition("-")
                if not (first.isdigit() and last.isdigit()):
                    raise DataError(f"{path}:{line_number}: bad ID {word_id!r}, expected e.g. '3', '3-4' or '8.1'.")
                continue
            if word_id != str(len(tokens) + 1):
                raise DataError(f"{path}:{line_number}: ID {word_id!r} out of order, expected {len(tokens) + 1}.")
            tokens.append(_parse_token(columns, path, line_number))
    finish_sentence()
    logger.info("read %d sentences from %s", len(sentences), path)
    return sentences
