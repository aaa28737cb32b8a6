"""The model registry: names -> builder functions, resolved lazily.

Every builder has the signature
``build(image_size=160, embedding_size=128, keep_probability=1.0, weight_decay=0.0, **kwargs)``
and returns a Keras model mapping standardised float images ``(N, H, W, 3)`` to the
pre-normalisation embedding ``(N, embedding_size)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from facenet_cli.errors import InputError

# name -> "module:function"; modules are imported only when a model is built.
_REGISTRY: dict[str, str] = {
    "inception_resnet_v1": "facenet_cli.models.inception_resnet_v1:inception_resnet_v1",
    "inception_resnet_v2": "facenet_cli.models.inception_resnet_v2:inception_resnet_v2",
    "squeezenet": "facenet_cli.models.squeezenet:squeezenet",
    "small": "facenet_cli.models.small:small",
    "demo_small": "facenet_cli.models.small:demo_small",
}


class UnknownModelError(InputError):
    """The ``--model-def`` names no registered model and no importable function."""


def register(name: str, target: str) -> None:
    """Register ``target`` ("package.module:function") under ``name``."""
    _REGISTRY[name] = target


def model_names() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_REGISTRY)


def resolve_model_def(spec: str) -> tuple[str, Callable[..., Any]]:
    """Resolve a ``--model-def`` to ``(canonical_name, builder)``.

    Accepts registry names (``inception_resnet_v1``), the original's module spellings
    (``models.inception_resnet_v1``) and ``package.module:function`` for a user's own model.

    Raises:
        UnknownModelError: nothing matches; the message lists the known names.
    """
    name = spec.strip()
    if ":" in name and name not in _REGISTRY:
        target = name
    else:
        key = name.removeprefix("models.").removeprefix("src.models.").replace("-", "_")
        if key not in _REGISTRY:
            raise UnknownModelError(
                f"unknown model {spec!r}; known models: {', '.join(model_names())} "
                "(or package.module:function)"
            )
        name, target = key, _REGISTRY[key]
    module_name, _, func_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownModelError(f"model {spec!r}: cannot import {module_name} ({exc})") from None
    builder = getattr(module, func_name, None)
    if not callable(builder):
        raise UnknownModelError(f"model {spec!r}: {module_name} has no function {func_name!r}")
    return name, builder


def create_model(name: str, embedding_size: int = 128, image_size: int = 160, **kwargs: Any) -> Any:
    """Build a registered model (the stable entry point for scripts and other tools).

    Args:
        name: a registry name, an original spelling or ``package.module:function``.
        embedding_size: size of the (pre-normalisation) embedding.
        image_size: side of the square input.
        **kwargs: passed to the builder (``keep_probability``, ``weight_decay``, ...).

    Returns:
        A ``keras.Model`` from ``(N, image_size, image_size, 3)`` to ``(N, embedding_size)``.
    """
    _, builder = resolve_model_def(name)
    return builder(image_size=image_size, embedding_size=embedding_size, **kwargs)
