"""Metadata filters: each operator, every error, and the same selection in Python, SQLite and
PostgreSQL (hypothesis generates filters and metadata; Python's `matches` is the reference)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from companion.knowledge import InvalidFilter, KnowledgeBase
from companion.knowledge._filters import (
    MAX_FILTER_CONDITIONS,
    MAX_FILTER_DEPTH,
    MAX_FILTER_VALUES,
    MAX_IN_VALUES,
    matches,
    parse_filter,
    to_postgres,
    to_sqlite,
)

Metadata = Mapping[str, Any]

# -- the engines, side by side -----------------------------------------------------------------


def python_select(docs: Sequence[Metadata], raw: object) -> list[int]:
    conditions = parse_filter(raw)
    return [i for i, metadata in enumerate(docs) if matches(metadata, conditions)]


def sqlite_select(docs: Sequence[Metadata], raw: object) -> list[int]:
    """As `SqliteStore` stores metadata (orjson text) and filters it (`to_sqlite`)."""
    db = sqlite3.connect(":memory:")
    try:
        db.execute("CREATE TABLE documents (key INTEGER PRIMARY KEY, metadata TEXT NOT NULL)")
        db.executemany(
            "INSERT INTO documents VALUES (?, ?)",
            [(i, orjson.dumps(metadata).decode()) for i, metadata in enumerate(docs)],
        )
        where, params = to_sqlite(parse_filter(raw))
        rows = db.execute(f"SELECT key FROM documents WHERE {where} ORDER BY key", params)
        return [int(key) for (key,) in rows]
    finally:
        db.close()


class Postgres:
    """As `PostgresStore` stores metadata (`Jsonb`) and filters it (`to_postgres`, "d.metadata")."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("CREATE TEMP TABLE docs (key INT PRIMARY KEY, metadata JSONB NOT NULL)")

    def select(self, docs: Sequence[Metadata], raw: object) -> list[int]:
        from psycopg.types.json import Jsonb

        where, params = to_postgres(parse_filter(raw), "d.metadata")
        with self.conn.transaction(force_rollback=True), self.conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO docs VALUES (%s, %s)",
                [(i, Jsonb(metadata)) for i, metadata in enumerate(docs)],
            )
            cursor.execute(f"SELECT d.key FROM docs d WHERE {where} ORDER BY d.key", params)
            return [int(key) for (key,) in cursor.fetchall()]


@pytest.fixture(scope="module")
def postgres(database_url: str) -> Iterator[Postgres]:
    engine = Postgres(database_url)
    try:
        yield engine
    finally:
        engine.conn.close()


# -- examples: the semantics, operator by operator ---------------------------------------------

CORPUS: dict[str, dict[str, Any]] = {
    "a": {"year": 2020, "tag": "News", "tags": ["Python", "rust"], "public": True},
    "b": {"year": 2021.5, "tag": "newsletter", "public": False},
    "c": {"year": "2020", "tag": "Névé", "tags": "python"},
    "d": {"year": None, "tag": None, "tags": []},
    "e": {},
    "f": {"public": 1, "year": True, "tags": ["PYTHON", 3, None]},
    "g": {"tag": {"news": 1}, "tags": [["python"]], "year": [2020]},
    "h": {"tag": "ÉCOLE", "big": 2**53 + 1, "zero": -0.0},
    "i": {"big": 2.0**53, "zero": 0},
}
ALL = set(CORPUS)

