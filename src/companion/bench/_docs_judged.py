"""A judged retrieval set in BEIR's layout, made from this project's own documentation.

Each section of `docs/*.md` and the README becomes a document *without* its heading; a heading of
two words or more is a query, and its own section the one relevant document (a known-item set).
The heading's words must be found in the section's prose, among about a hundred sections about the
same product, so the set tells rankings apart. It is no human-judged benchmark: its figures are
compared between stores or versions in one run, never with published scores.
"""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from companion.errors import FeatureUnavailable

__all__ = ["REPOSITORY", "docs_judged_set"]

REPOSITORY = Path(__file__).resolve().parents[3]
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*$", re.M)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]+")


def docs_judged_set(out: Path, repository: Path = REPOSITORY) -> tuple[Path, Path, Path]:
    """Write `corpus.jsonl`, `queries.jsonl` and `qrels.tsv` into `out`; return their paths."""
    sources = [*sorted((repository / "docs").glob("*.md")), repository / "README.md"]
    sources = [path for path in sources if path.is_file()]
    if not sources:
        raise FeatureUnavailable(
            f"the judged set is made from the project's docs, which are not in {repository} "
            "(run the benchmark from a checkout)"
        )
    corpus: list[bytes] = []
    queries: list[bytes] = []
    qrels = ["query-id\tcorpus-id\tscore"]
    seen: set[str] = set()
    for path in sources:
        text = path.read_text(encoding="utf-8")
        headings = list(_HEADING.finditer(text))
        for number, heading in enumerate(headings):
            end = headings[number + 1].start() if number + 1 < len(headings) else len(text)
            body = text[heading.end() : end].strip()
            if len(body) < 200:
                continue
            doc_id = f"{path.stem}-{number}"
            corpus.append(orjson.dumps({"_id": doc_id, "title": "", "text": body}))
            query = " ".join(_WORD.findall(heading.group(2)))
            # One-word headings ("Usage") and repeated ones name no section in particular: their
            # sections stay in the corpus, as distractors, with no query of their own.
            if len(query.split()) < 2 or query.lower() in seen:
                continue
            seen.add(query.lower())
            queries.append(orjson.dumps({"_id": f"q-{doc_id}", "text": query}))
            qrels.append(f"q-{doc_id}\t{doc_id}\t1")
    out.mkdir(parents=True, exist_ok=True)
    paths = (out / "corpus.jsonl", out / "queries.jsonl", out / "qrels.tsv")
    paths[0].write_bytes(b"\n".join(corpus) + b"\n")
    paths[1].write_bytes(b"\n".join(queries) + b"\n")
    paths[2].write_text("\n".join(qrels) + "\n", encoding="utf-8")
    return paths
