"""Training objectives and classifier heads by name: one table row each (no TensorFlow here).

``--loss triplet`` trains the triplet objective; every head name trains the classification
objective with that head. A new head is one module under ``train/heads/`` and one row in
``HEADS``; a new objective is one module under ``train/objectives/`` and one row in
``OBJECTIVES`` (plus its row in ``LOSS_OBJECTIVES`` when it is a ``--loss`` of its own).
"""

from __future__ import annotations

import importlib
from typing import Any

from facenet_cli.errors import InputError

OBJECTIVES: dict[str, str] = {
    "triplet": "facenet_cli.train.objectives.triplet:TripletObjective",
    "classification": "facenet_cli.train.objectives.classification:ClassificationObjective",
}
HEADS: dict[str, str] = {
    "softmax": "facenet_cli.train.heads.softmax:SoftmaxHead",
    "arcface": "facenet_cli.train.heads.arcface:ArcFaceHead",
    "cosface": "facenet_cli.train.heads.cosface:CosFaceHead",
}
# ``--loss`` values that are not a head: the objective each one trains.
LOSS_OBJECTIVES: dict[str, str] = {"triplet": "triplet"}


def loss_names() -> tuple[str, ...]:
    """Every ``--loss``: the objectives of their own, then the heads."""
    return (*LOSS_OBJECTIVES, *HEADS)


def objective_name(loss: str) -> str:
    """The objective that ``--loss`` trains.

    Raises:
        InputError: an unknown loss (the message lists them).
    """
    if loss in LOSS_OBJECTIVES:
        return LOSS_OBJECTIVES[loss]
    if loss in HEADS:
        return "classification"
    raise InputError(f"--loss {loss!r}: choose {', '.join(loss_names())}")


def is_classifier(loss: str) -> bool:
    """Whether ``--loss`` trains a classifier of the training people (a head)."""
    return loss in HEADS


def load(table: dict[str, str], name: str, what: str) -> Any:
    """The class a table row names, imported now.

    Raises:
        InputError: ``name`` is not in the table (the message lists the names).
    """
    if name not in table:
        raise InputError(f"unknown {what} {name!r}: choose {', '.join(table)}")
    module, _, attr = table[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def objective_class(loss: str) -> Any:
    """The objective class of ``--loss``."""
    return load(OBJECTIVES, objective_name(loss), "objective")


def head_class(name: str) -> Any:
    """The head class registered as ``name``."""
    return load(HEADS, name, "head")
