"""Training tokens/s of textlstm against a PyTorch CPU reference, in one run.

    python benchmarks/training_speed.py [--models ptb_small,ptb_medium,lm_2x512,bilstm_256]
        [--repetitions 7] [--steps 8] [--variants "keras loop,XLA,sampled softmax 1024"]
        [--cpu-threads auto] [--output runs/training_speed]

For each model shape of issue 11 it times, in one process per model (its
TensorFlow thread pools set as training sets them for that model,
`--cpu-threads`, `textlstm.cpu_threads`) and interleaved there (textlstm,
torch, textlstm, torch, ...) so that drift hits both alike:

- textlstm: `LanguageModel.fit` (carried state, SGD + clipping 0.25, full
  softmax) or `TextClassifier.fit` (Adam) on random batches, the path a
  user's training takes, on the recurrent kernel textlstm picks for this
  machine (`textlstm.models.recurrent.kernel_path`);
- `--variants` adds textlstm with Keras's own LSTM loop, with XLA, or with
  sampled softmax (1024);
- PyTorch 2.13 CPU (the `benchmark` extra: `pip install -e ".[benchmark]"`):
  pytorch/examples word_language_model's `RNNModel` (embedding, dropout,
  `nn.LSTM`, dropout, linear decoder, tied when the sizes allow; SGD by
  hand, `clip_grad_norm_(0.25)`, hidden state detached between batches),
  and for the classifier the same BiLSTM + [final, max, mean] pooling +
  linear head with Adam.

Each repetition times `--steps` steps after a warm-up; the table gives the
median tokens/s, the min-max spread, the ratio to torch, and the model's
FLOP rate (6 x multiply-adds per token, forward + backward) as a share of
the best large-GEMM rate measured in the same run (`tf.matmul` with
TensorFlow's default pools, and `torch.matmul`; 2048x2048 float32). A
forced `--cpu-threads` setting runs every model in this one process (its
`tf.matmul` rate then under those pools). The CPU model is printed with the table;
results go in BENCHMARKS.md.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from textlstm.config import CPU_THREADS  # noqa: E402
from textlstm.cpu_threads import choose_cpu_threads, describe_cpu_threads  # noqa: E402
from textlstm.models import LanguageModel, LSTMBackbone, TextClassifier  # noqa: E402
from textlstm.models.recurrent import kernel_path  # noqa: E402
from textlstm.training import StepTimer, cpu_description  # noqa: E402
from textlstm.reports import markdown_table  # noqa: E402
from torch_reference import MODELS, TorchRunner, flops_per_token, time_call, torch_matmul_rate  # noqa: E402

VARIANTS = ("keras loop", "XLA", "sampled softmax 1024")


def gemm_rates(size=2048, repetitions=5):
    """Best float32 GFLOP/s of a size x size matmul, in TF and in torch."""
    rates = {}
    a = tf.random.normal((size, size))
    tf_matmul = tf.function(lambda a: tf.matmul(a, a))
    tf_matmul(a).numpy()
    best = min(time_call(lambda: tf_matmul(a).numpy()) for _ in range(repetitions))
    rates["tf.matmul"] = 2 * size**3 / best / 1e9
    try:
        rates["torch.matmul"] = torch_matmul_rate(size, repetitions=repetitions)
    except ImportError:
        pass
    return rates


class TextlstmRunner:
    """`steps` training steps of a textlstm model through `fit`, on fixed random batches."""

    def __init__(self, kind, vocabulary, embedding, hidden, layers, batch, time_steps, steps, variant="default"):
        keras.utils.set_random_seed(0)
        backbone = LSTMBackbone(vocabulary, embedding_dim=embedding, hidden_dim=hidden, num_layers=layers,
                                bidirectional=kind == "classifier", dropout=0.2)
        if variant == "keras loop":
            for layer in backbone.recurrent_layers:
                for lstm in getattr(layer, "forward_layer", layer), getattr(layer, "backward_layer", layer):
                    lstm.cpu_kernel = "keras"
        rng = np.random.RandomState(0)
        if kind == "lm":
            self.model = LanguageModel(backbone, tie_weights=embedding == hidden)
            self.model.compile(keras.optimizers.SGD(20.0, global_clipnorm=0.25), carry_state=True,
                               sampled_softmax=1024 if variant == "sampled softmax 1024" else 0,
                               jit_compile=variant == "XLA")
            ids = rng.randint(4, vocabulary, size=(steps, batch, time_steps + 1)).astype("int32")
            self.data = tf.data.Dataset.from_tensor_slices((ids[:, :, :-1], ids[:, :, 1:])).repeat()
        else:
            self.model = TextClassifier(backbone, num_classes=2, pooling="concat", dropout=0.5)
            self.model.compile(keras.optimizers.Adam(1e-3, global_clipnorm=5.0), jit_compile=variant == "XLA")
            ids = rng.randint(4, vocabulary, size=(steps, batch, time_steps)).astype("int32")
            labels = rng.randint(0, 2, size=(steps, batch)).astype("int32")
            self.data = tf.data.Dataset.from_tensor_slices((ids, labels)).repeat()
        self.steps = steps
        self.model.fit(self.data, steps_per_epoch=3, epochs=1, verbose=0)  # trace (and compile)

    def time(self):
        """Seconds per step, from the end of the first step to the end of the last (a `fit` call also spends
        up to about a second after its last step tearing its data iterator down, which a run pays once)."""
        timer = StepTimer()
        self.model.fit(self.data, steps_per_epoch=self.steps + 1, epochs=1, verbose=0, callbacks=[timer])
        return (timer.end - timer.start) / self.steps


def measure(name, repetitions, steps, variants):
    *_, batch, time_steps = MODELS[name]
    kernel = kernel_path(masked=MODELS[name][0] == "classifier")  # classifier batches are padded: masked
    runners = {f"textlstm ({kernel} kernel)": TextlstmRunner(*MODELS[name], steps)}
    for variant in variants:
        runners[f"textlstm, {variant}"] = TextlstmRunner(*MODELS[name], steps, variant=variant)
    try:
        runners["torch"] = TorchRunner(*MODELS[name], steps)
    except ImportError:
        print("torch is not installed: pip install -e '.[benchmark]'", flush=True)
    seconds = {label: [] for label in runners}
    for _ in range(repetitions):
        for label, runner in runners.items():
            seconds[label].append(runner.time())
    tokens = batch * time_steps  # a step's
    return {label: [tokens / s for s in values] for label, values in seconds.items()}


def torch_threads():
    try:
        import torch
    except ImportError:
        return "torch not installed"
    return torch.get_num_threads()


def backbone_arguments(name):
    """The `LSTMBackbone` arguments of a model of `MODELS`, as `TextlstmRunner` builds it."""
    kind, vocabulary, embedding, hidden, layers, *_ = MODELS[name]
    return {"vocabulary_size": vocabulary, "embedding_dim": embedding, "hidden_dim": hidden, "num_layers": layers,
            "bidirectional": kind == "classifier", "dropout": 0.2}


def table_rows(results):
    """One row per model and run: median tokens/s, spread, ratio to torch, share of the best GEMM."""
    rows = []
    for name, model in results["models"].items():
        rates, flops = model["tokens_per_second"], model["flops_per_token"]
        best_gemm = max(results["gemm_gflops"].values())
        torch_median = statistics.median(rates["torch"]) if "torch" in rates else None
        for label, values in rates.items():
            median = statistics.median(values)
            rows.append({"model": name, "run": label, "tokens/s (median)": round(median),
                         "spread": f"{min(values):.0f}-{max(values):.0f}",
                         "vs torch": f"{median / torch_median:.2f}x" if torch_median else "",
                         "GFLOP/s": round(median * flops / 1e9, 1),
                         "share of best GEMM": f"{median * flops / 1e9 / best_gemm:.0%}",
                         "TF thread pools": "" if label == "torch" else model["cpu_threads"]["chosen"]})
    return rows


def print_gemm(gemm, where):
    print(f"large GEMM (2048^3, float32; {where}): " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in gemm.items()),
          flush=True)


def run_in_children(names, args):
    """Each model in a process of its own, as each training run is (TensorFlow's pools are per process); the
    shares are of the GEMM rates this process measures first, with TensorFlow's default pools."""
    results = {"cpu": cpu_description(), "gemm_gflops": gemm_rates(), "models": {}}  # GEMM with default pools
    print_gemm(results["gemm_gflops"], "this process, TensorFlow's default pools")
    for name in names:
        output = os.path.join(args.output, name)
        child = subprocess.run([sys.executable, __file__, "--models", name, "--repetitions", str(args.repetitions),
                                "--steps", str(args.steps), "--variants", args.variants, "--cpu-threads",
                                args.cpu_threads, "--output", output])
        if child.returncode:
            raise SystemExit(f"the {name} process failed (exit code {child.returncode}); its output is above")
        with open(os.path.join(output, "results.json"), encoding="utf-8") as file:
            results["models"].update(json.load(file)["models"])
    return results


def run_here(names, args):
    """The models in this process, after its thread pools are set as `--cpu-threads` says."""
    threads = choose_cpu_threads(args.cpu_threads, backbone_arguments(names[0]), *MODELS[names[0]][-2:])
    print(f"CPU: {cpu_description()}; TF {tf.__version__}, Keras {keras.__version__}; TF thread pools: "
          f"{describe_cpu_threads(threads)}; torch threads: {torch_threads()}", flush=True)
    gemm = gemm_rates()
    print_gemm(gemm, "this process" + (", one thread per TensorFlow op" if threads["chosen"] == "parallel_ops" else ""))
    results = {"cpu": cpu_description(), "gemm_gflops": gemm, "models": {}}
    for name in names:
        kind, vocabulary, embedding, hidden, layers, batch, time_steps = MODELS[name]
        variants = [v for v in args.variants.split(",") if v and (kind == "lm" or not v.startswith("sampled"))]
        rates = measure(name, args.repetitions, args.steps, variants)
        results["models"][name] = {"tokens_per_second": rates, "cpu_threads": threads, "process_gemm_gflops": gemm,
                                   "flops_per_token": flops_per_token(kind, vocabulary, embedding, hidden, layers)}
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {sorted(MODELS)}")
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument("--steps", type=int, default=8, help="training steps per repetition")
    parser.add_argument("--variants", default="",
                        help=f"comma-separated extra textlstm runs, of {VARIANTS} (LM only: sampled softmax 1024)")
    parser.add_argument("--cpu-threads", default="auto", choices=CPU_THREADS,
                        help="TensorFlow's pools (textlstm.cpu_threads); 'auto' chooses per model as training does")
    parser.add_argument("--output", default="runs/training_speed", help="folder for results.json")
    args = parser.parse_args()
    names = [name.strip() for name in args.models.split(",")]
    bad_variants = sorted(set(filter(None, args.variants.split(","))) - set(VARIANTS))
    if bad_variants:
        parser.error(f"--variants: unknown {bad_variants}; choose from {VARIANTS}")
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {sorted(MODELS)}")

    many = args.cpu_threads == "auto" and len(names) > 1
    results = run_in_children(names, args) if many else run_here(names, args)
    rows = table_rows(results)
    print(f"CPU: {results['cpu']}")
    print(markdown_table(rows, list(rows[0])))
    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "results.json"), "w", encoding="utf-8") as file:
        json.dump(results, file, indent=1)


if __name__ == "__main__":
    main()
