"""The judged set made from the docs: one query per named section, its own section relevant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from companion.bench._docs_judged import docs_judged_set
from companion.errors import FeatureUnavailable
from companion.knowledge._evaluation import load_qrels

BODY = "Words that explain the section in enough prose to be worth finding again. " * 4


def test_each_named_section_is_a_query_for_itself(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    (repository / "docs").mkdir(parents=True)
    (repository / "docs" / "guide.md").write_text(
        f"# Install the service\n\n{BODY}\n\n## Usage\n\n{BODY}\n\n## Tiny part\n\nshort\n"
        f"## Scaling `several` nodes\n\n{BODY}\n"
    )
    (repository / "README.md").write_text(f"# Install the service\n\n{BODY}\n")
    corpus, queries, qrels = docs_judged_set(tmp_path / "out", repository)
    texts = {row["_id"]: row["text"] for row in map(json.loads, queries.read_text().splitlines())}
    # One-word, too short and repeated headings are left out; markup is not part of a query.
    assert sorted(texts.values()) == ["Install the service", "Scaling several nodes"]
    documents = [json.loads(line) for line in corpus.read_text().splitlines()]
    assert len(documents) == 4  # the one-word and repeated headings' sections too, not the tiny one
    assert all("#" not in doc["text"] for doc in documents)
    judged = load_qrels(qrels)
    assert judged == {qid: {qid.removeprefix("q-"): 1} for qid in texts}


def test_without_docs_it_says_where_to_run(tmp_path: Path) -> None:
    with pytest.raises(FeatureUnavailable, match="from a checkout"):
        docs_judged_set(tmp_path / "out", tmp_path)
