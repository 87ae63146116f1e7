"""Input pipeline throughput (read, tokenize, lay out windows; no model) against what training consumes.

    python benchmarks/input_pipeline.py --training-tokens-per-second N [--file ../shared/data/ptb/ptb.train.txt]
        [--batch-size 20] [--sequence-length 35] [--repetitions 3]

Times, in one process, one full pass over the PTB training text (930k
tokens) through both stream layouts of the language model:

- in memory (`stream_dataset`): the lines read into Python, tokenized, the
  token stream laid out as B streams; the pass is timed from the file, as a
  run pays it once, and the windows of the built dataset separately;
- from the file (`file_stream_dataset`, `stream_from_file=true`): the byte
  scan, then windows read and tokenized as they are consumed, every epoch.

It prints tokens/s of each and the headroom over the fastest training rate
measured for the same shapes (`--training-tokens-per-second`, e.g. from
`benchmarks/training_speed.py`). Results go in BENCHMARKS.md.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from textlstm.data import file_stream_dataset, read_lines, stream_dataset  # noqa: E402
from textlstm.preprocessors import LanguageModelPreprocessor  # noqa: E402
from textlstm.reports import markdown_table  # noqa: E402
from textlstm.tokenizers import train_tokenizer  # noqa: E402
from textlstm.training import cpu_description  # noqa: E402


def tokens_in(dataset):
    """Iterates a dataset of windows to its end; returns the target tokens it held."""
    return sum(int(y.shape[0] * y.shape[1]) for _, y, _ in dataset)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", default="../shared/data/ptb/ptb.train.txt")
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--sequence-length", type=int, default=35)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--training-tokens-per-second", type=float, required=True,
                        help="the fastest training rate of these shapes on this machine, from "
                             "`training_speed.py --models ptb_small --variants 'sampled softmax 1024'`")
    args = parser.parse_args()
    print(f"CPU: {cpu_description()}; file {args.file}", flush=True)
    preprocessor = LanguageModelPreprocessor.for_mode(
        train_tokenizer("word", read_lines(args.file), vocabulary_size=10000), "stream")
    shape = dict(batch_size=args.batch_size, sequence_length=args.sequence_length)

    timings = {"in memory: read + tokenize + lay out (once per run)": [], "in memory: windows (per epoch)": [],
               "from the file: byte scan (once per run)": [], "from the file: windows (per epoch)": []}
    tokens = {}
    for _ in range(args.repetitions):
        start = time.perf_counter()
        memory = stream_dataset(preprocessor, read_lines(args.file), source=args.file, **shape)
        timings["in memory: read + tokenize + lay out (once per run)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        tokens["memory"] = tokens_in(memory)
        timings["in memory: windows (per epoch)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        streamed = file_stream_dataset(preprocessor, args.file, **shape)
        timings["from the file: byte scan (once per run)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        tokens["file"] = tokens_in(streamed)
        timings["from the file: windows (per epoch)"].append(time.perf_counter() - start)
    rows = []
    for step, seconds in timings.items():
        count = tokens["file" if step.startswith("from") else "memory"]
        rate = count / statistics.median(seconds)
        rows.append({"step": step, "seconds (median)": round(statistics.median(seconds), 2),
                     "tokens/s": round(rate), "x training": round(rate / args.training_tokens_per_second, 1)})
    print(f"tokens per epoch: in memory {tokens['memory']}, from the file {tokens['file']}")
    print(markdown_table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
