"""The `Embedder` protocol: turning texts into unit vectors, with the model they came from."""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Protocol

from companion.knowledge._models import EmbeddingInfo

__all__ = ["Embedder", "to_float32_bytes"]


class Embedder(Protocol):
    """A text embedding model; `embed` is blocking and is called off the event loop."""

    @property
    def info(self) -> EmbeddingInfo:
        """The model's name, version and vector dimension."""

    def embed(self, texts: Sequence[str]) -> Sequence[Sequence[float]]:
        """One unit-length vector per text."""


def to_float32_bytes(vector: Sequence[float]) -> bytes:
    """The little-endian float32 bytes a store keeps for `vector`."""
    return array("f", vector).tobytes()
