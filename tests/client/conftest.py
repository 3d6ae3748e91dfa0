"""One real `companion serve` for every client test that needs the full service (sandbox included)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.client._service import served


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """The service's URL, and its keys by name (see `served`)."""
    with served(tmp_path_factory.mktemp("served")) as running:
        yield running
