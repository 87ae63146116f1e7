"""Soak test: score and classify N sentences through the Python API and the SavedModels, watching memory and tracing.

    python benchmarks/soak.py --lm-run RUN --classifier-run RUN [--sentences 1000000] [--batch-size 1000]
        [--output-dir runs/soak] [--paths keras,saved_model,predict,serving]

Four paths (or those `--paths` names), one after the other, in one process, each over `--sentences`
sentences (PTB and SST-2 lines, cycled) in batches of `--batch-size`:

- `KerasScorer.score` (the LM run's model.keras: one traced graph, strings in);
- `SavedModelScorer.score` (the LM run exported: TF Serving's graph);
- `SentimentClassifier.predict` on strings (Keras `predict`, a batch per call);
- the classifier export's `serving_default` signature.

For each it records the process's resident memory (VmRSS) after a warm-up
of 20 batches and at the end, the growth between them (goal: <= 10%), the
traces of the Keras scorer's `tf.function` after the warm-up (goal: none;
the SavedModel signatures have fixed input signatures, and Keras's
`predict` function is not reachable to count), and the slowest batch
against the median (a retrace costs about a second, many batches' time).
Prints a Markdown table, writes `soak.json` and `soak.png` (memory over
batches) to `--output-dir`; the result goes in BENCHMARKS.md.
"""

import argparse
import itertools
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import tensorflow as tf  # noqa: E402
from tqdm import tqdm  # noqa: E402

from textlstm.data import read_lines  # noqa: E402
from textlstm.export import export_model  # noqa: E402
from textlstm.probes import KerasScorer, SavedModelScorer  # noqa: E402
from textlstm.recipes.sentiment import load_classifier  # noqa: E402
from textlstm.reports import markdown_table  # noqa: E402
from textlstm.training import cpu_description  # noqa: E402

WARMUP_BATCHES = 20


def resident_megabytes():
    with open("/proc/self/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def sentences(data_dir):
    """PTB training lines and SST-2 training sentences, interleaved: short and long, words and raw text."""
    ptb = read_lines(os.path.join(data_dir, "ptb", "ptb.train.txt"))
    sst = [line.split("\t")[0] for line in read_lines(os.path.join(data_dir, "sst2_glue", "train.tsv"))[1:]]
    return [text for pair in itertools.zip_longest(ptb, sst) for text in pair if text]


def soak(name, run_batch, texts, count, batch_size, tracing_count=None):
    """Runs `run_batch` over `count` sentences; returns the path's measurements and its memory curve."""
    source = itertools.cycle(texts)
    batches = count // batch_size
    memory, seconds = [], []
    traced_after_warmup = None
    for index in tqdm(range(batches), desc=name, unit="batch", mininterval=10):
        batch = [next(source) for _ in range(batch_size)]
        start = time.perf_counter()
        run_batch(batch)
        seconds.append(time.perf_counter() - start)
        if index == WARMUP_BATCHES - 1:
            traced_after_warmup = tracing_count() if tracing_count else None
        memory.append(resident_megabytes())
    warm, end = memory[WARMUP_BATCHES - 1], memory[-1]
    median = statistics.median(seconds[WARMUP_BATCHES:])
    return {
        "path": name,
        "sentences": batches * batch_size,
        "sentences_per_second": batches * batch_size / sum(seconds),
        "rss_after_warmup_mb": warm,
        "rss_end_mb": end,
        "growth_percent": 100 * (end - warm) / warm,
        "retraces_after_warmup": tracing_count() - traced_after_warmup if tracing_count else None,
        "slowest_batch_over_median": max(seconds[WARMUP_BATCHES:]) / median,
    }, memory


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lm-run", required=True, help="a `textlstm train lm` run directory")
    parser.add_argument("--classifier-run", required=True, help="a `textlstm train classifier` run directory")
    parser.add_argument("--sentences", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--output-dir", default="runs/soak")
    parser.add_argument("--paths", default="keras,saved_model,predict,serving",
                        help="which of keras, saved_model, predict, serving to soak (comma-separated)")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.paths.split(",")]
    unknown = set(chosen) - {"keras", "saved_model", "predict", "serving"}
    if unknown:
        parser.error(f"--paths: unknown {sorted(unknown)}; choose from keras, saved_model, predict, serving.")
    if args.sentences < (WARMUP_BATCHES + 10) * args.batch_size:
        parser.error(f"--sentences must be at least {(WARMUP_BATCHES + 10) * args.batch_size} "
                     f"({WARMUP_BATCHES} warm-up batches and 10 more), received {args.sentences}.")
    os.makedirs(args.output_dir, exist_ok=True)
    texts = sentences(args.data_dir)
    exports = tempfile.mkdtemp(prefix="soak_exports_")

    scorer = KerasScorer.from_run_dir(args.lm_run, prepare="none")
    lm_export = export_model(scorer.language_model, exports, "lm")
    classifier = load_classifier(args.classifier_run)
    classifier_export = export_model(classifier, exports, "classifier")
    saved_scorer = SavedModelScorer(lm_export, prepare="none")
    signature = tf.saved_model.load(classifier_export).signatures["serving_default"]

    def keras_tracing_count():
        return scorer.tracing_count()

    paths = {
        "keras": ("KerasScorer.score", lambda batch: scorer.score(batch, batch_size=args.batch_size),
                  keras_tracing_count),
        "saved_model": ("SavedModelScorer.score", lambda batch: saved_scorer.score(batch, batch_size=args.batch_size),
                        None),
        "predict": ("SentimentClassifier.predict", lambda batch: classifier.predict(batch, batch_size=args.batch_size),
                    None),
        "serving": ("classifier SavedModel serving_default", lambda batch: signature(texts=tf.constant(batch)), None),
    }
    rows, curves = [], {}
    for name, run_batch, tracing_count in (paths[key] for key in chosen):
        row, memory = soak(name, run_batch, texts, args.sentences, args.batch_size, tracing_count)
        rows.append(row)
        curves[name] = memory
    result = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_description(), "batch_size": args.batch_size,
              "lm_run": os.path.abspath(args.lm_run), "classifier_run": os.path.abspath(args.classifier_run),
              "paths": rows}
    with open(os.path.join(args.output_dir, "soak.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    figure, axis = plt.subplots(figsize=(8, 4))
    for name, memory in curves.items():
        axis.plot(range(1, len(memory) + 1), memory, label=name)
    axis.axvline(WARMUP_BATCHES, color="grey", linestyle=":", label="end of warm-up")
    axis.set_xlabel(f"batch ({args.batch_size} sentences)")
    axis.set_ylabel("resident memory (MB)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(os.path.join(args.output_dir, "soak.png"), dpi=120)
    print(f"{result['date']}, {result['cpu']}, batch {args.batch_size}")
    columns = ["path", "sentences", "sentences/s", "RSS after warm-up (MB)", "RSS at end (MB)", "growth",
               "retraces after warm-up", "slowest batch / median"]
    print(markdown_table([dict(zip(columns, [
        r["path"], f"{r['sentences']:,}", f"{r['sentences_per_second']:,.0f}", f"{r['rss_after_warmup_mb']:.0f}",
        f"{r['rss_end_mb']:.0f}", f"{r['growth_percent']:+.1f}%",
        "not counted" if r["retraces_after_warmup"] is None else r["retraces_after_warmup"],
        f"{r['slowest_batch_over_median']:.1f}x"])) for r in rows], columns))

if __name__ == "__main__":
    main()
