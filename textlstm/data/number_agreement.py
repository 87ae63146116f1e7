"""Subject-verb number agreement items (Linzen, Dupoux & Goldberg, 2016) from UD treebanks.

Each item is a sentence prefix up to a present-tense verb, the verb, its form
of the other number and the verb's number: a language model passes the item
when it prefers the right form after the prefix ("The keys to the cabinet"
-> "are" over "is"). The extraction rules, part of the research protocol:

1. Candidate verbs: words with UPOS VERB or AUX, `VerbForm=Fin`,
   `Tense=Pres` and XPOS `VBZ` (label "singular") or `VBP` (label
   "plural"). Modals (XPOS `MD`) never qualify; each is counted as skipped.
2. Subject: the verb's `nsubj` or `nsubj:pass` dependent nearest before it,
   else the first after it; for an AUX attached as `aux`, `aux:pass` or
   `cop`, that of its head instead ("keys" in "the keys are red" hangs on
   "red"), a `cop` also taking the head's `nsubj:outer` ("problem" in "the
   problem is that it is broken" hangs on "broken" beside "it", the subject
   of the second "is"). Verbs without one are skipped: the second verb of
   "he sings and dances", clausal subjects, expletive "it" ("it is clear
   that ..."). Also skipped: a subject with `Person=1` or `Person=2`, one
   without `Number=Sing|Plur` (relative pronouns "who", "that"; plurale
   tantum `Number=Ptan` nouns such as "politics", whose agreement varies),
   one after the verb (questions, "there is"), and one whose number is not
   the verb's (coordinated subjects: "John and Mary are" has the singular
   "John" as its subject).
3. Other-number form: VBZ <-> VBP with the case of the verb kept: is/are,
   has/have, does/do, 's/'re and 's/'ve ('s by its lemma, be or have; the
   apostrophe ', ’ or ` kept); otherwise the 3rd singular of a base adds
   "es" after s, x, z, ch, sh or consonant + o, turns consonant + y into
   "ies" and adds "s" elsewhere. A VBZ verb's base is its lemma when the
   rule maps the lemma back onto the verb, else the verb with its ending
   undone; a VBP verb must equal its lemma. Forms that fail are skipped:
   am, 'm, informal "r" and "s", forms with other characters than letters
   ("let's") and misspellings whose lemma differs ("reccomend").
4. Prefix: the forms of the words before the verb joined by single spaces
   (multiword tokens appear split: "does n't"). Positions are 0-based word
   indices (CoNLL-U ID - 1), so the prefix holds `verb_index` words.
   Attractors: the NOUN words strictly between subject and verb whose
   `Number` is Sing or Plur and not the subject's. Distance: `verb_index -
   subject_index`.
"""

import collections
import dataclasses
import json
import logging
import os
import re

from textlstm.data.conllu import read_conllu
from textlstm.data.readers import DataError, check_exists

logger = logging.getLogger(__name__)

LABELS = {"VBZ": "singular", "VBP": "plural"}
NUMBERS = {"Sing": "singular", "Plur": "plural"}
APOSTROPHES = "'’`"
# Lower-cased irregular forms: VBZ -> VBP and VBP -> VBZ ('s is resolved by its lemma).
IRREGULAR_PLURALS = {"is": "are", "has": "have", "does": "do"}
IRREGULAR_SINGULARS = {plural: singular for singular, plural in IRREGULAR_PLURALS.items()}
CONTRACTION_PLURALS = {"be": "re", "have": "ve"}
CONTRACTION_SINGULARS = {"re": "s", "ve": "s"}


@dataclasses.dataclass
class NumberItem:
    """One number-prediction item.

    Attributes:
        sentence_id: str, the CoNLL-U sent_id.
        prefix: str, the words before the verb joined by spaces ("" when the verb comes first).
        verb: str, the verb as written (the correct form).
        other_form: str, the verb in the other number (the wrong form).
        label: str, "singular" (VBZ) or "plural" (VBP).
        attractors: int, nouns between subject and verb of the other number.
        intervening_noun_indices: list of int, the 0-based word positions of
            every noun with a Number feature between subject and verb, of
            either number.
        attractor_indices: list of int, those of them of the other number.
        subject: str, the subject's form.
        subject_index: int, the subject's 0-based word position.
        verb_index: int, the verb's 0-based word position (= words in `prefix`).
        distance: int, `verb_index - subject_index`, at least 1.
    """

    sentence_id: str
    prefix: str
    verb: str
    other_form: str
    label: str
    attractors: int
    intervening_noun_indices: list
    attractor_indices: list
    subject: str
    subject_index: int
    verb_index: int
    distance: int

    @property
    def intervening(self):
        """bool, whether any word stands between subject and verb."""
        return self.distance > 1

    def to_json(self):
        """Returns the item as one line of JSON."""
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text):
        """Parses `to_json`'s output.

        Raises:
            ValueError: `text` is not a JSON object with exactly the item's
                fields, or its label is not "singular" or "plural".
        """
        record = json.loads(text)
        fields = [field.name for field in dataclasses.fields(cls)]
        if not isinstance(record, dict) or sorted(record) != sorted(fields):
            raise ValueError(f"`text` must be a JSON object with the fields {fields}, got {text!r}.")
        if record["label"] not in NUMBERS.values():
            raise ValueError(f"`label` must be 'singular' or 'plural', got {record['label']!r}.")
        return cls(**record)


