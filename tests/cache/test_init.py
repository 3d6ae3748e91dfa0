from __future__ import annotations

import companion.cache


def test_all_is_complete() -> None:
    """Sorting is checked for every package by tests/test_public_api.py."""
    exported = companion.cache.__all__
    public = {name for name in vars(companion.cache) if not name.startswith("_")}
    public |= {"RedisTier"}  # loaded on first access (redis-py is heavy), so not in vars() yet
    assert set(exported) == public - {"annotations", "TYPE_CHECKING"}


def test_every_public_name_has_a_docstring() -> None:
    for name in companion.cache.__all__:
        obj = getattr(companion.cache, name)
        if callable(obj) and name != "Evicted":
            assert obj.__doc__, name


def test_redis_is_imported_only_when_a_redis_tier_is_used() -> None:
    import subprocess
    import sys

    probe = (
        "import sys, companion.cache, companion.api\n"
        "assert 'redis.commands' not in sys.modules, 'imported eagerly'\n"
        "from companion.cache import RedisTier\n"
        "assert 'redis.commands' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)