EXAMPLES: list[tuple[dict[str, Any], set[str]]] = [
    # equality never mixes types: not the string "2020", not true, not a list holding 2020
    ({"year": 2020}, {"a"}),
    ({"year": {"eq": 2020.0}}, {"a"}),
    ({"public": True}, {"a"}),
    ({"public": 1}, {"f"}),
    ({"year": True}, {"f"}),
    # ne and nin are `not` eq and `not` in: a missing field, a null, another type all match
    ({"year": {"ne": 2020}}, ALL - {"a"}),
    ({"public": {"ne": True}}, ALL - {"a"}),
    ({"year": {"in": [2020, "2020"]}}, {"a", "c"}),
    ({"year": {"nin": [2020, "2020"]}}, ALL - {"a", "c"}),
    # ranges: numbers with numbers, strings with strings (code point order)
    ({"year": {"gt": 2020}}, {"b"}),
    ({"year": {"gte": 2020}}, {"a", "b"}),
    ({"year": {"gte": 2020, "lt": 2021}}, {"a"}),
    ({"year": {"lt": "2021"}}, {"c"}),
    ({"not": {"year": {"gt": 2020}}}, ALL - {"b"}),
    # numbers compare exactly: 2**53 + 1 is not the double 2.0**53, and -0.0 is 0
    ({"big": 2.0**53}, {"i"}),
    ({"big": {"gt": 2.0**53}}, {"h"}),
    ({"big": {"lte": 2**53}}, {"i"}),
    ({"big": {"in": [2**53 + 1, 1.5]}}, {"h"}),
    ({"zero": 0}, {"h", "i"}),
    ({"zero": {"gte": 0.0, "lte": -0.0}}, {"h", "i"}),
    # exists: present and not null
    ({"tag": {"exists": True}}, {"a", "b", "c", "g", "h"}),
    ({"tag": {"exists": False}}, {"d", "e", "f", "i"}),
    # contains: a substring of a string, a whole string element of a list; ASCII letters fold
    ({"tag": {"contains": "NEWS"}}, {"a", "b"}),
    ({"tag": {"contains": "névé"}}, {"c"}),
    ({"tag": {"contains": "NÉVÉ"}}, set()),
    ({"tag": {"contains": "école"}}, set()),
    ({"tag": {"contains": "cole"}}, {"h"}),
    ({"tags": {"contains": "python"}}, {"a", "c", "f"}),
    ({"tags": {"contains": "pyth"}}, {"c"}),
    ({"tags": {"contains": "3"}}, set()),
    # composition
    ({"or": [{"year": 2020}, {"public": False}]}, {"a", "b"}),
    ({"and": [{"tag": {"contains": "news"}}, {"public": True}]}, {"a"}),
    ({"not": {"tag": {"contains": "news"}}}, ALL - {"a", "b"}),
    (
        {"tag": {"exists": True}, "not": {"or": [{"year": {"gte": 2021}}, {"year": "2020"}]}},
        {"a", "g", "h"},
    ),
    (
        {
            "or": [
                {"and": [{"year": {"gte": 2020}}, {"not": {"public": False}}]},
                {"tag": {"contains": "névé"}},
            ]
        },
        {"a", "c"},
    ),
    ({}, ALL),
]
IDS = list(CORPUS)
DOCS = [CORPUS[i] for i in IDS]


def _names(keys: list[int]) -> set[str]:
    return {IDS[key] for key in keys}


@pytest.mark.parametrize(("raw", "expected"), EXAMPLES)
def test_examples_in_python_and_sqlite(raw: dict[str, Any], expected: set[str]) -> None:
    assert _names(python_select(DOCS, raw)) == expected
    assert _names(sqlite_select(DOCS, raw)) == expected


@pytest.mark.postgres
@pytest.mark.parametrize(("raw", "expected"), EXAMPLES)
def test_examples_in_postgres(postgres: Postgres, raw: dict[str, Any], expected: set[str]) -> None:
    assert _names(postgres.select(DOCS, raw)) == expected


async def test_examples_through_each_store(kb: KnowledgeBase) -> None:
    await kb.create_collection("t", "c")
    await kb.upsert(
        "t",
        "c",
        [{"id": i, "text": f"common words of {i}", "metadata": m} for i, m in CORPUS.items()],
    )
    wrong = []
    for raw, expected in EXAMPLES:
        result = await kb.search("t", "c", "common words", k=20, filter=raw)
        found = {hit.document_id for hit in result.results}
        if found != expected:
            wrong.append((raw, found, expected))
    assert wrong == []


