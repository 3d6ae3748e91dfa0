"""The error tree: every error has a status and a unique code; builtins are honoured."""

from __future__ import annotations

import companion.errors as errors_module
from companion.errors import CompanionError, InvalidInput, NotFound, RateLimited, ValidationFailed


def _all_errors() -> list[type[CompanionError]]:
    found = [
        obj
        for obj in vars(errors_module).values()
        if isinstance(obj, type) and issubclass(obj, CompanionError)
    ]
    return sorted(found, key=lambda cls: cls.__name__)


def test_every_error_has_an_http_status_and_a_unique_code() -> None:
    codes = [cls.code for cls in _all_errors() if not cls.__name__.startswith("_")]
    assert len(codes) == len(set(codes)), codes
    for cls in _all_errors():
        assert 400 <= cls.status <= 599
        assert cls.code.islower()


def test_every_public_error_is_drawn_in_the_docstring() -> None:
    doc = errors_module.__doc__ or ""
    for cls in _all_errors():
        if not cls.__name__.startswith("_"):
            assert f"{cls.__name__} ({cls.status} {cls.code}" in doc, cls.__name__


def test_errors_subclass_matching_builtins() -> None:
    assert issubclass(InvalidInput, ValueError)
    assert issubclass(ValidationFailed, ValueError)
    assert issubclass(NotFound, LookupError)


def test_retryable_errors_carry_retry_after() -> None:
    error = RateLimited("slow down", retry_after_s=3.5)
    assert error.retry_after_s == 3.5
    assert str(error) == "slow down"
