"""Shared fixtures: paths to ../shared/data and small real models."""

import fcntl
import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def tensorflow_started():
    """TensorFlow's runtime runs from the session's start, as in a notebook, so in-process runs keep its default
    thread pools whichever test comes first (`cpu_threads=auto` times and sets them only in a fresh process:
    tests/test_cpu_threads.py runs those)."""
    import tensorflow as tf

    tf.constant(0.0) + 1.0


@pytest.fixture(scope="session")
def shared_data():
    if not DATA.exists():
        pytest.fail(f"{DATA} is missing: the tests read the shared corpora from ../shared/data.")
    return DATA


@pytest.fixture(scope="session")
def ptb_dir():
    path = DATA / "ptb"
    if not path.exists():
        pytest.fail(f"{path} is missing: the tests read the shared PTB data from ../shared/data/ptb.")
    return path


@pytest.fixture(scope="session")
def ptb_lines(ptb_dir):
    from textlstm.data import read_lines

    return read_lines(str(ptb_dir / "ptb.train.txt"), max_lines=2000)


@pytest.fixture(scope="session")
def ptb_tfds_dir(tmp_path_factory, ptb_dir):
    """A TFDS data_dir with textlstm_ptb prepared from ../shared/data/ptb (a few seconds, offline)."""
    from textlstm.data import load_builder

    data_dir = tmp_path_factory.mktemp("tensorflow_datasets")
    load_builder("textlstm_ptb", str(data_dir), manual_dir=str(ptb_dir))
    return data_dir


@pytest.fixture(scope="session")
def sst_lines(shared_data):
    """Raw sentences (no <unk>, some non-ASCII) from SST-2, label stripped."""
    from textlstm.data import read_lines

    return [line.split(" ", 1)[1] for line in read_lines(str(shared_data / "sst_kim2014" / "stsa.binary.train"),
                                                         max_lines=2000)]


@pytest.fixture(scope="session")
def word_tokenizer(ptb_lines):
    from textlstm.tokenizers import WordTokenizer

    return WordTokenizer.from_texts(ptb_lines)


