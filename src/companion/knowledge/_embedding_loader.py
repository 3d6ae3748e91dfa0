"""Choosing the embedder the settings ask for: the exported MiniLM model, or none."""

from __future__ import annotations

import logging
from pathlib import Path

from companion.config import Settings
from companion.errors import FeatureUnavailable
from companion.knowledge._embedder import Embedder

__all__ = ["load_embedder", "model_dir"]

_log = logging.getLogger("companion.knowledge")


def model_dir(settings: Settings) -> Path:
    """Where `companion models export` puts the ONNX model."""
    return settings.data_dir / "models" / "all-MiniLM-L6-v2"


def load_embedder(settings: Settings) -> Embedder | None:
    """The MiniLM embedder when exported (and asked for), else None (BM25 only)."""
    if settings.knowledge_embedder == "none":
        return None
    directory = model_dir(settings)
    if not (directory / "manifest.json").exists():
        if settings.knowledge_embedder == "minilm":
            raise FeatureUnavailable(
                f"COMPANION_KNOWLEDGE_EMBEDDER=minilm but no model is exported in {directory}: "
                "run `companion models export` once"
            )
        _log.info("no embedding model in %s: vector and hybrid search are off", directory)
        return None
    from companion.knowledge._onnx_embedder import OnnxEmbedder

    try:
        return OnnxEmbedder(directory)
    except FeatureUnavailable:
        if settings.knowledge_embedder == "minilm":
            raise
        _log.warning("embedding model present but the embeddings extra is not installed")
        return None
