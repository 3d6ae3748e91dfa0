"""The embedder's length-sorted, token-budgeted batches give the very vectors of one text at a time.

Speed itself is measured by `companion bench --only search` (the embedding ingest row), never here.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from companion._cpus import usable_cpus
from companion.errors import ConfigError
from companion.knowledge import OnnxEmbedder
from companion.knowledge._onnx_embedder import _batches, _session_options
from tests._services import unavailable
from tests.knowledge.conftest import MODEL_DIR


def _texts() -> list[str]:
    """Lengths from 2 tokens to past the 256-token window, shuffled, with duplicates."""
    rng = random.Random(5)
    words = "tide moon orbit salt river stone lamp quiet harbour engine winter bread".split()
    texts = [
        " ".join(rng.choices(words, k=rng.choice([1, 3, 8, 20, 60, 120, 400]))) for _ in range(70)
    ]
    texts += ["", "short", "short", "Embeddings map text to vectors."]
    rng.shuffle(texts)
    return texts


def test_batched_vectors_equal_one_text_at_a_time_in_input_order(minilm: OnnxEmbedder) -> None:
    texts = _texts()
    batched = minilm.embed(texts)
    alone = np.vstack([minilm.embed([text]) for text in texts])
    assert batched.shape == (len(texts), 384)
    assert np.allclose(batched, alone, atol=1e-5)
    assert (batched * alone).sum(axis=1).min() > 0.99999


def test_vectors_equal_the_plain_onnxruntime_peer(minilm: OnnxEmbedder) -> None:
    from companion.bench._embedding_rows import PlainOnnx

    texts = _texts()
    peer = PlainOnnx(MODEL_DIR).embed(texts)  # fixed, unsorted batches of 32, padded
    assert np.allclose(minilm.embed(texts), peer, atol=1e-5)


def test_no_text_gives_an_empty_matrix(minilm: OnnxEmbedder) -> None:
    assert minilm.embed([]).shape == (0, 384)


def test_batches_keep_sorted_order_within_the_token_budget() -> None:
    lengths = [3, 250, 40, 40, 9, 256, 120, 2, 60, 61]
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches = _batches(order, lengths, 512)
    assert [i for batch in batches for i in batch] == order
    for batch in batches:
        padded = len(batch) * max(lengths[i] for i in batch)
        assert padded <= 512 or len(batch) == 1
    assert _batches(order, lengths, 1) == [[i] for i in order]  # too small: one text a batch
    assert _batches([], [], 512) == []


def test_session_options_are_chosen_not_defaulted(minilm: OnnxEmbedder) -> None:
    import onnxruntime

    options = _session_options(onnxruntime)
    assert options.intra_op_num_threads == 1  # batches run side by side instead
    assert options.inter_op_num_threads == 1
    assert options.execution_mode == onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    assert options.graph_optimization_level == onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert minilm._pool is None  # threads=1
    two = OnnxEmbedder(MODEL_DIR, threads=2)
    assert two._pool is not None
    assert two._pool._max_workers == 2
    texts = _texts()
    assert np.allclose(two.embed(texts), minilm.embed(texts), atol=1e-5)  # in parallel, same
    default = OnnxEmbedder(MODEL_DIR)
    workers = default._pool._max_workers if default._pool else 1
    assert workers == min(4, usable_cpus())


def test_int8_variant_is_close_to_fp32_and_named_apart(minilm: OnnxEmbedder) -> None:
    if not (MODEL_DIR / "model.int8.onnx").exists():
        unavailable(f"the int8 variant in {MODEL_DIR} (run `make model`)")
    int8 = OnnxEmbedder(MODEL_DIR, precision="int8", threads=1)
    texts = _texts()
    cosines = (int8.embed(texts) * minilm.embed(texts)).sum(axis=1)
    assert cosines.min() > 0.95
    assert cosines.mean() > 0.98
    assert int8.info.version == f"{minilm.info.version} int8"  # its vectors never mix with fp32's
    assert int8.info.model == minilm.info.model


def test_a_missing_int8_variant_names_the_export_that_adds_it(
    tmp_path: Path, minilm: OnnxEmbedder
) -> None:
    copy = tmp_path / "model"
    copy.mkdir()
    for name in ("tokenizer.json", "model.onnx"):
        (copy / name).symlink_to(MODEL_DIR / name)
    manifest = json.loads((MODEL_DIR / "manifest.json").read_text())
    manifest.pop("variants", None)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="companion models export --quantize int8"):
        OnnxEmbedder(copy, precision="int8")
    shutil.rmtree(copy)


def test_the_bench_rows_embed_the_docs_in_64_chunk_slices(minilm: OnnxEmbedder) -> None:
    from companion.bench._embedding_rows import PlainOnnx, Throughput, docs_chunks, slices

    chunks = docs_chunks()
    lengths = [len(text) for text in chunks]
    assert len(chunks) > 200
    assert min(lengths) < 200 < 700 < max(lengths) <= 800  # a real mix, as ingest chunks it
    parts = slices(chunks)
    assert [len(part) for part in parts] == [64] * (len(chunks) // 64)
    ours = Throughput("ours", parts[:2], minilm.embed)
    peer = Throughput("peer", parts[:2], PlainOnnx(MODEL_DIR).embed)
    for _ in range(3):  # round and round, in lockstep
        assert np.allclose(ours(), peer(), atol=1e-5)  # type: ignore[arg-type]
    ours.rewind()
    assert np.allclose(ours(), minilm.embed(parts[0]), atol=1e-5)  # type: ignore[arg-type]
    assert ours.note().startswith("ours ≈ ")
    assert ours.note().endswith(" chunks/s")