def _with_case_of(form, word):
    """Returns `word` in the case of `form`: "IS" -> "ARE", "Is" -> "Are", "is" -> "are"."""
    if form.isupper():
        return word.upper()
    return word[:1].upper() + word[1:] if form[:1].isupper() else word


def _third_singular(base):
    """Returns the regular 3rd person singular of a lower-case verb base ("watch" -> "watches")."""
    if re.search(r"(s|x|z|ch|sh|[^aeiou]o)$", base):
        return base + "es"
    if re.search(r"[^aeiou]y$", base):
        return base[:-1] + "ies"
    return base + "s"


def _regular_base(singular):
    """Returns a lower-case 3rd singular with its regular ending undone ("tries" -> "try")."""
    if singular.endswith("ies"):
        return singular[:-3] + "y"
    if re.search(r"(sses|xes|zzes|ches|shes|[^aeiou]oes)$", singular):
        return singular[:-2]
    return singular[:-1]


def other_number_form(form, xpos, lemma=None):
    """Returns the verb `form` inflected for the other number, or None when it cannot be.

    Args:
        form: str, a present-tense verb as written.
        xpos: str, "VBZ" (3rd singular, gives the VBP form) or "VBP" (gives the VBZ form).
        lemma: str or None, the verb's lemma; picks "'re" or "'ve" for "'s",
            the base of a VBZ verb, and rejects a VBP verb that differs from it.

    Raises:
        ValueError: `xpos` is neither "VBZ" nor "VBP".

    Example:
    >>> other_number_form("Is", "VBZ"), other_number_form("watch", "VBP"), other_number_form("tries", "VBZ")
    ('Are', 'watches', 'try')
    >>> other_number_form("'s", "VBZ", lemma="have"), other_number_form("am", "VBP") is None
    ("'ve", True)
    """
    if xpos not in LABELS:
        raise ValueError(f"`xpos` must be 'VBZ' or 'VBP', got {xpos!r}.")
    lower = form.lower()
    lemma = lemma.lower() if lemma else None
    if lower and lower[0] in APOSTROPHES:
        contraction = lower[1:]
        if xpos == "VBZ":
            other = CONTRACTION_PLURALS.get(lemma or "be") if contraction == "s" else None
        else:
            other = CONTRACTION_SINGULARS.get(contraction)
        return form[0] + _with_case_of(form[1:], other) if other else None
    irregular = (IRREGULAR_PLURALS if xpos == "VBZ" else IRREGULAR_SINGULARS).get(lower)
    if irregular:
        return _with_case_of(form, irregular)
    if lower == "am" or not lower.isalpha():
        return None
    if xpos == "VBP":
        return _with_case_of(form, _third_singular(lower)) if lemma in (None, lower) else None
    for base in (lemma, _regular_base(lower)):
        if base and base.isalpha() and _third_singular(base) == lower:
            return _with_case_of(form, base)
    return None


def _subject(verb, dependents, tokens):
    """Returns the subject Token of `verb` (rule 2), or None."""
    governor = verb
    if verb.upos == "AUX" and verb.deprel in ("aux", "aux:pass", "cop"):
        governor = tokens[verb.head - 1]
    relations = ("nsubj", "nsubj:pass", "nsubj:outer") if verb.deprel == "cop" else ("nsubj", "nsubj:pass")
    subjects = [token for token in dependents[governor.index] if token.deprel in relations]
    before = [token for token in subjects if token.index < verb.index]
    return before[-1] if before else next(iter(subjects), None)