def _nested(depth: int) -> dict[str, Any]:
    raw: dict[str, Any] = {"year": 2020}
    for _ in range(depth):
        raw = {"not": raw}
    return raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("year = 2020", "must be a JSON object"),
        ({"year": {"like": "20%"}}, "unknown operator 'like'; use eq, ne, in, nin"),
        ({"year": {}}, "empty object"),
        ({"bad name": 1}, "not a valid metadata field name"),
        ({'a"b': 1}, "not a valid metadata field name"),
        ({"year": None}, "compares with a null"),
        ({"year": [2020]}, "compares with a list"),
        ({"year": {"eq": {"a": 1}}}, "compares with a dict"),
        ({"year": {"ne": None}}, "compares with a null"),
        ({"year": float("nan")}, "finite number"),
        ({"year": 2**63}, "64-bit integer range"),
        ({"tag": "a\x00b"}, "without NUL"),
        ({"tag": "\ud800"}, "UTF-8"),
        ({"year": {"in": []}}, f"'in' needs a list of 1 to {MAX_IN_VALUES} values"),
        ({"year": {"nin": "2020"}}, f"'nin' needs a list of 1 to {MAX_IN_VALUES} values"),
        ({"year": {"in": list(range(MAX_IN_VALUES + 1))}}, "a list of 1 to"),
        ({"year": {"in": [1, None]}}, "compares with a null"),
        ({"year": {"gt": True}}, "'gt' needs a number or a string"),
        ({"year": {"exists": 1}}, "'exists' takes true or false"),
        ({"year": {"exists": "yes"}}, "'exists' takes true or false"),
        ({"tag": {"contains": ""}}, "'contains' needs a non-empty string"),
        ({"tag": {"contains": 5}}, "'contains' needs a non-empty string"),
        ({"or": []}, "'or' takes a non-empty list of filter objects"),
        ({"and": {"year": 2020}}, "'and' takes a non-empty list of filter objects"),
        ({"or": [{}]}, "each item of 'or' must be a non-empty filter object"),
        ({"and": [{"year": 2020}, "x"]}, "each item of 'and' must be a non-empty filter object"),
        ({"not": {}}, "'not' takes a non-empty filter object"),
        ({"not": [{"year": 2020}]}, "'not' takes a non-empty filter object"),
        (_nested(MAX_FILTER_DEPTH + 1), f"more than {MAX_FILTER_DEPTH} deep (the limit)"),
        (
            {"or": [{"year": i} for i in range(MAX_FILTER_CONDITIONS + 1)]},
            f"more than {MAX_FILTER_CONDITIONS} conditions (the limit)",
        ),
        (
            {f"f{i}": {"in": list(range(MAX_IN_VALUES))} for i in range(11)},
            f"more than {MAX_FILTER_VALUES} values in all (the limit)",
        ),
    ],
)
def test_bad_filters_are_rejected_with_the_reason(raw: object, message: str) -> None:
    with pytest.raises(InvalidFilter, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_filter(raw)


def test_limits_are_inclusive() -> None:
    assert parse_filter(_nested(MAX_FILTER_DEPTH))
    assert parse_filter({"or": [{"year": i} for i in range(MAX_FILTER_CONDITIONS)]})
    assert parse_filter({"year": {"in": list(range(MAX_IN_VALUES))}})
    assert parse_filter({}) == ()
    assert parse_filter(None) == ()


def test_ne_nin_and_exists_false_are_negations() -> None:
    assert parse_filter({"y": {"ne": 1}}) == parse_filter({"not": {"y": 1}})
    assert parse_filter({"y": {"nin": [1, 2]}}) == parse_filter({"not": {"y": {"in": [1, 2]}}})
    assert parse_filter({"y": {"exists": False}}) == parse_filter({"not": {"y": {"exists": True}}})


def test_values_and_field_names_only_travel_as_parameters() -> None:
    hostile = "x'); DROP TABLE documents; --"
    raw = {
        "or": [
            {"name": hostile},
            {"name": {"contains": hostile}},
            {"name": {"in": [hostile, "y"]}},
            {"name": {"gt": hostile}},
        ]
    }
    for sql, params in (to_sqlite(parse_filter(raw)), to_postgres(parse_filter(raw), "d.metadata")):
        assert "DROP" not in sql
        assert "name" not in sql
        assert any("name" in str(p) for p in params)


# -- properties: every engine selects what Python's `matches` selects --------------------------

# Documents and filter are drawn with slots that an example's palette of a few values then fills,
# so that they meet: most filters select some documents and not others. The pools hold what tells
# engines apart: ASCII and non-ASCII case, booleans beside 0 and 1, integers a double cannot hold
# beside the double, -0.0, strings that look like numbers, lists, objects and nulls.
FIELD_NAMES = ["a", "x.y-1"]
FIELDS = st.sampled_from(FIELD_NAMES)
STRINGS = st.one_of(
    st.sampled_from(["a", "A", "ab", "aB", "b", "é", "É", "ß", "1", "true", "Ab c", ""]),
    st.text(alphabet="aAbéÉ ", min_size=1, max_size=3),
)
NUMBERS = st.sampled_from(
    [-1, 0, 1, 2, 0.5, -0.0, 1.0, 2.5, 1e16, 2**53, 2**53 + 1, 2.0**53, -(2**63), 2**63 - 1]
)
SCALARS = st.one_of(STRINGS, NUMBERS, st.booleans())
PALETTE_SIZE = 3
CASINGS = [str, str.upper, str.lower, str.swapcase, lambda t: t[1:], lambda t: t[:-1]]


@dataclass(frozen=True, slots=True)
class Slot:
    """A palette value: as is, as a range bound (not a boolean), or as a `contains` needle."""

    index: int
    use: str = "value"
    casing: int = 0

    def fill(self, palette: list[Any]) -> Any:
        value = palette[self.index % len(palette)]
        if self.use == "bound" and isinstance(value, bool):
            return int(value)
        if self.use == "needle":
            # A number or boolean as its JSON text: "1" must not find 1 in a list.
            text = value if isinstance(value, str) else orjson.dumps(value).decode()
            return CASINGS[self.casing](text) or text or "a"
        return value


def fill(tree: Any, palette: list[Any]) -> Any:
    if isinstance(tree, Slot):
        return tree.fill(palette)
    if isinstance(tree, dict):
        return {key: fill(value, palette) for key, value in tree.items()}
    if isinstance(tree, list):
        return [fill(item, palette) for item in tree]
    return tree


VALUE = st.builds(Slot, st.integers(0, PALETTE_SIZE - 1))


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of `choices`, each drawn in proportion to its weight (`st.one_of` of the same
    strategy twice does not weigh it double)."""
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


STORED = weighted(
    (5, VALUE),
    (1, st.none()),
    (1, st.lists(VALUE, max_size=3)),
    (1, st.lists(st.one_of(VALUE, st.none()), max_size=3)),
    (1, st.dictionaries(FIELDS, VALUE, max_size=2)),
)
METADATA = st.fixed_dictionaries({}, optional=dict.fromkeys(FIELD_NAMES, STORED))
OPERANDS: dict[str, st.SearchStrategy[Any]] = {
    "eq": VALUE,
    "ne": VALUE,
    "in": st.lists(VALUE, min_size=1, max_size=3),
    "nin": st.lists(VALUE, min_size=1, max_size=3),
    "exists": st.booleans(),
    "contains": st.builds(
        Slot, st.integers(0, PALETTE_SIZE - 1), st.just("needle"), st.integers(0, 5)
    ),
    **dict.fromkeys(
        ["gt", "gte", "lt", "lte"],
        st.builds(Slot, st.integers(0, PALETTE_SIZE - 1), st.just("bound")),
    ),
}
# `contains` and ranges weigh more: they have the most ways to differ between engines.
OPERATORS = [*OPERANDS, "contains", "contains", "contains", "gt", "lte"]
OPERATOR_SPECS = st.lists(st.sampled_from(OPERATORS), min_size=1, max_size=2, unique=True).flatmap(
    lambda ops: st.fixed_dictionaries({op: OPERANDS[op] for op in ops})
)
FILTERS = st.recursive(
    st.dictionaries(FIELDS, weighted((1, VALUE), (2, OPERATOR_SPECS)), min_size=1, max_size=1),
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda fs: {"and": fs}),
        st.lists(children, min_size=1, max_size=3).map(lambda fs: {"or": fs}),
        children.map(lambda f: {"not": f}),
        st.tuples(children, children).map(lambda pair: {**pair[0], **pair[1]}),
    ),
    max_leaves=8,
)


def _depth(raw: Mapping[str, Any]) -> int:
    depths = [0]
    for key, value in raw.items():
        if key in ("and", "or"):
            depths.append(1 + max(_depth(item) for item in value))
        elif key == "not":
            depths.append(1 + _depth(value))
    return max(depths)


# Palettes of values that only an exact engine tells apart, drawn two times in three.
CLOSE_CALLS = [
    [2**53 + 1, 2.0**53],
    [10**16 + 1, 1e16],
    ["1", 1],
    [1, True, 1.0],
    [0, -0.0, False],
    ["É", "é"],
    ["a", "A", "aB"],
    ["ß", "SS"],
]
PALETTES = weighted(
    (1, st.lists(SCALARS, min_size=1, max_size=PALETTE_SIZE)), (2, st.sampled_from(CLOSE_CALLS))
)
CASES = st.tuples(
    PALETTES,
    st.lists(METADATA, min_size=3, max_size=12),
    FILTERS.filter(lambda raw: _depth(raw) <= MAX_FILTER_DEPTH),
).map(lambda case: (fill(case[1], case[0]), fill(case[2], case[0])))


@given(case=CASES)
@settings(max_examples=1000, deadline=None)
def test_sqlite_selects_what_python_matches(case: tuple[list[Metadata], dict[str, Any]]) -> None:
    docs, raw = case
    assert sqlite_select(docs, raw) == python_select(docs, raw)


@pytest.mark.postgres
@given(case=CASES)
@settings(max_examples=1000, deadline=None)
def test_postgres_selects_what_python_matches(
    postgres: Postgres, case: tuple[list[Metadata], dict[str, Any]]
) -> None:
    docs, raw = case
    assert postgres.select(docs, raw) == python_select(docs, raw)
