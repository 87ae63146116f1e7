"""benchmarks/sst_lm_pretraining.py's `lines_holding`, which drops MR lines that hold an SST dev or test sentence
(MR, which SST was cut from, joins several SST sentences in one line)."""

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script():
    path = os.path.join(ROOT, "benchmarks", "sst_lm_pretraining.py")
    spec = importlib.util.spec_from_file_location("sst_lm_pretraining", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lines_holding_finds_sentences_inside_lines_and_short_ones_only_whole():
    script = load_script()
    lines = ["A warm , funny film . It is also far too long for its own good .", "", "Bad .",
             "Not bad at all, and never dull.", "one of -lrb- herzog 's -rrb- least inspired works",
             "a film about twenty", "two friends"]
    held_out = ["It is also far too long for its own good!", "bad",  # "bad" is short: whole lines only
                "one of [herzog's] least inspired works .",  # SST's -lrb- -rrb- are MR's brackets
                "a film about twenty two friends"]  # only across two lines: not held
    assert script.lines_holding(lines, held_out) == {0, 2, 4}
