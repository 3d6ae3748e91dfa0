"""`companion ingest` and `companion search` as a user runs them (real subprocesses, real store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli import _run


def test_ingest_a_folder_then_search(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.md").write_text("# Solar\n\nThe sun is a star.\n\nIt shines.")
    (corpus / "sub" / "b.html").write_text(
        "<html><title>Moon</title><p>The moon orbits.</p></html>"
    )
    (corpus / "sub" / "c.jsonl").write_text('{"id": "c1", "text": "Comets have tails."}\n')
    (corpus / "ignored.bin").write_bytes(b"\x00\x01")
    env = {"COMPANION_DATA_DIR": str(tmp_path / "data")}
    done = _run("ingest", str(corpus), "--collection", "space", env=env)
    assert done.returncode == 0, done.stderr
    assert "ingested into 'space'" in done.stdout
    assert " 3 " in done.stdout  # three files, three documents
    found = _run("search", "comet tails", "--collection", "space", "--json", env=env)
    assert found.returncode == 0, found.stderr
    body = json.loads(found.stdout)
    assert body["results"][0]["document_id"] == "c1"
    again = _run("ingest", str(corpus), "--collection", "space", env=env)
    assert again.returncode == 0
    assert "│     3 │         3 │         3 │" in again.stdout  # all unchanged: nothing rewritten
    table = _run("search", "moon", "--collection", "space", env=env)
    assert "Moon" in table.stdout or "moon" in table.stdout


def test_the_search_table_cites_headings_and_prints_text_as_it_is(tmp_path: Path) -> None:
    """The table shows where a passage is (its headings, a PDF's page), and a document's text as
    it is: "[/x]" used to be read as console markup (failing the whole table), and the snippet's
    HTML escapes were printed as they came."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "ports.md").write_text(
        "# Setup\n\n## Ports\n\nThe harbour gate opens [/x] at [bold]dawn[/bold] & it's <shut>.\n"
    )
    env = {"COMPANION_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"}
    assert _run("ingest", str(corpus), "--collection", "c", env=env).returncode == 0
    table = _run("search", "harbour gate [/q]", "--collection", "c", env=env)
    assert table.returncode == 0, table.stderr
    assert "'harbour gate [/q]' in 'c'" in table.stdout  # the query is no markup either
    assert "where" in table.stdout
    assert "Setup > Ports" in table.stdout
    assert "opens [/x] at [bold]dawn[/bold] & it's <shut>." in table.stdout  # not &amp; &#x27;


def test_search_errors_are_one_line(tmp_path: Path) -> None:
    env = {"COMPANION_DATA_DIR": str(tmp_path)}
    missing = _run("search", "x", "--collection", "nope", env=env)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "companion: collection 'nope' does not exist"
    _run("ingest", str(tmp_path), "--collection", "empty", env=env)
    vector = _run("search", "x", "--collection", "empty", "--mode", "vector", env=env)
    assert vector.returncode == 2
    assert "embedding model" in vector.stderr


def test_eval_retrieval_prints_scores(tmp_path: Path) -> None:
    data = Path(__file__).parents[1] / "knowledge" / "data" / "tiny_beir"
    env = {"COMPANION_DATA_DIR": str(tmp_path), "COMPANION_KNOWLEDGE_EMBEDDER": "none"}
    done = _run(
        "eval-retrieval",
        str(data / "corpus.jsonl"),
        str(data / "queries.jsonl"),
        str(data / "qrels.tsv"),
        "--json",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)
    assert row["mode"] == "bm25"
    assert row["queries"] == 8
    assert "bm25 only" in done.stderr


@pytest.mark.postgres
def test_eval_retrieval_scores_the_configured_postgres_store_and_cleans_up(
    tmp_path: Path, database_url: str, pg_schema: str
) -> None:
    import psycopg

    data = Path(__file__).parents[1] / "knowledge" / "data" / "tiny_beir"
    files = [str(data / name) for name in ("corpus.jsonl", "queries.jsonl", "qrels.tsv")]
    env = {"COMPANION_DATA_DIR": str(tmp_path), "COMPANION_KNOWLEDGE_EMBEDDER": "none"}
    embedded = _run("eval-retrieval", *files, "--json", env=env)
    configured = _run(
        "eval-retrieval",
        *files,
        "--store",
        "configured",
        "--json",
        env={**env, "COMPANION_DATABASE_URL": database_url, "COMPANION_DATABASE_SCHEMA": pg_schema},
    )
    assert configured.returncode == 0, configured.stderr
    assert json.loads(configured.stdout) == json.loads(embedded.stdout)
    with psycopg.connect(database_url, autocommit=True) as conn:
        left = conn.execute(f'SELECT COUNT(*) FROM "{pg_schema}".kb_collections').fetchone()
    assert left == (0,)  # the evaluation's collection is gone


def _folder_of_files(root: Path) -> Path:
    from tests.knowledge.test_parsing import make_docx, make_pdf

    folder = root / "library"
    (folder / "manuals").mkdir(parents=True)
    (folder / "guide.pdf").write_bytes(make_pdf(["Tides and harbours.", "Lighthouse keepers."]))
    (folder / "manuals" / "manual.docx").write_bytes(make_docx())
    (folder / "rows.csv").write_text("id,text\nr1,Crabs hide under rocks\nr2,bad,extra\n")
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # not a format we read: not listed
    return folder


def test_ingest_reads_every_format_and_lists_what_it_left_out(tmp_path: Path) -> None:
    folder = _folder_of_files(tmp_path)
    env = {"COMPANION_DATA_DIR": str(tmp_path / "data"), "COMPANION_KNOWLEDGE_EMBEDDER": "none"}
    done = _run("ingest", str(folder), "--collection", "lib", env=env)
    assert done.returncode == 1, done.stderr  # something was left out
    assert "left out: rows.csv:3:" in done.stderr
    assert "photo.png" not in done.stdout + done.stderr
    found = _run("search", "lighthouse keepers", "--collection", "lib", "--json", env=env)
    [hit] = json.loads(found.stdout)["results"][:1]
    assert (hit["document_id"], hit["page"]) == ("guide.pdf", 2)
    docx = _run("search", "debian", "--collection", "lib", "--json", env=env)
    assert json.loads(docx.stdout)["results"][0]["document_id"] == "manuals/manual.docx"


@pytest.mark.slow
@pytest.mark.sandbox
def test_ingest_with_url_uploads_through_the_api(tmp_path: Path) -> None:
    from tests.client.test_client import served

    folder = _folder_of_files(tmp_path)
    with served(tmp_path / "served") as (url, keys):
        env = {"COMPANION_API_KEY": keys["knowledge"]}
        done = _run("ingest", str(folder), "--collection", "lib", "--url", url, env=env)
        assert done.returncode == 1, done.stderr
        assert "left out: rows.csv:3:" in done.stderr
        found = _run(
            "search", "lighthouse keepers", "--collection", "lib", "--json", "--url", url, env=env
        )
        assert found.returncode == 0, found.stderr
        [hit] = json.loads(found.stdout)["results"][:1]
        assert (hit["document_id"], hit["page"]) == ("guide.pdf", 2)
