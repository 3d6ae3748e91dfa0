"""The HNSW index and the ONNX embedder load in either order in one process (a real import, in a
fresh interpreter: usearch's pybind11 registry made first crashed onnxruntime's import)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

# Only looked for: importing usearch here, in the test process, is what must not happen first.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("usearch") is None or importlib.util.find_spec("onnxruntime") is None,
    reason="needs the embeddings extra",
)


@pytest.mark.parametrize(
    "program",
    [
        "from companion.knowledge._hnsw import _new_index\n_new_index(4)\nimport onnxruntime",
        "import onnxruntime\nfrom companion.knowledge._hnsw import _new_index\n_new_index(4)",
    ],
)
def test_hnsw_then_onnxruntime_in_one_process(program: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", program + "\nprint('loaded')"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.strip() == "loaded"
