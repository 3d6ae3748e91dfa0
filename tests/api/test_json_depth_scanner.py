"""`JsonDepthScanner` on its own: one chunk or many, brackets in strings, the cheap last-chunk path."""

from __future__ import annotations

import json

import pytest

from companion.api._body_limit import JsonDepthScanner
from companion.errors import InvalidInput


def _scan(body: bytes, chunk_bytes: int, max_depth: int = 4) -> JsonDepthScanner:
    scanner = JsonDepthScanner(max_depth)
    chunks = [body[i : i + chunk_bytes] for i in range(0, len(body), chunk_bytes)]
    for index, chunk in enumerate(chunks):
        scanner.feed(chunk, last=index == len(chunks) - 1)
    return scanner


@pytest.mark.parametrize("chunk_bytes", [1, 3, 1000])
def test_a_body_at_the_limit_passes(chunk_bytes: int) -> None:
    _scan(b'{"a": [[{"b": 1}]]}', chunk_bytes)  # depth 4


@pytest.mark.parametrize("chunk_bytes", [1, 3, 1000])
def test_a_body_past_the_limit_is_refused_however_it_is_chunked(chunk_bytes: int) -> None:
    with pytest.raises(InvalidInput, match="deeper than 4"):
        _scan(b'{"a": [[{"b": [1]}]]}', chunk_bytes)  # depth 5


@pytest.mark.parametrize("chunk_bytes", [1, 7, 10_000])
def test_brackets_inside_strings_do_not_count(chunk_bytes: int) -> None:
    body = json.dumps({"pattern": "[" * 50 + '\\"' + "{" * 20}).encode()
    _scan(body, chunk_bytes)


def test_depth_carried_over_from_earlier_chunks_counts_in_the_last() -> None:
    scanner = JsonDepthScanner(4)
    scanner.feed(b"[[[", last=False)
    with pytest.raises(InvalidInput):
        scanner.feed(b"[[]]]]]", last=True)
