"""Choosing the embedder the settings ask for (the exported MiniLM model, or none), and noticing a
model exported while the service runs.

`ModelDirectory` is the service's `EmbedderSource`: a knowledge base started without a model asks
it `changed()` (a few `stat` calls) when it needs an embedder, and loads the model once it is
there, so `companion models export` beside a running service needs no restart. When something is
missing, `problem` names the step: the extra to install, the export to run, or the file that cannot
be read. A model replaced after it was loaded (another export, another precision) needs a restart,
and `problem` says so: collections record the model they were embedded with.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

from companion.config import Settings
from companion.errors import CompanionError, ConfigError, FeatureUnavailable
from companion.knowledge._embedder import Embedder

__all__ = ["ModelDirectory", "load_embedder", "model_dir"]

_log = logging.getLogger("companion.knowledge")
_EXTRA = ("numpy", "onnxruntime", "tokenizers")
_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}


def model_dir(settings: Settings) -> Path:
    """Where `companion models export` puts the ONNX model."""
    return settings.data_dir / "models" / "all-MiniLM-L6-v2"


def load_embedder(settings: Settings) -> Embedder | None:
    """The MiniLM embedder when exported (and asked for), else None (BM25 only)."""
    return ModelDirectory(settings).load()


class ModelDirectory:
    """The exported model the settings name, as an `EmbedderSource`.

    `COMPANION_KNOWLEDGE_EMBEDDER=minilm` makes `load` raise instead of returning None (the
    service refuses to start without its model); `auto` returns None and keeps looking.
    """

    def __init__(self, settings: Settings) -> None:
        self.directory = model_dir(settings)
        self.mode = settings.knowledge_embedder
        self.precision = settings.knowledge_embedding_precision
        self._seen: tuple[object, ...] | None = None  # the files as the last `load` saw them
        self._loaded: str | None = None  # the sha256 of the ONNX file in use
        self._problem: str | None = None

    @property
    def problem(self) -> str | None:
        """Why no model is loaded, or that the loaded one was replaced on disk (restart needed)."""
        if self._loaded is not None and self.changed():
            if self._recorded_sha256() == self._loaded:
                self._seen = self._signature()  # the manifest was rewritten, our file was not
                return None
            return (
                f"the embedding model in {self.directory} changed after the service loaded it: "
                "restart the service to use the new export (collections embedded with the old "
                "one then need `companion reindex`)"
            )
        return self._problem

    def changed(self) -> bool:
        """Whether the model's files differ from what the last `load` saw (never, with `none`)."""
        return self.mode != "none" and self._signature() != self._seen

    def load(self) -> Embedder | None:
        """The embedder, or None with `problem` set; `minilm` raises instead of returning None."""
        self._seen = self._signature()
        self._problem = None
        if self.mode == "none":
            self._problem = "COMPANION_KNOWLEDGE_EMBEDDER=none: vector and hybrid search are off"
            return None
        try:
            embedder = self._open()
        except CompanionError as exc:
            self._problem = exc.message
            if self.mode == "minilm":
                raise
            # Not exported is the usual state of a BM25-only install; anything else is a fault.
            level = logging.WARNING if self._exported() else logging.INFO
            _log.log(level, "no embedding model: %s", exc.message)
            return None
        self._loaded = self._recorded_sha256()
        _log.info("embedding model %s loaded from %s", embedder.info.version, self.directory)
        return embedder

    def _open(self) -> Embedder:
        exported = self._exported()
        missing = next((name for name in _EXTRA if importlib.util.find_spec(name) is None), None)
        if missing is not None:
            then = (
                "and restart the service"
                if exported
                else "export the model once with `companion models export`, then restart the service"
            )
            raise FeatureUnavailable(
                f"vector search needs the embeddings extra, which is not installed ({missing} is "
                f"missing): `pip install 'companion[embeddings]'` {then}"
            )
        if not exported:
            raise FeatureUnavailable(
                f"no embedding model is exported in {self.directory}: run `companion models "
                "export` (a running service loads it when it is needed next, no restart)"
            )
        from companion.knowledge._onnx_embedder import OnnxEmbedder

        try:
            return OnnxEmbedder(self.directory, precision=self.precision)
        except (OSError, ValueError, KeyError) as exc:  # unreadable, not JSON, a field missing
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else repr(exc)
            where = getattr(exc, "filename", None) or self.directory
            raise ConfigError(
                f"the embedding model in {self.directory} cannot be read ({where}: {reason}): "
                "make it readable by the service, or export it again with `companion models "
                "export --force`"
            ) from None

    def _exported(self) -> bool:
        try:
            return (self.directory / "manifest.json").is_file()
        except OSError:  # the folder cannot be searched: say so when opening it
            return True

    def _recorded_sha256(self) -> str | None:
        from companion.knowledge._onnx_embedder import model_file

        try:
            manifest = json.loads((self.directory / "manifest.json").read_text())
            return model_file(manifest, self.precision)[1]
        except (OSError, ValueError, KeyError):
            return None

    def _signature(self) -> tuple[object, ...]:
        """Identity and times of the folder, the manifest and the ONNX file (or why not)."""
        parts: list[object] = []
        for path in (
            self.directory,
            self.directory / "manifest.json",
            self.directory / _FILES[self.precision],
        ):
            try:
                st = path.stat()
            except OSError as exc:
                parts.append(exc.errno)
            else:
                parts.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode))
        return tuple(parts)
