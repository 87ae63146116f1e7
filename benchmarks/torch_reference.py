"""The model shapes of issue 11's speed benchmarks, their FLOP count, and the PyTorch reference.

Imported by `training_speed.py` (CPU, against textlstm on TensorFlow) and by
`gpu_backends_speed.py` (a GPU machine that has PyTorch and JAX but no
TensorFlow), so this module imports neither TensorFlow nor textlstm.
"""

import time

import numpy as np

# name: (kind, vocabulary, embedding, hidden, layers, batch, time steps)
MODELS = {
    "ptb_small": ("lm", 10002, 200, 200, 2, 20, 35),
    "ptb_medium": ("lm", 10002, 650, 650, 2, 20, 35),
    "lm_2x512": ("lm", 10000, 256, 512, 2, 32, 35),
    "bilstm_256": ("classifier", 20000, 256, 256, 1, 64, 64),
}


def flops_per_token(kind, vocabulary, embedding, hidden, layers):
    """Training FLOPs per token: 2 x multiply-adds forward, x3 with the backward pass."""
    directions = 2 if kind == "classifier" else 1
    recurrent = 0
    inputs = embedding
    for _ in range(layers):
        recurrent += directions * 4 * hidden * (inputs + hidden)
        inputs = hidden * directions
    output = hidden * vocabulary if kind == "lm" else 0  # the classifier's head is per text, not per token
    return 6 * (recurrent + output)


def time_call(function):
    """Wall seconds of one call of `function`."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def torch_matmul_rate(size, device="cpu", repetitions=5):
    """Best GFLOP/s of one `torch.matmul` of two `size`-square float32 matrices on `device` (TF32 if allowed)."""
    import torch

    a = torch.randn(size, size, device=device)

    def matmul():
        torch.matmul(a, a)
        if device != "cpu":
            torch.cuda.synchronize()

    matmul()
    return 2 * size**3 / min(time_call(matmul) for _ in range(repetitions)) / 1e9


class TorchRunner:
    """The PyTorch reference of the same shapes: word_language_model's RNNModel, or a BiLSTM classifier.

    The LM's decoder shares the embedding matrix when the sizes allow, as
    word_language_model's `--tied` (Press & Wolf 2017), unless
    `tie_weights=False`. On `device="cuda"` `nn.LSTM` runs PyTorch's fused
    cuDNN kernel, and `time` waits for the GPU before it reads the clock.
    """

    def __init__(self, kind, vocabulary, embedding, hidden, layers, batch, time_steps, steps, device="cpu",
                 tie_weights=True):
        import torch
        from torch import nn

        torch.manual_seed(0)
        self.torch, self.kind, self.steps, self.device = torch, kind, steps, device
        directions = 2 if kind == "classifier" else 1

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.drop = nn.Dropout(0.2)
                self.encoder = nn.Embedding(vocabulary, embedding)
                self.rnn = nn.LSTM(embedding, hidden, layers, dropout=0.2 if layers > 1 else 0.0,
                                   bidirectional=kind == "classifier")
                if kind == "lm":
                    self.decoder = nn.Linear(hidden, vocabulary)
                    if tie_weights and embedding == hidden:
                        self.decoder.weight = self.encoder.weight
                else:
                    self.head = nn.Linear(3 * directions * hidden, 2)

            def forward(self, tokens, state=None):  # tokens (time, batch)
                output, state = self.rnn(self.drop(self.encoder(tokens)), state)  # (time, batch, hidden)
                output = self.drop(output)
                if kind == "lm":
                    return self.decoder(output), state  # (time, batch, vocabulary)
                pooled = torch.cat([output[-1], output.max(0).values, output.mean(0)], dim=1)
                return self.head(self.drop(pooled)), state

        self.model = Model().to(device)
        generator = np.random.RandomState(0)

        def tensor(array):
            return torch.from_numpy(array).long().to(device)

        if kind == "lm":
            ids = generator.randint(4, vocabulary, size=(steps, time_steps + 1, batch))
            self.batches = [(tensor(b[:-1]), tensor(b[1:])) for b in ids]
        else:
            ids = generator.randint(4, vocabulary, size=(steps, time_steps, batch))
            labels = generator.randint(0, 2, size=(steps, batch))
            self.batches = [(tensor(b), tensor(y)) for b, y in zip(ids, labels)]
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.criterion = nn.CrossEntropyLoss()
        self.model.train()
        self._run(3)

    def _run(self, steps):
        torch = self.torch
        state = None
        for i in range(steps):
            tokens, targets = self.batches[i % len(self.batches)]
            if self.kind == "lm":  # word_language_model's train(): repackage, zero_grad, clip, SGD by hand
                state = None if state is None else tuple(s.detach() for s in state)
                self.model.zero_grad()
                output, state = self.model(tokens, state)
                loss = self.criterion(output.view(-1, output.shape[-1]), targets.reshape(-1))
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 0.25)
                with torch.no_grad():
                    for parameter in self.model.parameters():
                        parameter.add_(parameter.grad, alpha=-20.0)
            else:
                self.optimizer.zero_grad()
                logits, _ = self.model(tokens)
                loss = self.criterion(logits, targets)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
                self.optimizer.step()

    def _synchronize(self):
        if self.device != "cpu":
            self.torch.cuda.synchronize()

    def time(self):
        """Seconds per step."""
        self._synchronize()
        return time_call(lambda: (self._run(self.steps), self._synchronize())) / self.steps
