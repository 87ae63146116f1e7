"""Inside the cell: every gate of a trained LSTM, GRU or peephole LSTM, recomputed from its own weights.

Fused recurrent kernels (cuDNN, Keras's `LSTM` and `GRU`) return only h and
c. `unroll` runs an `LSTMBackbone` again, step by step in NumPy, from each
layer's weights with the equations below, and records every gate; the tests
check that its h and c equal the fused layer's (max abs diff < 1e-5) for
LSTM, GRU and peephole LSTM, one direction or two, with carried state and
padded batches. `inspect` does this for raw texts through a model's
preprocessor. `unroll` also takes `Intervention`s (set units of h or c to
given values at given positions while the stack runs), which the
number-unit ablations and activation patching of `textlstm.probes.number_units` use.

LSTM (Hochreiter & Schmidhuber 1997, with a forget gate, Gers et al. 2000),
in Keras's layout: kernel W (input, 4·units), recurrent kernel U (units,
4·units) and bias b (4·units,), the gates in the order i, f, g, o::

    i_t = σ(W_i·x_t + U_i·h_{t-1} + b_i)      input gate
    f_t = σ(W_f·x_t + U_f·h_{t-1} + b_f)      forget gate
    g_t = tanh(W_g·x_t + U_g·h_{t-1} + b_g)   candidate (Keras's "c" block)
    o_t = σ(W_o·x_t + U_o·h_{t-1} + b_o)      output gate
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    h_t = o_t ⊙ tanh(c_t)

Peephole LSTM (`textlstm.models.cells.PeepholeLSTMCell`, Gers &
Schmidhuber 2000): the same, plus p_i ⊙ c_{t-1} in i_t, p_f ⊙ c_{t-1} in
f_t and p_o ⊙ c_t in o_t.

GRU (Cho et al. 2014) in Keras's layout: gates in the order z, r, n; with
`reset_after=True` (Keras's default, cuDNN's convention) the bias is
(2, 3·units), an input row b and a recurrent row b'::

    z_t = σ(W_z·x_t + b_z + U_z·h_{t-1} + b'_z)       update gate
    r_t = σ(W_r·x_t + b_r + U_r·h_{t-1} + b'_r)       reset gate
    n_t = tanh(W_n·x_t + b_n + r_t ⊙ (U_n·h_{t-1} + b'_n))   candidate
    h_t = z_t ⊙ h_{t-1} + (1 - z_t) ⊙ n_t

(`reset_after=False`: n_t = tanh(W_n·x_t + b_n + U_n·(r_t ⊙ h_{t-1}))).

Conventions: the recorded arrays are `(batch, time, units)`, indexed by the
input position for both directions (as `Bidirectional` returns its
outputs); a masked (padding) step changes no state and records 0. Dropout
is off (inference).

Example:
>>> from textlstm.models import LanguageModel, LSTMBackbone
>>> from textlstm.preprocessors import LanguageModelPreprocessor
>>> from textlstm.tokenizers import WordTokenizer
>>> tokenizer = WordTokenizer.from_texts(["the cat sat on the mat"])
>>> lm = LanguageModel(LSTMBackbone(tokenizer.vocabulary_size(), 8, 8, num_layers=2),
...                    preprocessor=LanguageModelPreprocessor.for_mode(tokenizer, "stream"))
>>> trace = inspect(lm, ["the cat sat"])[0]
>>> trace.tokens, trace.gate("f", layer=1).shape
(['</s>', 'the', 'cat', 'sat', '</s>'], (5, 8))
"""

import dataclasses

import numpy as np

from textlstm.reports import plt
from textlstm.runs import atomic_path
from textlstm.tokenizers import PAD_ID

GATES = {
    "lstm": ("i", "f", "g", "o", "c", "h"),
    "peephole_lstm": ("i", "f", "g", "o", "c", "h"),
    "gru": ("z", "r", "n", "h"),
}
DIRECTIONS = ("forward", "backward")


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


