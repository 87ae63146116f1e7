"""Shared fixtures: paths to ../shared/data and small real models."""

import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


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
def trained_run(tmp_path_factory, ptb_dir):
    """A small LM trained on a PTB slice through the CLI, as a user would; returns the run dir."""
    from textlstm.cli import main

    run_dir = tmp_path_factory.mktemp("runs") / "ptb_slice"
    overrides = [
        f"train_file={ptb_dir / 'ptb.train.txt'}", f"valid_file={ptb_dir / 'ptb.valid.txt'}",
        f"test_file={ptb_dir / 'ptb.test.txt'}", f"run_dir={run_dir}", *E2E_OVERRIDES,
    ]
    assert main(["train", "lm", "--config", str(ROOT / "configs" / "ptb_small.json"), *overrides]) == 0
    return run_dir


E2E_OVERRIDES = [
    "max_train_lines=3000", "max_eval_lines=400", "embedding_dim=64", "hidden_dim=64", "num_layers=1",
    "batch_size=16", "sequence_length=20", "sampled_softmax=0", "dropout=0",
    "epochs=3", "lr_decay_start_epoch=3", "time_budget_minutes=0", "num_samples=2", "verbose=0",
]
