"""`companion ingest DIR` stays inside DIR: links out of it are skipped and named, unless asked.

A link to `/proc/self/environ` in an ingested folder made the CLI's own environment searchable.
Real links on a real file system, a real `companion` process.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import _run

CANARY = "zebracanary"  # in the CLI's environment only: never in any file of the folder


def _search(query: str, env: dict[str, str]) -> list[str]:
    found = _run("search", query, "--collection", "docs", "--json", env=env)
    assert found.returncode == 0, found.stderr
    return [hit["document_id"] for hit in json.loads(found.stdout)["results"]]


def test_links_out_of_the_folder_are_skipped_and_named(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "secret.md").write_text("The vault code is quokka.")
    (outside / "folder" / "more.md").write_text("Wombats live in burrows.")
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.md").write_text("# Solar\n\nThe sun is a star.")
    (corpus / "env.txt").symlink_to("/proc/self/environ")
    (corpus / "sub" / "secret.md").symlink_to(outside / "secret.md")
    (corpus / "linked").symlink_to(outside / "folder", target_is_directory=True)
    (corpus / "alias.md").symlink_to(corpus / "a.md")  # stays inside: read
    (corpus / "loop").symlink_to(corpus, target_is_directory=True)  # inside: walked once
    env = {"COMPANION_DATA_DIR": str(tmp_path / "data"), "CANARY_VARIABLE": CANARY}

    done = _run("ingest", str(corpus), "--collection", "docs", env=env)
    assert done.returncode == 0, done.stderr
    assert "│     2 │         2 │" in done.stdout  # a.md and alias.md, nothing else
    summary = done.stdout[done.stdout.index("skipped 3 links") :]
    assert f"{corpus / 'env.txt'} -> /proc/" in summary
    assert f"{corpus / 'linked'} -> {outside / 'folder'}" in summary
    assert f"{corpus / 'sub' / 'secret.md'} -> {outside / 'secret.md'}" in summary
    assert "--follow-links" in summary
    assert _search(CANARY, env) == []
    assert _search("quokka", env) == []
    assert _search("wombats", env) == []
    assert sorted(_search("sun star", env)) == ["a.md", "alias.md"]


def test_follow_links_reads_them_when_asked(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("The vault code is quokka.")
    (outside / "back").symlink_to(outside, target_is_directory=True)  # a loop out there
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "secret.md").symlink_to(outside / "secret.md")
    (corpus / "linked").symlink_to(outside, target_is_directory=True)
    env = {"COMPANION_DATA_DIR": str(tmp_path / "data")}

    done = _run("ingest", str(corpus), "--collection", "docs", "--follow-links", env=env)
    assert done.returncode == 0, done.stderr
    assert "skipped" not in done.stdout
    assert sorted(_search("quokka", env)) == ["linked/secret.md", "secret.md"]
