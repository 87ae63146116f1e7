"""Task: what every task model on the shared backbone has in common (keras-hub's Task role)."""

import keras


class Task(keras.Model):
    """A task head on an `LSTMBackbone`, with an optional preprocessor.

    Subclasses put `backbone` and `preprocessor` in their `get_config`;
    `from_config` rebuilds both before calling `__init__`.
    """

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        if config.get("preprocessor") is not None:
            config["preprocessor"] = keras.saving.deserialize_keras_object(config["preprocessor"])
        return cls(**config)