ACTIVATIONS = {
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "relu": lambda x: np.maximum(x, 0.0),
    "hard_sigmoid": lambda x: np.clip(x / 6.0 + 0.5, 0.0, 1.0),  # Keras 3: relu6(x + 3) / 6
    "linear": lambda x: x,
}


@dataclasses.dataclass
class Intervention:
    """Sets some units of one layer's h and/or c while `unroll` runs.

    After step t computes (c_t, h_t), the chosen units are overwritten at
    the positions where `positions[:, t]` is true, and the overwritten
    values are what the next step and the next layer see. Setting c alone
    in an LSTM recomputes those units' h_t = o_t ⊙ tanh(c_t) (in a peephole
    LSTM with o_t recomputed from the new c_t).

    Args:
        layer: int, the layer (0 = bottom).
        units: sequence of int, unit indices in that layer (and direction).
        h: None, a float, or an array broadcastable to `(batch, time, len(units))`.
        c: the same for the cell state (LSTM and peephole LSTM only).
        positions: None (every real token) or a bool array `(batch, time)`.
        direction: "forward" or "backward".
    """

    layer: int
    units: list
    h: object = None
    c: object = None
    positions: object = None
    direction: str = "forward"


@dataclasses.dataclass
class Unrolled:
    """What `unroll` returns.

    Attributes:
        layers: per layer, a dict direction -> {gate name: array (batch, time, units)}.
        outputs: the top layer's sequence `(batch, time, output_dim)` (directions
            concatenated), as `LSTMBackbone.call` returns it on real tokens;
            0 on padding (where Keras's generic kernel repeats the last output).
        final_states: per layer, the list of final states in the backbone's
            order ([h, c] per direction for LSTMs, [h] for GRUs).
    """

    layers: list
    outputs: np.ndarray
    final_states: list


def _numpy(variable):
    return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable, "float32")


def _directions(layer, bidirectional):
    """(name, Keras RNN layer) per direction of one backbone layer."""
    if bidirectional:
        return (("forward", layer.forward_layer), ("backward", layer.backward_layer))
    return (("forward", layer),)