@pytest.fixture(scope="session")
def tiny_lm(word_tokenizer):
    """An untrained 2-layer LM on a PTB-slice vocabulary (built in under a second)."""
    import keras

    from textlstm.models import LanguageModel, LSTMBackbone
    from textlstm.preprocessors import LanguageModelPreprocessor

    keras.utils.set_random_seed(0)
    backbone = LSTMBackbone(word_tokenizer.vocabulary_size(), embedding_dim=16, hidden_dim=16, num_layers=2)
    return LanguageModel(backbone, preprocessor=LanguageModelPreprocessor.for_mode(word_tokenizer, "stream"))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, worker_id, ptb_dir):
    """A small LM trained on a PTB slice through the CLI, as a user would; returns the run dir.

    Trained once per test session: under pytest-xdist the first worker to ask trains it in the session's
    shared temporary folder while the others wait on a file lock (pytest-xdist's documented recipe).
    The tests only read it, and write their own outputs (probe reports) under it.
    """
    if worker_id == "master":  # no xdist: this process's own temporary folder
        return _train_ptb_slice(tmp_path_factory.mktemp("runs") / "ptb_slice", ptb_dir)
    shared = tmp_path_factory.getbasetemp().parent  # one per session, shared by its workers
    run_dir = shared / "ptb_slice"
    with open(shared / "ptb_slice.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if (shared / "ptb_slice.failed").exists():  # not again into a half-written run directory
            pytest.fail("the shared PTB-slice run failed to train in another test worker (see its error)")
        if not (shared / "ptb_slice.trained").exists():
            try:
                _train_ptb_slice(run_dir, ptb_dir)
            except BaseException:
                (shared / "ptb_slice.failed").touch()
                raise
            (shared / "ptb_slice.trained").touch()
    return run_dir


def _train_ptb_slice(run_dir, ptb_dir):
    from textlstm.cli import main

    overrides = [
        f"train_file={ptb_dir / 'ptb.train.txt'}", f"valid_file={ptb_dir / 'ptb.valid.txt'}",
        f"test_file={ptb_dir / 'ptb.test.txt'}", f"run_dir={run_dir}", *E2E_OVERRIDES,
    ]
    assert main(["train", "lm", "--config", str(ROOT / "configs" / "ptb_small.json"), *overrides]) == 0
    return run_dir


E2E_OVERRIDES = [
    "max_train_lines=3000", "max_eval_lines=400", "embedding_dim=64", "hidden_dim=64", "num_layers=1",
    "batch_size=16", "sequence_length=20", "dropout=0",  # ptb_small's sampled softmax (1024), the default path
    "epochs=3", "lr_decay_start_epoch=3", "time_budget_minutes=0", "num_samples=2", "verbose=0",
    "jit_compile=false",  # timing XLA costs two compilations; test_training covers jit_compile=auto
]


@pytest.fixture(scope="session")
def template_lm():
    """A 1x32 word LM trained for about 10 s on Marvin & Linzen template sentences; returns (lm, pairs).

    It agrees a verb right after its subject every time and across a prepositional phrase about 3 times in 4.
    """
    import random

    import keras

    from textlstm.models import LanguageModel, LSTMBackbone
    from textlstm.preprocessors import LanguageModelPreprocessor
    from textlstm.probes.templates import generate_pairs
    from textlstm.tokenizers import WordTokenizer

    pairs = generate_pairs(["simple_agreement", "across_prepositional_phrase"], max_pairs_per_condition=1500)
    texts = [pair["sentence_good"] for pair in pairs if pair["UID"] == "simple_agreement"] * 5
    texts += [pair["sentence_good"] for pair in pairs if pair["UID"] != "simple_agreement"]
    random.Random(0).shuffle(texts)  # LanguageModel.fit keeps the order it is given
    tokenizer = WordTokenizer.from_texts(texts)
    keras.utils.set_random_seed(0)
    lm = LanguageModel(LSTMBackbone(tokenizer.vocabulary_size(), 32, 32, num_layers=1),
                       preprocessor=LanguageModelPreprocessor.for_mode(tokenizer, "sentence"))
    ids = lm.preprocessor(texts).numpy()
    lm.compile(optimizer=keras.optimizers.Adam(0.01))
    lm.fit(ids[:, :-1], ids[:, 1:], epochs=6, batch_size=32, verbose=0)
    return lm, pairs


def template_number_items(pairs):
    """NumberItems of template pairs: the subject is word 1; a PP's noun is the last prefix word."""
    from textlstm.data.number_agreement import NumberItem

    items = []
    for index, pair in enumerate(pairs):
        words = pair["one_prefix_prefix"].split(" ")
        nouns = [len(words) - 1] if pair["attractor_number"] else []
        items.append(NumberItem(
            sentence_id=str(index), prefix=pair["one_prefix_prefix"], verb=pair["one_prefix_word_good"],
            other_form=pair["one_prefix_word_bad"], label=pair["subject_number"],
            attractors=int(pair["attractor_number"] not in (None, pair["subject_number"])),
            intervening_noun_indices=nouns,
            attractor_indices=nouns if pair["attractor_number"] not in (None, pair["subject_number"]) else [],
            subject=words[1], subject_index=1, verb_index=len(words),
            distance=len(words) - 1))
    return items


def skip_export_extras(patch):
    """Makes exports skip the slow extras (the signature listing and op audit each run TensorFlow in a
    subprocess), for tests of something else; tests/test_export.py and tests/test_serving.py check the extras."""
    patch.setattr("textlstm.export._start_signature_listing", lambda export_dir: None)
    patch.setattr("textlstm.export._finish_signature_listing", lambda process, export_dir: None)
    patch.setattr("textlstm.serving.audit_ops", lambda export_dir: {"servable": True})


@pytest.fixture
def export_without_extras(monkeypatch):
    """`skip_export_extras` for one test."""
    skip_export_extras(monkeypatch)

