"""Each package exports a small, sorted `__all__` whose names all exist."""

from __future__ import annotations

import importlib
import pkgutil
import re
import typing
from pathlib import Path

import pytest

import companion

PACKAGES = sorted(
    {name for _, name, is_pkg in pkgutil.walk_packages(companion.__path__, "companion.") if is_pkg}
    | {"companion.errors", "companion.config"}
)


def _isort_key(symbol: str) -> tuple[int, str]:
    """Ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical."""
    if symbol.isupper():
        return (0, symbol)
    return (1, symbol) if symbol[:1].isupper() else (2, symbol)


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert list(exported) == sorted(exported, key=_isort_key), f"{name}.__all__ is not sorted"
    for symbol in exported:
        assert hasattr(module, symbol), f"{name}.__all__ names missing {symbol}"


def test_subsystems_never_import_api_or_cli() -> None:
    root = Path(companion.__file__).parent
    for path in root.rglob("*.py"):
        top = path.relative_to(root).parts[0]
        # `__main__.py` is the command line's entry point (`python -m companion`), not a subsystem.
        if top in {"api", "cli", "bench", "__main__.py"}:
            continue
        imports = re.findall(
            r"^\s*(?:from|import) (companion\.(?:api|cli))\b", path.read_text(), re.M
        )
        assert not imports, f"{path} imports {imports}"


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_callable_has_a_docstring(name: str) -> None:
    module = importlib.import_module(name)
    for symbol in getattr(module, "__all__", ()):
        obj = getattr(module, symbol)
        if callable(obj) and typing.get_origin(obj) is None:  # type aliases carry no docstring
            assert obj.__doc__, f"{name}.{symbol} has no docstring"