def _skip_reason(verb, subject):
    """Returns why `verb` with `subject` makes no item under rule 2, or None."""
    if subject is None:
        return "no subject"
    if subject.feats.get("Person") in ("1", "2"):
        return "1st/2nd person subject"
    if subject.feats.get("Number") not in NUMBERS:
        return "subject without Number=Sing|Plur"
    if subject.index > verb.index:
        return "subject after verb"
    if NUMBERS[subject.feats["Number"]] != LABELS[verb.xpos]:
        return "subject and verb differ in number"
    return None


def extract_number_items(sentences):
    """Extracts the number-agreement items of parsed sentences (rules in the module docstring).

    Args:
        sentences: iterable of Sentence, e.g. from `read_conllu`.

    Returns:
        (items, skipped): list of NumberItem in sentence and verb order, and a
        collections.Counter of the reasons candidate verbs (and modals) gave
        no item.
    """
    items, skipped = [], collections.Counter()
    for sentence in sentences:
        tokens = sentence.tokens
        dependents = collections.defaultdict(list)
        for token in tokens:
            dependents[token.head].append(token)
        for verb in tokens:
            if verb.upos not in ("VERB", "AUX") or verb.feats.get("VerbForm") != "Fin":
                continue
            if verb.xpos == "MD":
                skipped["modal"] += 1
                continue
            if verb.feats.get("Tense") != "Pres" or verb.xpos not in LABELS:
                continue
            subject = _subject(verb, dependents, tokens)
            reason = _skip_reason(verb, subject)
            other_form = None if reason else other_number_form(verb.form, verb.xpos, verb.lemma)
            if other_form is None:
                skipped[reason or "verb form not inflectable"] += 1
                continue
            nouns = [token for token in tokens[subject.index:verb.index - 1]
                     if token.upos == "NOUN" and token.feats.get("Number") in NUMBERS]
            attractors = [token.index - 1 for token in nouns if token.feats["Number"] != subject.feats["Number"]]
            items.append(NumberItem(
                sentence_id=sentence.sent_id,
                prefix=" ".join(token.form for token in tokens[:verb.index - 1]),
                verb=verb.form,
                other_form=other_form,
                label=LABELS[verb.xpos],
                attractors=len(attractors),
                intervening_noun_indices=[token.index - 1 for token in nouns],
                attractor_indices=attractors,
                subject=subject.form,
                subject_index=subject.index - 1,
                verb_index=verb.index - 1,
                distance=verb.index - subject.index,
            ))
    return items, skipped


def read_number_items(path, encoding="utf-8"):
    """Reads a CoNLL-U file and extracts its number-agreement items, logging the counts.

    Args:
        path: str or path-like, e.g. ../shared/data/ud_english_ewt/en_ewt-ud-test.conllu.
        encoding: str, how the bytes are decoded.

    Returns:
        list of NumberItem.

    Raises:
        FileNotFoundError: `path` does not exist.
        DataError (a ValueError): a malformed line, naming file and line.
    """
    sentences = read_conllu(path, encoding)
    items, skipped = extract_number_items(sentences)
    labels = collections.Counter(item.label for item in items)
    logger.info(
        "%s: %d number items from %d sentences (%d singular, %d plural); skipped %s",
        os.path.basename(path), len(items), len(sentences), labels["singular"], labels["plural"],
        dict(skipped.most_common()),
    )
    return items


def write_number_items(items, path):
    """Writes items as JSON lines, one `NumberItem.to_json()` a line, UTF-8."""
    with open(path, "w", encoding="utf-8") as f:
        for item in items:
            f.write(item.to_json() + "\n")
    logger.info("wrote %d number items to %s", len(items), path)


def load_number_items(path):
    """Reads items written by `write_number_items`.

    Raises:
        FileNotFoundError: `path` does not exist.
        DataError (a ValueError): a line is not a valid item; names file and line.
    """
    check_exists(path)
    items = []
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                items.append(NumberItem.from_json(line))
            except ValueError as error:
                raise DataError(f"{path}:{line_number}: not a number item: {error}") from None
    return items


def attractor_bucket(attractors):
    """Returns the reporting bucket of an attractor count: "0", "1", "2" or "3+".

    Raises:
        ValueError: `attractors` is negative.

    Example:
    >>> [attractor_bucket(count) for count in (0, 1, 2, 3, 7)]
    ['0', '1', '2', '3+', '3+']
    """
    if attractors < 0:
        raise ValueError(f"`attractors` must be >= 0, got {attractors!r}.")
    return str(attractors) if attractors < 3 else "3+"
