"""A service started without a model loads one exported later, and every error names its missing step.

The "export" here copies the already exported model (`make model`) into the data dir the way
`companion models export` leaves it: a staging folder renamed into place.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from companion.api import create_app
from companion.config import load_settings
from companion.errors import FeatureUnavailable
from companion.knowledge import EmbedderRequired, ModelDirectory, build_knowledge_base
from companion.knowledge._embedding_loader import model_dir
from tests._services import unavailable
from tests.api.conftest import key_headers
from tests.knowledge.conftest import MODEL_DIR

DOCS = [
    {"id": "dog", "text": "A puppy fetches a stick in the park."},
    {"id": "tax", "text": "File the tax return before April."},
]


@pytest.fixture
def exported() -> Path:
    if not (MODEL_DIR / "manifest.json").exists():
        unavailable(f"the exported MiniLM model in {MODEL_DIR} (run `make model`)")
    return MODEL_DIR


def _export_into(target: Path) -> None:
    """Lay the float model into `target` as an export does: staged, then renamed into place."""
    staging = target.with_name(target.name + ".partial")
    staging.mkdir(parents=True)
    for name in ("manifest.json", "model.onnx", "tokenizer.json", "reference.json"):
        shutil.copyfile(MODEL_DIR / name, staging / name)
    manifest = json.loads((staging / "manifest.json").read_text())
    manifest.pop("variants", None)
    (staging / "manifest.json").write_text(json.dumps(manifest))
    staging.replace(target)


async def test_a_model_exported_after_the_start_is_loaded_without_a_restart(
    tmp_path: Path, exported: Path
) -> None:
    settings = load_settings(data_dir=tmp_path)
    source = ModelDirectory(settings)
    kb = build_knowledge_base(settings, embedder=source.load(), embedder_source=source)
    await kb.start()
    try:
        await kb.create_collection("t", "before")
        await kb.upsert("t", "before", DOCS)
        with pytest.raises(EmbedderRequired) as missing:
            await kb.search("t", "before", "young canine", mode="hybrid")
        assert "no embedding model is exported in" in missing.value.message
        assert str(model_dir(settings)) in missing.value.message
        assert "companion models export" in missing.value.message
        assert "embeddings extra" not in missing.value.message  # it is installed
        assert "no embedding model is exported" in await kb.health()
        assert (await kb.search("t", "before", "puppy", mode="bm25")).results

        _export_into(model_dir(settings))

        # Made model-less, it takes the model now (the queue embeds it while this search runs).
        await kb.search("t", "before", "young canine", mode="hybrid")
        assert kb.embedder is not None
        assert (await kb.get_collection("t", "before")).embedding == kb.embedder.info
        assert kb.embedding_queue is not None
        created = await kb.create_collection("t", "after")
        assert created.embedding == kb.embedder.info
        await kb.upsert("t", "after", DOCS)
        result = await kb.search("t", "after", "young canine playing", mode="hybrid")
        assert result.results[0].document_id == "dog"
        await kb.wait_for_embeddings("t", "before", timeout_s=60)  # it took the model
        result = await kb.search("t", "before", "young canine playing", mode="vector")
        assert result.results[0].document_id == "dog"
        assert "embedder sentence-transformers/all-MiniLM-L6-v2" in await kb.health()
    finally:
        await kb.close()


def test_the_service_picks_the_model_up_over_http(tmp_path: Path, exported: Path) -> None:
    settings = load_settings(data_dir=tmp_path, execution_enabled=False)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers.update(key_headers(client, "knowledge:read", "knowledge:write"))
        client.post("/v1/collections", json={"name": "early"})
        client.post("/v1/collections/early/documents", json={"documents": DOCS})
        search = {"query": "young canine playing", "mode": "hybrid"}
        refused = client.post("/v1/collections/early/search", json=search)
        assert refused.status_code == 400
        assert "run `companion models export`" in refused.json()["detail"]
        assert (
            "vector/hybrid search off"
            in (client.get("/readyz").json()["checks"]["knowledge"]["detail"])
        )

        _export_into(model_dir(settings))

        detail = client.get("/readyz").json()["checks"]["knowledge"]["detail"]
        assert "embedder sentence-transformers/all-MiniLM-L6-v2" in detail
        client.post("/v1/collections", json={"name": "docs"})
        client.post("/v1/collections/docs/documents", json={"documents": DOCS})
        found = client.post("/v1/collections/docs/search", json=search)
        assert found.status_code == 200, found.json()
        assert found.json()["results"][0]["document_id"] == "dog"

        # The collection made before the export takes the model: no reindex, no restart.
        waiting = client.post(
            "/v1/collections/early/search", json={"query": "puppy in the park", "mode": "hybrid"}
        ).json()
        assert waiting["results"][0]["document_id"] == "dog"  # no longer a 400; BM25 meanwhile
        deadline = time.monotonic() + 60
        while (progress := client.get("/v1/collections/early").json()["embeddings"])["pending"]:
            assert time.monotonic() < deadline, progress
            time.sleep(0.05)  # real-time: the service's embedding queue runs on its own loop
        assert progress == {"pending": 0, "embedded": 2}
        vector = {"query": "young canine playing", "mode": "vector"}
        found = client.post("/v1/collections/early/search", json=vector).json()
        assert found["results"][0]["document_id"] == "dog", found
        model = client.get("/v1/collections/early").json()["embedding"]["model"]
        assert model == "sentence-transformers/all-MiniLM-L6-v2"


def test_missing_extra_is_named_apart_from_a_missing_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "onnxruntime" else real(name)
    )
    source = ModelDirectory(load_settings(data_dir=tmp_path))
    assert source.load() is None
    assert source.problem is not None
    assert "embeddings extra, which is not installed (onnxruntime is missing)" in source.problem
    assert "export the model once with `companion models export`" in source.problem


def test_a_model_that_cannot_be_read_is_named_with_its_file(tmp_path: Path, exported: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    directory = model_dir(settings)
    _export_into(directory)
    (directory / "model.onnx").unlink()
    (directory / "model.onnx").mkdir()  # present, but no file to read
    source = ModelDirectory(settings)
    assert source.load() is None
    assert source.problem is not None
    assert "cannot be read" in source.problem
    assert "model.onnx: Is a directory" in source.problem
    assert not source.changed()  # asked again only once the files change

    (directory / "model.onnx").rmdir()
    (directory / "model.onnx").write_bytes(b"not the model")
    assert source.changed()
    assert source.load() is None
    assert "does not match the sha256" in (source.problem or "")

    (directory / "manifest.json").write_text("{not json")
    assert source.load() is None
    assert "cannot be read" in (source.problem or "")


def test_required_model_refuses_to_start_and_none_never_looks(tmp_path: Path) -> None:
    with pytest.raises(FeatureUnavailable, match="companion models export"):
        ModelDirectory(load_settings(data_dir=tmp_path, knowledge_embedder="minilm")).load()
    off = ModelDirectory(load_settings(data_dir=tmp_path, knowledge_embedder="none"))
    assert off.load() is None
    assert off.problem is not None
    assert "COMPANION_KNOWLEDGE_EMBEDDER=none" in off.problem
    assert not off.changed()


def test_a_model_replaced_after_loading_asks_for_a_restart(tmp_path: Path, exported: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    directory = model_dir(settings)
    _export_into(directory)
    source = ModelDirectory(settings)
    assert source.load() is not None
    assert source.problem is None
    manifest = json.loads((directory / "manifest.json").read_text())

    manifest["variants"] = {"int8": {"file": "model.int8.onnx", "onnx_sha256": "0" * 64}}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    assert source.problem is None  # a variant added beside ours: the model in use is the same

    manifest["onnx_sha256"] = "f" * 64
    (directory / "manifest.json").write_text(json.dumps(manifest))
    assert source.problem is not None
    assert "restart the service" in source.problem
