"""Time to quality: wall-clock seconds until PTB validation perplexity <= a target, textlstm against PyTorch.

    python benchmarks/time_to_quality.py [--target 120] [--max-epochs 8]
        [--textlstm-args "lr_decay_start_epoch=3"] [--output runs/time_to_quality]

Runs one after the other on the same machine, each alone on the cores:

1. PyTorch 2.13 CPU, pytorch/examples word_language_model's documented
   recipe, as its `main.py` runs it: the corpus read into word ids with
   `<eos>` after each line, `batchify` into 20 columns, BPTT 35, a 2x200
   tied LSTM (`RNNModel`, dropout 0.2, uniform +-0.1 initialisation), SGD
   by hand at lr 20 with `clip_grad_norm_(0.25)`, the hidden state detached
   between batches, validation (batch 10) after each epoch, and lr / 4
   when validation does not improve.
2. textlstm as a user runs it: `textlstm train lm --config
   configs/ptb_small.json` plus `--textlstm-args` (any recipe counts), in a
   subprocess; its `history.csv` gains a row at each epoch end, after
   validation, and the clock is read when that row appears.

Both clocks stop at the end of the first validation at or below
`--target`, and start before the corpus is read: reading, the vocabulary,
tracing and, for textlstm, `jit_compile=auto`'s timing are inside both. The
textlstm clock also covers its process starting and importing TensorFlow
and Keras; the torch clock starts after `import torch`. Validation runs at
epoch ends in both (the whole PTB validation set; torch in 10 columns as
main.py evaluates, textlstm in 20 streams, its `eval_batch_size`), so both
are measured at the same granularity. textlstm runs without its config's
time budget.
A 2048^3 float32 GEMM (TF and torch, `training_speed.gemm_rates`) is
timed before and after each side, as a check that the machine's speed did
not change between them (this VM's speed moves by up to ~1.7x between
hours). Prints a Markdown table with the CPU
model; results go in BENCHMARKS.md.
"""

import argparse
import csv
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time

from textlstm.reports import markdown_table
from textlstm.training import cpu_description
from training_speed import gemm_rates  # benchmarks/training_speed.py, beside this script

PTB = "../shared/data/ptb"


def torch_reference(target, max_epochs, seed=1111):
    """word_language_model's main.py (its defaults with --tied); returns [(epoch, seconds, val ppl)]."""
    import torch
    from torch import nn

    start = time.perf_counter()
    torch.manual_seed(seed)

    words = {}

    def tokenize(path):  # data.Corpus.tokenize: each line's words, then <eos>
        ids = []
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                for word in line.split() + ["<eos>"]:
                    ids.append(words.setdefault(word, len(words)))
        return torch.tensor(ids, dtype=torch.int64)

    train, valid = tokenize(os.path.join(PTB, "ptb.train.txt")), tokenize(os.path.join(PTB, "ptb.valid.txt"))

    def batchify(data, columns):  # (tokens,) -> (tokens // columns, columns)
        rows = data.size(0) // columns
        return data[: rows * columns].view(columns, -1).t().contiguous()

    train, valid = batchify(train, 20), batchify(valid, 10)
    bptt, vocabulary = 35, len(words)

    class RNNModel(nn.Module):  # word_language_model's model.py, LSTM, tied
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(0.2)
            self.encoder = nn.Embedding(vocabulary, 200)
            self.rnn = nn.LSTM(200, 200, 2, dropout=0.2)
            self.decoder = nn.Linear(200, vocabulary)
            self.decoder.weight = self.encoder.weight
            nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
            nn.init.zeros_(self.decoder.bias)

        def forward(self, tokens, hidden):
            output, hidden = self.rnn(self.drop(self.encoder(tokens)), hidden)
            return self.decoder(self.drop(output)), hidden

    model, criterion = RNNModel(), nn.CrossEntropyLoss()

    def get_batch(source, i):
        length = min(bptt, len(source) - 1 - i)
        return source[i : i + length], source[i + 1 : i + 1 + length].reshape(-1)

    def evaluate(source):
        model.eval()
        total, hidden = 0.0, None
        with torch.no_grad():
            for i in range(0, source.size(0) - 1, bptt):
                data, targets = get_batch(source, i)
                output, hidden = model(data, hidden)
                total += len(data) * criterion(output.view(-1, vocabulary), targets).item()
        return total / (len(source) - 1)

    lr, best, curve = 20.0, None, []
    for epoch in range(1, max_epochs + 1):
        model.train()
        hidden = None
        for i in range(0, train.size(0) - 1, bptt):
            data, targets = get_batch(train, i)
            hidden = None if hidden is None else tuple(h.detach() for h in hidden)
            model.zero_grad()
            output, hidden = model(data, hidden)
            criterion(output.view(-1, vocabulary), targets).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            for parameter in model.parameters():
                parameter.data.add_(parameter.grad, alpha=-lr)
        val_loss = evaluate(valid)
        curve.append((epoch, time.perf_counter() - start, math.exp(val_loss)))
        print(f"torch epoch {epoch}: {curve[-1][1]:.0f} s, validation perplexity {curve[-1][2]:.2f}", flush=True)
        if math.exp(val_loss) <= target:
            break
        if best is None or val_loss < best:
            best = val_loss
        else:
            lr /= 4.0
    return curve


