"""Training tokens/s of textlstm's `LSTMBackbone` on a GPU under Keras's JAX and torch backends, against PyTorch.

    python benchmarks/gpu_backends_speed.py [--backends jax,torch] [--repetitions 5] [--steps 20]
        [--models ptb_small,ptb_medium,lm_2x512,bilstm_256] [--output runs/gpu_backends_speed]

The GPU section of issues 7 and 11. The GPU machine lent to this project has
JAX and PyTorch but no TensorFlow, and textlstm's task models are TensorFlow
through and through (tokenizers, `tf.data`, losses, exports). What loads
under any Keras backend is the shared `LSTMBackbone` (and its cells), so
this times the backbone with a plain Keras head on the shapes of
`torch_reference.MODELS`:

    LM          ids (batch, time) ──► LSTMBackbone (dropout 0.2) ──► Dense(vocabulary) ──► cross-entropy
                SGD lr 20, global clipnorm 0.25 (word_language_model's recipe)
    classifier  ids ──► bidirectional LSTMBackbone ──► [final, max, mean] ──► Dropout 0.2 ──► Dense(2)
                Adam 1e-3, global clipnorm 5

trained by Keras's own `fit` (JAX: one jitted train step; torch: eager) on
random ids, in one child process per backend (a backend is fixed when Keras
is first imported). The rows per backend:

- `cudnn`: every LSTM layer has `use_cudnn=True` and the backbone is called
  with `padded=False` (no mask). Under JAX Keras then raises unless its fused
  cuDNN path runs (on a CPU these rows are refused); under torch it falls
  back silently, so PyTorch's profiler counts the cuDNN RNN ops of a step;
- `keras loop`: `use_cudnn=False`, Keras's generic loop;
- `masked` (classifier only): right-padded batches (lengths uniform in
  [time/4, time]) with the padding mask, as textlstm's classifier feeds them,
  `use_cudnn="auto"`: Keras 3.15's JAX and torch cuDNN paths take no mask,
  so this is the generic loop again;

and the PyTorch reference (`torch_reference.TorchRunner` on "cuda": cuDNN
`nn.LSTM`, the LM's hidden state carried and detached between batches; the
Keras LMs start each batch from zeros, a difference of two (batch, hidden)
copies per layer), timed before and after the Keras processes. The LM
decoders are untied on both sides here. Float32 matmuls run in TF32 on both
sides: JAX's default on a GPU with tensor cores, set for PyTorch here (its
cuDNN RNNs already allow TF32 by default).

Seconds per step: (time of `fit` over 2N steps - time over N steps) / N,
which cancels `fit`'s fixed cost per call (a repetition where the
difference is not positive is dropped and counted); medians of
`--repetitions`, min-max spread, and each row's FLOP rate as a share of the
GPU's TF32 matmul rate measured in the same run (`torch.matmul`, 8192^3).
Results go to `--output`/results.json and BENCHMARKS.md.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from torch_reference import MODELS, TorchRunner, flops_per_token, time_call, torch_matmul_rate

BACKENDS = ("jax", "torch")
GEMM_SIZE = 8192
VARIANTS = {"lm": ("cudnn", "keras loop"), "classifier": ("cudnn", "keras loop", "masked")}


def use_tf32():
    """PyTorch's float32 matmuls in TF32, as JAX's are by default on a GPU with tensor cores."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def build_keras_model(kind, vocabulary, embedding, hidden, layers, batch, time_steps, variant):
    """A compiled Keras model: `LSTMBackbone` and a head, its LSTM layers set up for `variant`."""
    import keras
    from keras import ops

    from textlstm.models import LSTMBackbone

    backbone = LSTMBackbone(vocabulary, embedding_dim=embedding, hidden_dim=hidden, num_layers=layers,
                            bidirectional=kind == "classifier", dropout=0.2)
    use_cudnn = {"cudnn": True, "keras loop": False, "masked": "auto"}[variant]
    for layer in backbone.recurrent_layers:
        for lstm in (layer.forward_layer, layer.backward_layer) if kind == "classifier" else (layer,):
            lstm.use_cudnn = use_cudnn
    # A fixed batch size: Keras's JAX cuDNN path fails on the symbolic batch dimension of `keras.Input`
    # (jax's cuDNN workspace size needs an int), and with use_cudnn=True that failure would refuse the model.
    ids = keras.Input((time_steps,), batch_size=batch, dtype="int32")
    sequence = backbone(ids, padded=variant == "masked")  # (batch, time, hidden * directions)
    if kind == "lm":
        outputs = keras.layers.Dense(vocabulary)(sequence)  # (batch, time, vocabulary)
        optimizer = keras.optimizers.SGD(20.0, global_clipnorm=0.25)
    else:
        pooled = ops.concatenate([sequence[:, -1], ops.max(sequence, axis=1), ops.mean(sequence, axis=1)], axis=-1)
        outputs = keras.layers.Dense(2)(keras.layers.Dropout(0.2)(pooled))  # (batch, 2)
        optimizer = keras.optimizers.Adam(1e-3, global_clipnorm=5.0)
    model = keras.Model(ids, outputs)
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def random_batches(kind, vocabulary, batch, time_steps, steps, masked, seed=0):
    """`steps` batches of random ids and targets; right padded with 0 when `masked`."""
    import numpy as np

    rng = np.random.RandomState(seed)
    rows = steps * batch
    if kind == "lm":
        ids = rng.randint(4, vocabulary, size=(rows, time_steps + 1)).astype("int32")
        return ids[:, :-1], ids[:, 1:]
    ids = rng.randint(4, vocabulary, size=(rows, time_steps)).astype("int32")
    if masked:
        lengths = rng.randint(time_steps // 4, time_steps + 1, size=rows)
        ids[np.arange(time_steps)[None, :] >= lengths[:, None]] = 0
    return ids, rng.randint(0, 2, size=rows).astype("int32")


def cudnn_ops(function):
    """How many fused cuDNN RNN ops (`aten::_cudnn_rnn`, forward) PyTorch dispatched while `function` ran."""
    import torch

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        function()
    return sum(event.count for event in profile.key_averages()
               if "cudnn_rnn" in event.key and "backward" not in event.key)


def describe_cudnn_ops(count, steps):
    return f"cuDNN ({count / steps:g} RNN ops a step, profiler)" if count else "loop (no cuDNN op, profiler)"


def short_error(error):
    """The line of an exception's message that speaks of cuDNN (else its first), without terminal colours."""
    lines = [line.strip() for line in str(error).replace("\x1b[1m", "").replace("\x1b[0m", "").splitlines()
             if line.strip()] or [""]
    line = next((line for line in lines if "cudnn" in line.lower()), lines[0])
    return f"{type(error).__name__}: {line}"[:200]


def keras_worker(names, repetitions, steps):
    """In a process whose KERAS_BACKEND is set: the library versions and {model: {row label: row}}.

    A row is {"tokens_per_second": [...], "kernel": ..., "dropped": n} or {"error": ...}. The kernel is read
    off the run: under torch from the profiler (`cudnn_ops`); under JAX `use_cudnn=True` proves it, since
    Keras's JAX LSTM raises rather than fall back then, and the other rows run Keras's loop by construction.
    """
    import importlib

    import keras

    backend = keras.backend.backend()
    if backend == "torch":
        use_tf32()
    versions = {"keras": keras.__version__, backend: importlib.import_module(backend).__version__}
    if backend == "jax":
        import jax

        versions["jax_default_matmul_precision"] = str(jax.config.jax_default_matmul_precision)
    results = {}
    for name in names:
        kind, vocabulary, embedding, hidden, layers, batch, time_steps = MODELS[name]
        results[name] = {}
        for variant in VARIANTS[kind]:
            label = f"keras {backend}, {variant}"
            keras.utils.set_random_seed(0)
            try:
                model = build_keras_model(kind, vocabulary, embedding, hidden, layers, batch, time_steps, variant)
                x, y = random_batches(kind, vocabulary, batch, time_steps, 2 * steps, masked=variant == "masked")

                def fit(count):
                    model.fit(x[:count * batch], y[:count * batch], batch_size=batch, epochs=1, shuffle=False,
                              verbose=0)

                fit(3)  # trace and compile
            except ValueError as error:  # use_cudnn=True where Keras's fused path cannot run
                results[name][label] = {"error": short_error(error)}
                print(f"{name}, {label}: {results[name][label]['error']}", flush=True)
                continue
            if backend == "torch":
                kernel = describe_cudnn_ops(cudnn_ops(lambda: fit(1)), 1)
            else:
                kernel = "cuDNN (use_cudnn=True)" if variant == "cudnn" else "loop"
            seconds = [(time_call(lambda: fit(2 * steps)) - time_call(lambda: fit(steps))) / steps
                       for _ in range(repetitions)]
            rates = [batch * time_steps / s for s in seconds if s > 0]
            results[name][label] = {"tokens_per_second": rates, "kernel": kernel, "dropped": len(seconds) - len(rates)}
            print(f"{name}, {label} ({kernel}): median {statistics.median(rates):,.0f} tokens/s", flush=True)
    return {"versions": versions, "results": results}


def torch_rows(names, repetitions, steps, device, label):
    """The PyTorch reference's rows, {model: {label: row}} as `keras_worker`'s."""
    results = {}
    for name in names:
        *_, batch, time_steps = MODELS[name]
        runner = TorchRunner(*MODELS[name], steps, device=device, tie_weights=False)
        kernel = describe_cudnn_ops(cudnn_ops(runner.time), steps)
        rates = [batch * time_steps / runner.time() for _ in range(repetitions)]
        results[name] = {label: {"tokens_per_second": rates, "kernel": kernel, "dropped": 0}}
        print(f"{name}, {label} ({kernel}): median {statistics.median(rates):,.0f} tokens/s", flush=True)
    return results


def machine_description(device):
    import torch

    return {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "torch": torch.__version__,
            "torch's cudnn": torch.backends.cudnn.version(), "tf32": torch.backends.cuda.matmul.allow_tf32}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"comma-separated, of {BACKENDS}")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {sorted(MODELS)}")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="N: each repetition times fit over N and 2N steps")
    parser.add_argument("--output", default="runs/gpu_backends_speed", help="folder for results.json")
    parser.add_argument("--worker-output", help=argparse.SUPPRESS)  # set for the child process of one backend
    args = parser.parse_args()
    names = [name.strip() for name in args.models.split(",")]
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = sorted(set(names) - set(MODELS)) + sorted(set(backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown {unknown}: --models takes {sorted(MODELS)}, --backends {BACKENDS}")

    if args.worker_output:
        with open(args.worker_output, "w", encoding="utf-8") as file:
            json.dump(keras_worker(names, args.repetitions, args.steps), file)
        return

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    use_tf32()
    gemm = torch_matmul_rate(GEMM_SIZE, device)
    results = torch_rows(names, args.repetitions, args.steps, device, "pytorch (before)")
    versions = machine_description(device)
    for backend in backends:
        with tempfile.NamedTemporaryFile(suffix=".json") as output:
            command = [sys.executable, __file__, "--models", ",".join(names), "--repetitions", str(args.repetitions),
                       "--steps", str(args.steps), "--worker-output", output.name]
            subprocess.run(command, env={**os.environ, "KERAS_BACKEND": backend}, check=True)
            with open(output.name, encoding="utf-8") as file:
                worker = json.load(file)
        versions.update(worker["versions"])
        for name, rows in worker["results"].items():
            results[name].update(rows)
    for name, rows in torch_rows(names, args.repetitions, args.steps, device, "pytorch (after)").items():
        results[name].update(rows)

    print(f"{versions}; torch.matmul {GEMM_SIZE}^3 in TF32: {gemm:,.0f} GFLOP/s")
    lines = ["| model | run | recurrent kernel | tokens/s (median) | spread | vs PyTorch | share of TF32 GEMM |",
             "|---|---|---|---|---|---|---|"]
    for name in names:
        kind, vocabulary, embedding, hidden, layers, *_ = MODELS[name]
        flops = flops_per_token(kind, vocabulary, embedding, hidden, layers)
        reference = statistics.median(results[name]["pytorch (before)"]["tokens_per_second"]
                                      + results[name]["pytorch (after)"]["tokens_per_second"])
        for label, row in results[name].items():
            if "error" in row:
                lines.append(f"| {name} | {label} | refused: {row['error']} | | | | |")
                continue
            values = row["tokens_per_second"]
            median = statistics.median(values)
            dropped = f" ({row['dropped']} dropped)" if row["dropped"] else ""
            lines.append(f"| {name} | {label} | {row['kernel']} | {median:,.0f} | "
                         f"{min(values):,.0f}-{max(values):,.0f}{dropped} | {median / reference:.2f}x | "
                         f"{median * flops / 1e9 / gemm:.1%} |")
    print("\n".join(lines))
    print("vs PyTorch: against the median of both PyTorch rows' repetitions.")
    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "results.json"), "w", encoding="utf-8") as file:
        json.dump({"machine": versions, "tf32_gemm_gflops": gemm, "tokens_per_second": results}, file, indent=1)


if __name__ == "__main__":
    main()
