"""Write the service's OpenAPI document to clients/typescript/openapi.json.

The TypeScript client's types (`src/schema.ts`) are generated from that file by openapi-typescript;
`make ts-client-schema` runs this script, then the generator. `live_schema()` is also what
tests/clients/test_typescript_client.py compares the committed file with, so the two cannot drift.
Building the app connects to nothing and starts nothing (`create_app` only wires the routes).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from companion.api import create_app
from companion.config import Settings

__all__ = ["SCHEMA_PATH", "live_schema", "rendered"]

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "openapi.json"


def live_schema() -> dict[str, Any]:
    """The OpenAPI document of the app as this checkout builds it."""
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(data_dir=Path(data_dir), execution_enabled=False)
        schema: dict[str, Any] = create_app(settings).openapi()
    return schema


def rendered(schema: dict[str, Any]) -> str:
    """The file's text: indented, in FastAPI's key order (so diffs read like the routes)."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    """Write the live schema to `SCHEMA_PATH` (or to the path given as the only argument)."""
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_PATH
    target.write_text(rendered(live_schema()), encoding="utf-8")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
