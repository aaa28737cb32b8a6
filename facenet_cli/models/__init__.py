"""Embedding models and their registry (``create_model``)."""

from facenet_cli.models.registry import create_model, model_names, register, resolve_model_def

__all__ = ["create_model", "model_names", "register", "resolve_model_def"]
