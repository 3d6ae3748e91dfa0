"""`companion models export` removes its 1.3 GB venv after a success, keeps it when asked or after a
failure, and never removes a venv it did not make.

The steps that install torch and run it are replaced by stand-ins here (the real export takes
minutes and runs in `make model`, which CI runs from a fresh clone: export, int8, cleanup).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from companion.knowledge import _model_export
from companion.knowledge._model_export import VENV_MARKER, ExportFailed, export_model


class _Steps:
    """Stand-ins for the subprocesses: a venv is a folder, an export writes a manifest."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail: str | None = None) -> None:
        self.ran: list[str] = []
        self.fail = fail
        monkeypatch.setattr(_model_export, "_run", self.run)
        monkeypatch.setattr(_model_export, "_export", self.export)
        monkeypatch.setattr(_model_export, "_quantize", self.quantize)

    def run(self, argv: list[str], what: str) -> None:
        self.ran.append(what)
        if what == self.fail:
            raise ExportFailed(f"{what} failed (exit 1): no network")
        if what == "creating the venv":
            python = Path(argv[-1]) / "bin" / "python"
            python.parent.mkdir(parents=True)
            python.write_text("")
            (Path(argv[-1]) / "lib").mkdir()  # the 1.3 GB, in spirit

    def export(self, python: Path, out_dir: Path, quantize: str | None, log: Any) -> None:
        self.ran.append("export")
        out_dir.mkdir(parents=True)
        manifest: dict[str, Any] = {"model": "m", "version": "1", "dimension": 384}
        if quantize:
            manifest["variants"] = {quantize: {"file": "model.int8.onnx"}}
        (out_dir / "manifest.json").write_text(json.dumps(manifest))

    def quantize(self, python: Path, model_dir: Path, log: Any) -> None:
        self.ran.append("quantize")
        manifest = json.loads((model_dir / "manifest.json").read_text())
        manifest["variants"] = {"int8": {"file": "model.int8.onnx"}}
        (model_dir / "manifest.json").write_text(json.dumps(manifest))


def test_the_venv_is_removed_after_a_successful_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = _Steps(monkeypatch)
    lines: list[str] = []
    out = tmp_path / "models" / "all-MiniLM-L6-v2"
    manifest = export_model(out, log=lines.append)
    assert manifest["model"] == "m"
    assert steps.ran == ["creating the venv", "installing the export's packages", "export"]
    assert not (tmp_path / "models" / ".export-venv").exists()
    assert f"removed the export venv {tmp_path / 'models' / '.export-venv'}" in lines
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["all-MiniLM-L6-v2"]


def test_keep_venv_keeps_it_and_a_failure_keeps_it_for_a_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "models" / "all-MiniLM-L6-v2"
    venv = tmp_path / "models" / ".export-venv"
    _Steps(monkeypatch, fail="installing the export's packages")
    with pytest.raises(ExportFailed, match=f"the venv {venv} is kept for a retry"):
        export_model(out, log=lambda line: None)
    assert (venv / VENV_MARKER).exists()
    assert not out.exists()

    steps = _Steps(monkeypatch)
    lines: list[str] = []
    export_model(out, keep_venv=True, log=lines.append)
    assert "creating the venv" not in steps.ran  # the kept one was reused
    assert (venv / "lib").is_dir()
    assert f"kept the export venv in {venv} (--keep-venv)" in lines


def test_int8_is_added_to_an_existing_export_and_a_foreign_venv_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "models" / "all-MiniLM-L6-v2"
    steps = _Steps(monkeypatch)
    export_model(out, log=lambda line: None)
    mine = tmp_path / "my-venv"  # a venv the user made and named with --venv
    (mine / "bin").mkdir(parents=True)
    (mine / "bin" / "python").write_text("")
    lines: list[str] = []
    steps.ran.clear()
    manifest = export_model(out, venv_dir=mine, quantize="int8", log=lines.append)
    assert steps.ran == ["installing the export's packages", "quantize"]  # no torch, no export
    assert "int8" in manifest["variants"]
    assert mine.exists()
    assert f"left {mine} in place: it was not made by `companion models export`" in lines

    steps.ran.clear()
    export_model(out, quantize="int8", log=lines.append)
    assert steps.ran == []  # both there already
    with pytest.raises(ExportFailed, match="only int8"):
        export_model(out, quantize="int4", log=lines.append)


def test_the_makefile_exports_with_the_default_venv_and_int8() -> None:
    makefile = (Path(__file__).parents[2] / "Makefile").read_text()
    assert "companion models export --out $(MODEL_DIR) --quantize int8\n" in makefile
    assert "--keep-venv" not in makefile
