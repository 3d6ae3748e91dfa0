"""One real service for the adapter tests: uvicorn on a loopback port, a real sandbox, real keys.

The service's registry gets one tool of the tests' own (`forecast`), registered through the
public `ToolRegistry.register` as a third party's would be: it has what the built-ins lack (an
enum, bounds, a default) and a failure of its own (`unknown_city`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import httpx
import pytest
from companion_client import AsyncClient, Client
from pydantic import Field

from companion.api import create_app
from companion.config import load_settings
from companion.tools import ToolError
from tests.tools._served import serve


def forecast(
    city: str,
    days: Annotated[int, Field(ge=1, le=7)] = 1,
    unit: Literal["celsius", "fahrenheit"] = "celsius",
) -> dict[str, Any]:
    """A made-up forecast for a city, the same every time.

    Args:
        city: The city's name.
        days: How many days ahead (1 to 7).
        unit: The temperature unit.
    """
    if city == "Atlantis":
        raise ToolError("no forecast under the sea", code="unknown_city")
    base = 20 if unit == "celsius" else 68
    return {"city": city, "unit": unit, "highs": [base + day for day in range(days)]}


@dataclass(frozen=True)
class Service:
    """The running service: its URL, two keys of tenant `acme`, and its key ring."""

    url: str
    agent_key: str  # tools, execute (run_code) and knowledge:read
    tools_key: str  # tools only: run_code and the knowledge tools are not offered to it
    keys: Any  # the service's own `KeyRing`: a test may make and revoke keys of its own

    def listed(self, key: str) -> list[dict[str, Any]]:
        """`GET /v1/tools` read without the client: what the adapters must reproduce."""
        response = httpx.get(
            f"{self.url}/v1/tools", headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        response.raise_for_status()
        tools: list[dict[str, Any]] = response.json()
        return tools


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The service with execution on (one plain sandbox) and the `forecast` tool registered."""
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("integrations"),
        execution_enabled=True,
        execution_pool_size=1,
        execution_data_pool_size=0,
        execution_session_spares=0,
    )
    app = create_app(settings)
    with serve(app) as url:
        state = app.state.companion
        state.tools.register(forecast, category="tests", pure=True)
        _, agent_key = state.keys.create("acme", ["tools", "execute", "knowledge:read"])
        _, tools_key = state.keys.create("acme", ["tools"])
        yield Service(url, agent_key, tools_key, state.keys)


@pytest.fixture
def client(service: Service) -> Iterator[Client]:
    """A sync client with the agent key."""
    with Client(service.url, service.agent_key, timeout_s=60) as client:
        yield client


@pytest.fixture
async def async_client(service: Service) -> AsyncIterator[AsyncClient]:
    """An async client with the agent key, on the test's own event loop."""
    async with AsyncClient(service.url, service.agent_key, timeout_s=60) as client:
        yield client


def without_titles(schema: Any) -> Any:
    """`schema` less its `title` keywords (a property named `title` stays): what LangChain's
    converters leave of a JSON schema."""
    if isinstance(schema, list):
        return [without_titles(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    kept: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title":
            continue
        if key in {"properties", "$defs", "definitions"} and isinstance(value, dict):
            kept[key] = {name: without_titles(sub) for name, sub in value.items()}
        else:
            kept[key] = without_titles(value)
    return kept