def read_epochs(history):
    """The complete rows of a run's `history.csv` (a row still being written is left for the next read)."""
    if not os.path.exists(history):
        return []
    with open(history, newline="") as lines:
        text = lines.read()
    complete = text[: text.rfind("\n") + 1]
    return list(csv.DictReader(complete.splitlines()))


def textlstm_run(target, max_epochs, extra_args, run_dir):
    """`textlstm train lm` in a subprocess; returns [(epoch, seconds, val ppl)] read as history.csv grows."""
    command = [os.path.join(os.path.dirname(sys.executable), "textlstm"), "train", "lm", "--config",
               "configs/ptb_small.json", f"run_dir={run_dir}", f"epochs={max_epochs}", "time_budget_minutes=0",
               "verbose=2", *extra_args]
    print("$", shlex.join(command), flush=True)
    shutil.rmtree(run_dir, ignore_errors=True)  # an earlier race's history must not be read as this one's
    history = os.path.join(run_dir, "history.csv")
    start = time.perf_counter()
    with open(f"{run_dir}.log", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            curve = follow(process, history, start, target)
        finally:  # interrupted or failed here: the run must not go on using the cores
            if process.poll() is None:
                process.kill()
                process.wait()
    if process.returncode and not (curve and curve[-1][2] <= target):
        raise RuntimeError(f"textlstm exited with status {process.returncode}; see {run_dir}.log")
    return curve


def follow(process, history, start, target):
    """The run's epochs as they appear, until one reaches `target` (the run is then stopped) or it exits."""
    curve = []
    while True:
        running = process.poll() is None
        for row in read_epochs(history)[len(curve):]:
            curve.append((int(row["epoch"]) + 1, time.perf_counter() - start, float(row["val_perplexity"])))
            print(f"textlstm epoch {curve[-1][0]}: {curve[-1][1]:.0f} s, validation perplexity "
                  f"{curve[-1][2]:.2f}", flush=True)
        if curve and curve[-1][2] <= target:
            process.terminate()
            process.wait()
            return curve
        if not running:  # the rows it wrote before exiting are read above
            return curve
        time.sleep(0.2)


def first_at(curve, target):
    """Seconds of the first point at or below `target`, or None."""
    return next((seconds for _, seconds, perplexity in curve if perplexity <= target), None)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", type=float, default=120.0)
    parser.add_argument("--max-epochs", type=int, default=8)
    parser.add_argument("--textlstm-args", default="lr_decay_start_epoch=3",
                        help="overrides for `textlstm train lm --config configs/ptb_small.json`")
    parser.add_argument("--output", default="runs/time_to_quality")
    args = parser.parse_args()
    os.makedirs(args.output, exist_ok=True)

    rates = {"before torch": gemm_rates()}
    torch_curve = torch_reference(args.target, args.max_epochs)
    rates["after torch"] = gemm_rates()
    textlstm_curve = textlstm_run(args.target, args.max_epochs, shlex.split(args.textlstm_args),
                                  os.path.join(args.output, "textlstm_run"))
    rates["after textlstm"] = gemm_rates()

    rows = [{"run": name, "epoch": epoch, "seconds since start": f"{seconds:,.0f}",
             "validation perplexity": f"{perplexity:.2f}"}
            for name, curve in (("torch", torch_curve), ("textlstm", textlstm_curve))
            for epoch, seconds, perplexity in curve]
    torch_seconds, textlstm_seconds = first_at(torch_curve, args.target), first_at(textlstm_curve, args.target)
    ratio = (f"{textlstm_seconds / torch_seconds:.2f}" if torch_seconds and textlstm_seconds else "n/a")
    summary = (f"{time.strftime('%Y-%m-%d %H:%M')}, {cpu_description()}; target validation perplexity "
               f"{args.target}: torch {torch_seconds and round(torch_seconds)} s, textlstm "
               f"{textlstm_seconds and round(textlstm_seconds)} s (textlstm / torch = {ratio}); "
               f"textlstm args: {args.textlstm_args!r}; 2048^3 GEMM GFLOP/s: "
               + ", ".join(f"{when}: " + " / ".join(f"{library} {rate:.0f}" for library, rate in measured.items())
                           for when, measured in rates.items()))
    print(summary)
    print(markdown_table(rows, ["run", "epoch", "seconds since start", "validation perplexity"]))
    with open(os.path.join(args.output, "result.json"), "w") as out:
        json.dump({"summary": summary, "torch": torch_curve, "textlstm": textlstm_curve, "gemm": rates}, out, indent=1)


if __name__ == "__main__":
    main()
