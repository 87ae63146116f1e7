"""Task: what every task model on the shared backbone has in common (keras-hub's Task role)."""

import keras


class Task(keras.Model):
    """A task head on an `LSTMBackbone`, with an optional preprocessor.

    Subclasses put `backbone` and `preprocessor` in their `get_config`;
    `from_config` rebuilds both before calling `__init__`.

    Mixed precision lives on the backbone (`LSTMBackbone(dtype="mixed_float16")`):
    the task itself stays float32, so its softmax and loss are computed in
    float32, and `compile` wraps the optimizer in Keras's
    `LossScaleOptimizer` when the backbone computes in float16.
    """

    def compile(self, optimizer="adam", **kwargs):
        if isinstance(optimizer, str):
            optimizer = keras.optimizers.get(optimizer)
        if (self.backbone.dtype_policy.name == "mixed_float16"
                and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer)):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)  # float16 gradients underflow unscaled
        super().compile(optimizer=optimizer, **kwargs)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        if config.get("preprocessor") is not None:
            config["preprocessor"] = keras.saving.deserialize_keras_object(config["preprocessor"])
        return cls(**config)
