"""`companion_client` exports a sorted `__all__` of documented names, its error tree is drawn
whole, and its two clients offer the same methods."""

from __future__ import annotations

import inspect
import re

import companion_client
from companion_client import _errors

from tests.test_public_api import _isort_key


def test_all_is_sorted_resolves_and_is_documented() -> None:
    exported = companion_client.__all__
    assert list(exported) == sorted(exported, key=_isort_key)
    for name in exported:
        value = getattr(companion_client, name)
        if callable(value):
            assert value.__doc__, f"companion_client.{name} has no docstring"


def test_every_error_class_is_in_the_drawn_tree() -> None:
    drawn = set(re.findall(r"\b([A-Z][A-Za-z]+)\b", _errors.__doc__ or ""))
    classes = {
        name
        for name, value in vars(_errors).items()
        if inspect.isclass(value)
        and issubclass(value, companion_client.CompanionClientError)
        and value.__module__ == _errors.__name__
    }
    assert classes <= drawn, classes - drawn
    assert classes <= set(companion_client.__all__)


def test_the_two_clients_have_the_same_methods() -> None:
    def public(cls: type) -> set[str]:
        return {name for name in vars(cls) if not name.startswith("_")}

    sync, asynchronous = public(companion_client.Client), public(companion_client.AsyncClient)
    assert sync - {"close"} == asynchronous - {"aclose"}
    for name in sync - {"close", "run_stream", "iter_documents"}:
        assert inspect.iscoroutinefunction(getattr(companion_client.AsyncClient, name)), name
    # The agent-framework adapters rely on these two.
    assert {"list_tools", "invoke_tool"} <= sync