def _activation(name, setting):
    if name not in ACTIVATIONS:
        raise ValueError(f"`{setting}` {name!r} has no NumPy equivalent here; known: {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[name]


def _broadcast(values, batch, time, count):
    return np.broadcast_to(np.asarray(values, "float32"), (batch, time, count))


def _prepare_interventions(interventions, layer, direction, mask, cell_type):
    """The interventions on (layer, direction), with their values and positions broadcast."""
    prepared = []
    batch, time = mask.shape
    for intervention in interventions:
        if intervention.layer != layer or intervention.direction != direction:
            continue
        units = np.asarray(intervention.units, "int64")
        if intervention.c is not None and cell_type == "gru":
            raise ValueError(f"`Intervention.c` is set but a GRU has no cell state (layer {layer}).")
        positions = mask if intervention.positions is None else np.asarray(intervention.positions, bool) & mask
        prepared.append((
            units,
            None if intervention.h is None else _broadcast(intervention.h, batch, time, units.size),
            None if intervention.c is None else _broadcast(intervention.c, batch, time, units.size),
            positions,
        ))
    return prepared


def _lstm_direction(cell, cell_type, inputs, mask, state, order, activation, recurrent_activation,
                    interventions, record):
    """One direction of an LSTM (or peephole LSTM) layer, step by step."""
    batch, time, _ = inputs.shape
    units = cell.units
    kernel, recurrent_kernel = _numpy(cell.kernel), _numpy(cell.recurrent_kernel)
    projected = inputs @ kernel  # (batch, time, 4 * units), hoisted out of the loop
    if cell.use_bias:
        projected = projected + _numpy(cell.bias)
    peepholes = None
    if cell_type == "peephole_lstm":
        peepholes = [_numpy(w) for w in (cell.input_peephole, cell.forget_peephole, cell.output_peephole)]
    h, c = (np.array(s, "float32") for s in state)  # (batch, units) each
    recorded = {name: np.zeros((batch, time, units), "float32") for name in record}
    for t in order:
        z = projected[:, t] + h @ recurrent_kernel  # (batch, 4 * units)
        z_i, z_f, z_g, z_o = np.split(z, 4, axis=-1)
        if peepholes is not None:
            z_i, z_f = z_i + peepholes[0] * c, z_f + peepholes[1] * c
        i, f, g = recurrent_activation(z_i), recurrent_activation(z_f), activation(z_g)
        c_new = f * c + i * g
        o = recurrent_activation(z_o + peepholes[2] * c_new if peepholes is not None else z_o)
        h_new = o * activation(c_new)
        for unit_index, h_values, c_values, positions in interventions:
            rows = positions[:, t]
            if c_values is not None:
                c_new[np.ix_(rows, unit_index)] = c_values[rows, t]
                if peepholes is not None:  # the output gate looks at the new cell state
                    o = recurrent_activation(z_o + peepholes[2] * c_new)
                if h_values is None:
                    h_new[np.ix_(rows, unit_index)] = (o * activation(c_new))[np.ix_(rows, unit_index)]
            if h_values is not None:
                h_new[np.ix_(rows, unit_index)] = h_values[rows, t]
        step = mask[:, t][:, None]  # (batch, 1)
        h, c = np.where(step, h_new, h), np.where(step, c_new, c)
        values = {"i": i, "f": f, "g": g, "o": o, "c": c_new, "h": h_new}
        for name in record:
            recorded[name][:, t] = np.where(step, values[name], 0.0)
    return recorded, [h, c]


def _gru_direction(cell, inputs, mask, state, order, activation, recurrent_activation, interventions, record):
    """One direction of a GRU layer, step by step (Keras's `reset_after` convention or not)."""
    batch, time, _ = inputs.shape
    kernel, recurrent_kernel = _numpy(cell.kernel), _numpy(cell.recurrent_kernel)
    input_bias = recurrent_bias = 0.0
    if cell.use_bias:
        bias = _numpy(cell.bias)
        input_bias, recurrent_bias = (bias[0], bias[1]) if cell.reset_after else (bias, 0.0)
    projected = inputs @ kernel + input_bias  # (batch, time, 3 * units)
    (h,) = (np.array(s, "float32") for s in state)
    recorded = {name: np.zeros((batch, time, cell.units), "float32") for name in record}
    for t in order:
        x_z, x_r, x_n = np.split(projected[:, t], 3, axis=-1)
        if cell.reset_after:
            u_z, u_r, u_n = np.split(h @ recurrent_kernel + recurrent_bias, 3, axis=-1)
            z, r = recurrent_activation(x_z + u_z), recurrent_activation(x_r + u_r)
            n = activation(x_n + r * u_n)
        else:
            u_z, u_r = np.split(h @ recurrent_kernel[:, : 2 * cell.units], 2, axis=-1)
            z, r = recurrent_activation(x_z + u_z), recurrent_activation(x_r + u_r)
            n = activation(x_n + (r * h) @ recurrent_kernel[:, 2 * cell.units :])
        h_new = z * h + (1.0 - z) * n
        for unit_index, h_values, _, positions in interventions:
            rows = positions[:, t]
            if h_values is not None:
                h_new[np.ix_(rows, unit_index)] = h_values[rows, t]
        step = mask[:, t][:, None]
        h = np.where(step, h_new, h)
        values = {"z": z, "r": r, "n": n, "h": h_new}
        for name in record:
            recorded[name][:, t] = np.where(step, values[name], 0.0)
    return recorded, [h]


def unroll(backbone, token_ids, initial_state=None, interventions=(), record=None):
    """Runs `backbone` on `token_ids` step by step, recording gates, with optional interventions.

    Args:
        backbone: an `LSTMBackbone` (any cell type, one or two directions).
        token_ids: int array `(batch, time)`, right padded with 0.
        initial_state: None (zeros) or the backbone's state format: per
            layer a list of `(batch, hidden_dim)` arrays, as
            `LSTMBackbone.call(..., return_state=True)` returns.
        interventions: `Intervention`s applied while the stack runs.
        record: gate names to keep (default: all of the cell type's, see
            `GATES`); the top layer's h is always computed.

    Returns:
        An `Unrolled`.
    """
    cell_type = backbone.cell_type
    record = GATES[cell_type] if record is None else tuple(record)
    unknown = [name for name in record if name not in GATES[cell_type]]
    if unknown:
        raise ValueError(f"`record` has {unknown!r}, not gates of a {cell_type}; known: {GATES[cell_type]}.")
    for intervention in interventions:
        if not 0 <= intervention.layer < backbone.num_layers:
            raise ValueError(f"`Intervention.layer` must be in [0, {backbone.num_layers}), "
                             f"received {intervention.layer!r}.")
        if intervention.direction not in DIRECTIONS[: 2 if backbone.bidirectional else 1]:
            raise ValueError(f"`Intervention.direction` {intervention.direction!r} does not exist in this backbone.")
        units = np.asarray(intervention.units)
        if units.size and (units.min() < 0 or units.max() >= backbone.hidden_dim):
            raise ValueError(f"`Intervention.units` must be in [0, {backbone.hidden_dim}), received "
                             f"{list(intervention.units)!r}.")
    token_ids = np.asarray(token_ids)
    if token_ids.ndim != 2:
        raise ValueError(f"`token_ids` must be (batch, time), received shape {token_ids.shape}.")
    activation = _activation(backbone.activation, "activation")
    recurrent_activation = _activation(backbone.recurrent_activation, "recurrent_activation")
    batch, time = token_ids.shape
    mask = token_ids != PAD_ID  # (batch, time)
    x = _numpy(backbone.token_embedding.embeddings)[token_ids]  # (batch, time, embedding_dim)
    per_direction = 1 if cell_type == "gru" else 2
    record_set = tuple(dict.fromkeys(record + ("h",)))
    layers, final_states = [], []
    for index, layer in enumerate(backbone.recurrent_layers):
        if initial_state is None:
            states = [np.zeros((batch, backbone.hidden_dim), "float32")] * backbone.states_per_layer
        else:
            states = [_numpy(s) for s in initial_state[index]]
        traces, finals, outputs = {}, [], []
        for position, (direction, rnn) in enumerate(_directions(layer, backbone.bidirectional)):
            order = range(time) if direction == "forward" else range(time - 1, -1, -1)
            state = states[position * per_direction : (position + 1) * per_direction]
            chosen = _prepare_interventions(interventions, index, direction, mask, cell_type)
            if cell_type == "gru":
                recorded, final = _gru_direction(rnn.cell, x, mask, state, order, activation,
                                                 recurrent_activation, chosen, record_set)
            else:
                recorded, final = _lstm_direction(rnn.cell, cell_type, x, mask, state, order, activation,
                                                  recurrent_activation, chosen, record_set)
            outputs.append(recorded["h"])
            traces[direction] = {name: recorded[name] for name in record}
            finals.extend(final)
        x = np.concatenate(outputs, axis=-1)  # (batch, time, output_dim): the next layer's input
        layers.append(traces)
        final_states.append(finals)
    return Unrolled(layers=layers, outputs=x, final_states=final_states)


@dataclasses.dataclass
class CellTrace:
    """Every gate of every layer over one text, as `inspect` returns it.

    Attributes:
        text: the text as given.
        tokens: the model's input tokens (its start token first; `</s>`
            last where the preprocessor adds it).
        token_ids: their ids.
        cell_type: "lstm", "gru" or "peephole_lstm".
        layers: per layer, a dict direction -> {gate name: array (time, units)}.
    """

    text: str
    tokens: list
    token_ids: list
    cell_type: str
    layers: list

    def gate(self, name, layer=0, direction="forward"):
        """The `(time, units)` values of gate `name` (see `GATES`) in one layer and direction."""
        if not 0 <= layer < len(self.layers):
            raise ValueError(f"`layer` must be in [0, {len(self.layers)}), received {layer!r}.")
        if direction not in self.layers[layer]:
            raise ValueError(f"`direction` must be one of {list(self.layers[layer])}, received {direction!r}.")
        if name not in self.layers[layer][direction]:
            raise ValueError(f"`name` must be one of {list(self.layers[layer][direction])}, received {name!r}.")
        return self.layers[layer][direction][name]

    def arrays(self):
        """A flat dict `"layer{l}/{direction}/{gate}" -> (time, units)` array, for `np.savez`."""
        return {f"layer{index}/{direction}/{name}": values
                for index, layer in enumerate(self.layers)
                for direction, gates in layer.items() for name, values in gates.items()}


def inspect(model, texts, batch_size=64):
    """Every gate, cell state and output of `model`'s backbone over each text.

    Args:
        model: a textlstm task with a preprocessor (`LanguageModel`,
            `SentimentClassifier`, `AgreementClassifier`, any `TextClassifier`).
        texts: list of str, tokenized by the model's own preprocessor (the
            ids it saw in training, start token included).
        batch_size: texts per unrolled batch.

    Returns:
        A list of `CellTrace`, one per text (padding removed).
    """
    if isinstance(texts, str):
        raise ValueError(f"`texts` must be a list of strings, received the string {texts!r}.")
    preprocessor = getattr(model, "preprocessor", None)
    if getattr(model, "backbone", None) is None or preprocessor is None:
        raise ValueError(f"`model` must be a textlstm task with a backbone and a preprocessor, "
                         f"received {type(model).__name__}.")
    vocabulary = preprocessor.tokenizer.get_vocabulary()
    traces = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        token_ids = preprocessor(chunk).numpy()  # (batch, time), right padded
        unrolled = unroll(model.backbone, token_ids)
        for row, text in enumerate(chunk):
            length = int((token_ids[row] != PAD_ID).sum())
            ids = token_ids[row, :length].tolist()
            layers = [{direction: {name: values[row, :length] for name, values in gates.items()}
                       for direction, gates in layer.items()} for layer in unrolled.layers]
            traces.append(CellTrace(text=text, tokens=[vocabulary[i] for i in ids], token_ids=ids,
                                    cell_type=model.backbone.cell_type, layers=layers))
    return traces


def save_trace(trace, path):
    """Writes a trace's arrays (`CellTrace.arrays()`), tokens, ids and text to one `.npz` file, atomically."""
    with atomic_path(path) as temporary_path:
        with open(temporary_path, "wb") as f:
            np.savez_compressed(f, tokens=np.asarray(trace.tokens), token_ids=np.asarray(trace.token_ids),
                                text=np.asarray(trace.text), cell_type=np.asarray(trace.cell_type), **trace.arrays())


_COLOR_SCALES = {  # gate -> (colormap, low, high); None = symmetric around 0 from the data
    "i": ("viridis", 0.0, 1.0), "f": ("viridis", 0.0, 1.0), "o": ("viridis", 0.0, 1.0),
    "z": ("viridis", 0.0, 1.0), "r": ("viridis", 0.0, 1.0),
    "g": ("RdBu_r", -1.0, 1.0), "n": ("RdBu_r", -1.0, 1.0), "h": ("RdBu_r", -1.0, 1.0), "c": ("RdBu_r", None, None),
}


def plot_gate_heatmap(trace, path, layer=0, direction="forward", gates=None, units=None):
    """A heatmap PNG per gate (rows: units, columns: the text's tokens) for one layer and direction.

    Args:
        trace: a `CellTrace`.
        path: where the PNG goes.
        gates: gate names to show (default: all of the cell type's).
        units: unit indices to show (default: all).
    """
    gates = list(trace.layers[layer][direction]) if gates is None else list(gates)
    units = np.arange(trace.gate(gates[0], layer, direction).shape[1]) if units is None else np.asarray(units)
    width = max(6.0, 0.45 * len(trace.tokens) + 2.0)
    height = min(3.0, 0.6 + 0.02 * len(units)) * len(gates) + 0.6
    figure, axes = plt.subplots(len(gates), 1, figsize=(width, height), sharex=True, squeeze=False)
    for axis, name in zip(axes[:, 0], gates):
        values = trace.gate(name, layer, direction)[:, units].T  # (units, time)
        colormap, low, high = _COLOR_SCALES[name]
        if low is None:
            high = float(np.abs(values).max()) or 1.0
            low = -high
        image = axis.imshow(values, aspect="auto", cmap=colormap, vmin=low, vmax=high, interpolation="nearest")
        axis.set_ylabel(f"{name}\nunit")
        figure.colorbar(image, ax=axis, fraction=0.02, pad=0.01)
    axes[-1, 0].set_xticks(range(len(trace.tokens)))
    axes[-1, 0].set_xticklabels(trace.tokens, rotation=60, ha="right", fontsize=8)
    axes[0, 0].set_title(f"{trace.cell_type} layer {layer} ({direction}): {trace.text[:80]}", fontsize=9)
    figure.tight_layout()
    with atomic_path(path) as temporary_path:
        figure.savefig(temporary_path, dpi=100, format="png")
    plt.close(figure)


def check_units(trace, units, gate="c", direction="forward"):
    """Raises a ValueError naming the layer, gate or unit that `trace` does not have."""
    for layer, unit in units:
        size = trace.gate(gate, layer, direction).shape[1]
        if not 0 <= unit < size:
            raise ValueError(f"`units`: layer {layer} has units 0-{size - 1}, received unit {unit!r}.")


def _word_positions(tokens):
    """Each token's x position (its word's index, pieces of a word spread within it) and each word's text.

    SentencePiece pieces that do not open a word (no leading "▁") join the
    word before them, so texts whose words split into different numbers of
    pieces ("author" / "author s") still line up word by word.
    """
    pieces = any(token.startswith("▁") for token in tokens)
    groups = []
    for token in tokens:
        if groups and pieces and not token.startswith(("▁", "<")) and not groups[-1][0].startswith("<"):
            groups[-1].append(token)
        else:
            groups.append([token])
    x = [index + offset / len(group) for index, group in enumerate(groups) for offset in range(len(group))]
    return x, ["".join(group).lstrip("▁") for group in groups]


def plot_unit_traces(traces, units, path, gate="c", direction="forward", title=None):
    """The values of chosen units over several texts (e.g. a minimal pair), one panel per unit, word by word.

    Args:
        traces: list of `CellTrace` (e.g. "the cat ... was" and "the cats ... were").
        units: list of (layer, unit) pairs.
        path: where the PNG goes.
        gate: which gate or state to trace ("c" is where Lakretz et al. 2019 found number).
    """
    check_units(traces[0], units, gate, direction)
    placed = [_word_positions(trace.tokens) for trace in traces]  # (x per token, word per word index)
    length = max(len(words) for _, words in placed)
    figure, axes = plt.subplots(len(units), 1, figsize=(max(6.0, 0.6 * length + 2.0), 2.2 * len(units) + 0.8),
                                sharex=True, squeeze=False)
    for axis, (layer, unit) in zip(axes[:, 0], units):
        for trace, (x, _) in zip(traces, placed):
            axis.plot(x, trace.gate(gate, layer, direction)[:, unit], marker="o", label=trace.text[:60])
        axis.axhline(0.0, color="grey", linewidth=0.5)
        axis.set_ylabel(f"{gate}, layer {layer}\nunit {unit}")
        axis.grid(True, alpha=0.3)
    labels = [" / ".join(dict.fromkeys(words[i] for _, words in placed if i < len(words))) for i in range(length)]
    axes[-1, 0].set_xticks(range(length))
    axes[-1, 0].set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    axes[0, 0].legend(fontsize=8, loc="best")
    axes[0, 0].set_title(title or f"unit {gate} over the texts", fontsize=9)
    figure.tight_layout()
    with atomic_path(path) as temporary_path:
        figure.savefig(temporary_path, dpi=100, format="png")
    plt.close(figure)
