from __future__ import annotations

import companion.cache


def test_all_is_complete() -> None:
    """Sorting is checked for every package by tests/test_public_api.py."""
    exported = companion.cache.__all__
    public = {name for name in vars(companion.cache) if not name.startswith("_")}
    assert set(exported) == public - {"annotations"}


def test_every_public_name_has_a_docstring() -> None:
    for name in companion.cache.__all__:
        obj = getattr(companion.cache, name)
        if callable(obj) and name != "Evicted":
            assert obj.__doc__, name
