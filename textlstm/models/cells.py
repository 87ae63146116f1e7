"""Recurrent cells beyond Keras's own: the peephole LSTM (Gers & Schmidhuber 2000)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="textlstm")
class PeepholeLSTMCell(keras.layers.LSTMCell):
    """An LSTM cell whose gates also see the cell state (Gers & Schmidhuber 2000).

    Gers, F. A. and Schmidhuber, J. (2000). Recurrent nets that time and
    count. IJCNN 2000. The input and forget gates look at the previous cell
    state, the output gate at the new one, through diagonal ("peephole")
    weights p_i, p_f, p_o (one per unit):

        i_t = σ(W_i·x_t + U_i·h_{t-1} + p_i ⊙ c_{t-1} + b_i)
        f_t = σ(W_f·x_t + U_f·h_{t-1} + p_f ⊙ c_{t-1} + b_f)
        g_t = tanh(W_g·x_t + U_g·h_{t-1} + b_g)
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
        o_t = σ(W_o·x_t + U_o·h_{t-1} + p_o ⊙ c_t + b_o)
        h_t = o_t ⊙ tanh(c_t)

    W, U and b keep `keras.layers.LSTMCell`'s layout (gates in the order
    i, f, g, o along the last axis), so a plain LSTM's weights load into it
    and, with the peepholes at zero, it computes the same function. No fused
    kernel (cuDNN or Keras's) implements peepholes: wrapped in
    `keras.layers.RNN`, it runs step by step.

    Args:
        units: int, size of h and c.
        peephole_initializer: initializer of p_i, p_f and p_o; small
            uniform values (±0.1), so training starts near a plain LSTM.
        **kwargs: `keras.layers.LSTMCell`'s arguments (activation,
            recurrent_activation, use_bias, initializers, dropout,
            recurrent_dropout, ...).

    Example:
    >>> import numpy as np
    >>> layer = keras.layers.RNN(PeepholeLSTMCell(4), return_sequences=True, return_state=True)
    >>> sequence, h, c = layer(np.ones((2, 3, 5), "float32"))
    >>> tuple(sequence.shape), tuple(c.shape)
    ((2, 3, 4), (2, 4))
    """

    def __init__(self, units, peephole_initializer=None, **kwargs):
        super().__init__(units, **kwargs)
        self.peephole_initializer = keras.initializers.get(
            peephole_initializer or keras.initializers.RandomUniform(-0.1, 0.1))

    def build(self, input_shape):
        super().build(input_shape)
        for name in ("input_peephole", "forget_peephole", "output_peephole"):
            setattr(self, name, self.add_weight(shape=(self.units,), name=name, initializer=self.peephole_initializer))

    def call(self, inputs, states, training=False):
        h_tm1, c_tm1 = states  # (batch, units) each
        if training and 0.0 < self.dropout < 1.0:
            inputs = inputs * self.get_dropout_mask(inputs)
        if training and 0.0 < self.recurrent_dropout < 1.0:
            h_tm1 = h_tm1 * self.get_recurrent_dropout_mask(h_tm1)
        z = ops.matmul(inputs, self.kernel) + ops.matmul(h_tm1, self.recurrent_kernel)  # (batch, 4 * units)
        if self.use_bias:
            z = z + self.bias
        z_i, z_f, z_g, z_o = ops.split(z, 4, axis=-1)
        i = self.recurrent_activation(z_i + self.input_peephole * c_tm1)
        f = self.recurrent_activation(z_f + self.forget_peephole * c_tm1)
        c = f * c_tm1 + i * self.activation(z_g)
        o = self.recurrent_activation(z_o + self.output_peephole * c)
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self):
        config = super().get_config()
        config["peephole_initializer"] = keras.initializers.serialize(self.peephole_initializer)
        return config
