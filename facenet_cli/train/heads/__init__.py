"""Classifier heads: the logits layer over the training identities, one module per head.

Each head is a Keras layer that owns the class weights and maps ``(prelogits, labels)`` to the
logits fed to softmax cross-entropy. It lives outside the embedding model, so the exported model
never contains it. The names are the rows of ``facenet_cli.train.registry.HEADS``.
"""

from __future__ import annotations

from typing import Any


def create_head(name: str, nrof_classes: int, *, scale: float | None = None,
                margin: float | None = None, easy_margin: bool = False,
                weight_decay: float = 0.0, layer_name: str = "Logits") -> Any:  # fmt: skip
    """The head registered as ``name`` over ``nrof_classes`` identities (``scale`` / ``margin``
    None: the head's published values; ``easy_margin`` only means something to ArcFace).

    Raises:
        InputError: an unknown head (the message lists them).
    """
    from facenet_cli.train.registry import head_class

    return head_class(name)(nrof_classes, scale=scale, margin=margin, easy_margin=easy_margin,
                            weight_decay=weight_decay, name=layer_name)  # fmt: skip
