"""The soak test (marked `soak`, not in the default run): `pytest -m soak tests/test_soak.py`.

It runs benchmarks/soak.py over TEXTLSTM_SOAK_SENTENCES sentences (default
1,000,000) per path and checks its goals; BENCHMARKS.md records a run.
"""

import json
import os
import subprocess
import sys

import pytest

from textlstm.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.soak
def test_a_million_sentences_grow_no_memory_and_trace_nothing_new(trained_run, shared_data, tmp_path):
    classifier_run = tmp_path / "classifier"
    assert main(["train", "classifier", f"data_dir={shared_data}", f"run_dir={classifier_run}",
                 "max_train_lines=2000", "embedding_dim=32", "hidden_dim=16", "epochs=1", "verbose=0"]) == 0
    sentences = os.environ.get("TEXTLSTM_SOAK_SENTENCES", "1000000")
    subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "soak.py"), "--lm-run", str(trained_run),
                    "--classifier-run", str(classifier_run), "--sentences", sentences, "--data-dir", str(shared_data),
                    "--output-dir", str(tmp_path / "soak")], check=True)
    result = json.loads((tmp_path / "soak" / "soak.json").read_text())
    for path in result["paths"]:
        assert path["growth_percent"] <= 10, path
        assert path["retraces_after_warmup"] in (None, 0), path
