from __future__ import annotations

import importlib

import pytest


def ruff_order(symbol: str) -> tuple[int, str]:
    """RUF022: CONSTANTS, then Classes, then functions, each alphabetical."""
    if symbol.isupper():
        return (0, symbol)
    return (1, symbol) if symbol[:1].isupper() else (2, symbol)


@pytest.mark.parametrize("package", ["companion.monitoring", "companion.profiling"])
def test_all_is_sorted_and_documented(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__ == sorted(module.__all__, key=ruff_order)
    for name in module.__all__:
        obj = getattr(module, name)
        assert not name.startswith("_")
        if callable(obj):
            assert obj.__doc__, f"{package}.{name} has no docstring"


def test_errors_are_typed_input_errors() -> None:
    from companion.errors import Conflict, InvalidInput, NotFound
    from companion.monitoring import (
        InvalidLabels,
        InvalidMetricName,
        InvalidQuantile,
        InvalidThreshold,
        InvalidWindow,
        MetricNotFound,
        MetricTypeConflict,
        UnknownAlertLevel,
    )

    for error in (
        InvalidLabels,
        InvalidMetricName,
        InvalidQuantile,
        InvalidThreshold,
        InvalidWindow,
        UnknownAlertLevel,
    ):
        assert issubclass(error, InvalidInput)
        assert issubclass(error, ValueError)
    assert issubclass(MetricNotFound, NotFound)
    assert issubclass(MetricTypeConflict, Conflict)
