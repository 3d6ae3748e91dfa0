"""The `Embedder` protocol (texts into unit vectors, with the model they came from), and where a
service's embedder comes from (`EmbedderSource`: a model that may appear after the start)."""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Protocol

from companion.knowledge._models import EmbeddingInfo

__all__ = ["Embedder", "EmbedderSource", "to_float32_bytes"]


class Embedder(Protocol):
    """A text embedding model; `embed` is blocking and is called off the event loop."""

    @property
    def info(self) -> EmbeddingInfo:
        """The model's name, version and vector dimension."""

    def embed(self, texts: Sequence[str]) -> Sequence[Sequence[float]]:
        """One unit-length vector per text."""


class EmbedderSource(Protocol):
    """Where the embedder comes from, looked at again when none is loaded (no restart needed).

    `changed` is cheap (a `stat`, no reading) and may be called on every request; `load` reads the
    model (about half a second: call it off the event loop) and returns None when there is none,
    saying why in `problem`.
    """

    @property
    def problem(self) -> str | None:
        """Why no embedder is loaded, naming the step that is missing; or why it is stale."""

    def changed(self) -> bool:
        """Whether the model on disk differs from what the last `load` saw."""

    def load(self) -> Embedder | None:
        """The embedder, or None (and `problem` says why)."""


def to_float32_bytes(vector: Sequence[float]) -> bytes:
    """The little-endian float32 bytes a store keeps for `vector`."""
    return array("f", vector).tobytes()
