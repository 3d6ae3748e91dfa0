"""Every example of docs/integrations.md runs against a real service and prints what the page says.

Each ```python block followed by "It prints" and a ```text block is run as a script of its own
(a fresh interpreter, as a user would run it), with the page's URL replaced by the test service's
and a real key in `COMPANION_API_KEY`. The service is a plain one (no tool registered by tests),
as `companion serve` is.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from companion.api import create_app
from companion.config import load_settings
from tests.tools._served import serve

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]

DOC = Path(__file__).parents[2] / "docs" / "integrations.md"
DOCUMENTED_BASE = "http://127.0.0.1:8000"
EXAMPLE = re.compile(r"```python\n(.*?)```\n\nIt prints[^\n]*:\n\n```text\n(.*?)```", re.S)
# A sandbox run's resource figures differ from run to run.
USAGE = re.compile(r'"usage": \{[^}]*\}')


def _examples() -> list[tuple[str, str]]:
    return [(code, printed) for code, printed in EXAMPLE.findall(DOC.read_text())]


EXAMPLES = _examples()


def test_the_page_has_an_example_per_framework() -> None:
    sources = "\n".join(code for code, _ in EXAMPLES)
    for module in ("langchain", "llama_index", "openai_agents"):
        assert f"companion_client.integrations.{module} import" in sources


@pytest.fixture(scope="module")
def documented_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The service and a key with `tools`, `execute` and `knowledge:read`, as the page says."""
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("doc-examples"),
        execution_enabled=True,
        execution_pool_size=1,
        execution_data_pool_size=0,
        execution_session_spares=0,
    )
    app = create_app(settings)
    with serve(app) as url:
        _, key = app.state.companion.keys.create("default", ["tools", "execute", "knowledge:read"])
        yield url, key


@pytest.mark.parametrize(
    ("code", "printed"), EXAMPLES, ids=[f"example-{i}" for i in range(len(EXAMPLES))]
)
def test_the_example_prints_what_the_page_shows(
    code: str, printed: str, documented_service: tuple[str, str], tmp_path: Path
) -> None:
    url, key = documented_service
    script = tmp_path / "example.py"
    script.write_text(code.replace(DOCUMENTED_BASE, url))
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    env["COMPANION_API_KEY"] = key
    done = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert USAGE.sub('"usage": {...}', done.stdout) == USAGE.sub('"usage": {...}', printed)
