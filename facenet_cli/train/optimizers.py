"""Optimizers with the original recipe's constants."""

from __future__ import annotations

from typing import Any

from facenet_cli.errors import InputError

OPTIMIZERS = ("ADAGRAD", "ADADELTA", "ADAM", "RMSPROP", "MOM")


def create_optimizer(name: str, learning_rate: float) -> Any:
    """A Keras optimizer configured like the original's ``facenet.train``.

    ADAGRAD: initial accumulator 0.1; ADADELTA: rho 0.9, epsilon 1e-6; ADAM: beta1 0.9,
    beta2 0.999, epsilon 0.1; RMSPROP: decay 0.9, momentum 0.9, epsilon 1.0; MOM: Nesterov
    momentum 0.9. The learning rate is a variable the loop assigns every round.

    Raises:
        InputError: an unknown optimizer name.
    """
    import keras

    key = name.strip().upper()
    if key == "ADAGRAD":
        return keras.optimizers.Adagrad(learning_rate, initial_accumulator_value=0.1)
    if key == "ADADELTA":
        return keras.optimizers.Adadelta(learning_rate, rho=0.9, epsilon=1e-6)
    if key == "ADAM":
        return keras.optimizers.Adam(learning_rate, beta_1=0.9, beta_2=0.999, epsilon=0.1)
    if key == "RMSPROP":
        return keras.optimizers.RMSprop(learning_rate, rho=0.9, momentum=0.9, epsilon=1.0)
    if key == "MOM":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    raise InputError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
