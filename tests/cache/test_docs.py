from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "cache.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


@pytest.mark.redis
def test_every_python_block_of_docs_cache_md_runs(redis_url: str, redis_prefix: str) -> None:
    blocks = BLOCK.findall(DOC.read_text())
    assert len(blocks) >= 6
    namespace = {"__name__": "__main__", "redis_url": redis_url, "redis_prefix": redis_prefix}
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"{DOC.name} block {number}", "exec")
        exec(code, namespace)
