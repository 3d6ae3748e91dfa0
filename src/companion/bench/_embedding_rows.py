"""Embedding throughput rows: our `OnnxEmbedder` next to plain onnxruntime over the same model.

The chunks are real text of varying length: this project's docs and README, chunked as ingest chunks
them (800 characters, 100 overlapping), in document order as the embedding queue meets them (prose,
tables and code; 30-256 tokens, about 170 on average). Each operation embeds the next 64 of them,
what the queue hands the model per call; ours and the peer go through the same slices in the same
order. The peer is plain onnxruntime over the same `model.onnx`: default session options, the same
tokenizer with the same settings (truncated at 256 tokens, padded to each batch's longest), fixed
batches of 32 in input order, and the same mean pooling and normalisation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from companion.bench._case import Cycling

__all__ = ["PlainOnnx", "Throughput", "docs_chunks", "slices"]

_SLICE = 64  # the embedding queue's batch


def docs_chunks(repository: Path | None = None) -> list[str]:
    """The docs' and README's chunks, in order (`FeatureUnavailable` outside a checkout)."""
    from companion.bench._docs_judged import REPOSITORY
    from companion.errors import FeatureUnavailable
    from companion.knowledge import Chunker

    root = repository or REPOSITORY
    sources = [*sorted((root / "docs").glob("*.md")), root / "README.md"]
    texts = [path.read_text(encoding="utf-8") for path in sources if path.is_file()]
    if not texts:
        raise FeatureUnavailable(f"the embedding rows embed the project's docs, not in {root}")
    chunker = Chunker()
    return [span.text for text in texts for span in chunker.split(text)]


def slices(chunks: Sequence[str], size: int = _SLICE) -> list[list[str]]:
    """Consecutive whole slices of `size` chunks (a short tail is left out)."""
    return [list(chunks[i : i + size]) for i in range(0, len(chunks) - size + 1, size)]


class PlainOnnx:
    """The peer: onnxruntime as its docs show it, fixed unsorted batches of 32."""

    def __init__(self, model_dir: Path, batch_size: int = 32) -> None:
        import numpy as np
        import onnxruntime
        import tokenizers

        from companion.knowledge._onnx_embedder import MAX_TOKENS

        self._np = np
        self.batch_size = batch_size
        self._session = onnxruntime.InferenceSession(
            str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        self._tokenizer = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a token
        manifest = json.loads((model_dir / "manifest.json").read_text())
        self.dimension = int(manifest["dimension"])

    def embed(self, texts: Sequence[str]) -> Any:
        """One unit row per text, in input order."""
        np = self._np
        rows = [np.empty((0, self.dimension), dtype=np.float32)]
        for start in range(0, len(texts), self.batch_size):
            encodings = self._tokenizer.encode_batch(list(texts[start : start + self.batch_size]))
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self._session.run(None, feeds)[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            rows.append(
                pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            )
        return np.concatenate(rows).astype(np.float32)


class Throughput(Cycling[list[str]]):
    """Embeds one slice per call, in order; notes the chunks per second it measured itself."""

    def __init__(self, label: str, inputs: Sequence[list[str]], embed: Callable[[Any], Any]):
        super().__init__(inputs, self._timed)
        self.label = label
        self._embed = embed
        self._chunks = 0
        self._seconds = 0.0

    def _timed(self, texts: list[str]) -> object:
        started = time.perf_counter()
        vectors = self._embed(texts)
        self._seconds += time.perf_counter() - started
        self._chunks += len(texts)
        return vectors

    def note(self) -> str:
        """`label ≈ N chunks/s` over every call made."""
        rate = self._chunks / self._seconds if self._seconds else 0.0
        return f"{self.label} ≈ {rate:.0f} chunks/s"
