"""`companion ingest`, `companion search` and `companion reindex`: the knowledge base from a shell."""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import typer

from companion.cli._remote import ApiKeyOption, UrlOption, connect, remote_call

if TYPE_CHECKING:
    from rich.text import Text

    from companion.knowledge import KnowledgeBase

__all__ = ["eval_retrieval", "ingest", "reindex", "search"]

TENANT = "default"
CollectionOption = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]


def _knowledge_base() -> KnowledgeBase:
    from companion.config import load_settings
    from companion.knowledge import build_knowledge_base
    from companion.knowledge._embedding_loader import ModelDirectory

    settings = load_settings()
    source = ModelDirectory(settings)  # names what is missing when there is no model
    return build_knowledge_base(
        settings, embedder=source.load(), serving=False, embedder_source=source
    )


class _Tree(NamedTuple):
    """The readable files of a folder, and the links left out because they lead out of it."""

    files: list[Path]
    skipped_links: list[tuple[Path, Path]]  # (link, where it leads)


def _readable(path: Path) -> bool:
    """Whether a file in a folder is one to read: its name says a format we parse."""
    from companion.knowledge._parsing._detect import claimed_format

    return claimed_format(filename=path.name, content_type=None) is not None


def _files(path: Path, *, follow_links: bool = False) -> _Tree:
    """The files to ingest: PATH itself, or the readable files of the folder, recursively.

    A link to a file or folder outside the folder is left out (and reported) unless
    `follow_links`: a link to `/proc/self/environ` in an ingested folder made this process's own
    environment searchable. Links that stay inside are read as files; linked folders inside are
    already walked under their own name, so only links that lead out are followed, each folder once.
    """
    from companion.errors import InvalidInput

    if path.is_file():
        return _Tree([path], [])  # named on the command line: the user asked for this one
    if not path.is_dir():
        raise InvalidInput(f"{path}: no such file or folder")
    root = path.resolve()
    tree = _Tree([], [])
    walked = {root}

    def walk(folder: Path) -> None:
        for entry in sorted(folder.iterdir()):
            if not entry.is_symlink():
                if entry.is_dir():
                    walk(entry)
                elif entry.is_file() and _readable(entry):
                    tree.files.append(entry)
                continue
            target = entry.resolve()
            if target.is_dir():
                if target.is_relative_to(root) or target in walked:
                    continue  # walked under its own name already (or a loop)
                if not follow_links:
                    tree.skipped_links.append((entry, target))
                    continue
                walked.add(target)
                walk(entry)
            elif _readable(entry):
                if not (follow_links or target.is_relative_to(root)):
                    tree.skipped_links.append((entry, target))
                elif target.is_file():
                    tree.files.append(entry)

    walk(path)
    return tree


def ingest(
    path: Annotated[Path, typer.Argument(help="A file, or a folder read recursively.")],
    collection: CollectionOption,
    wait: Annotated[
        bool,
        typer.Option(
            help="Wait for the embedding queue to embed every chunk (else it resumes on the "
            "next `companion serve` or ingest)."
        ),
    ] = True,
    follow_links: Annotated[
        bool,
        typer.Option(
            "--follow-links",
            help="Also read links that lead out of the folder (left out and listed otherwise).",
        ),
    ] = False,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Add the files in PATH (PDF, Word, HTML, Markdown, text, CSV, JSON lines) to a collection.

    A file or row that cannot be read is listed with why, the rest is written, and the exit
    code is 1 when anything was left out.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    files, skipped_links = _files(path, follow_links=follow_links)
    base = path if path.is_dir() else path.parent
    console = Console(stderr=True)
    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*Progress.get_default_columns()[:1], *columns, console=console) as progress:
        task = progress.add_task("ingesting files", total=len(files))
        started = time.perf_counter()
        if url is not None:
            reports = _upload(url, api_key, collection, files, base, lambda: progress.advance(task))
        else:
            reports = asyncio.run(_ingest_locally(collection, files, base, wait, progress, task))
        elapsed = time.perf_counter() - started
    _print_ingest(collection, reports, elapsed)
    _report_skipped_links(path, skipped_links)
    if any(report["problems"] for report in reports):
        raise typer.Exit(1)


async def _ingest_locally(
    collection: str, files: list[Path], base: Path, wait: bool, progress: Any, task: Any
) -> list[dict[str, Any]]:
    from companion.knowledge import EmbeddingProgress

    kb = _knowledge_base()
    await kb.start()
    try:
        await kb.ensure_collection(TENANT, collection)
        reports = []
        for file in files:
            data = await asyncio.to_thread(file.read_bytes)
            name = file.relative_to(base).as_posix() if file.is_relative_to(base) else file.name
            report = await kb.ingest_file(TENANT, collection, data, filename=name)
            reports.append(report.to_dict())
            progress.advance(task)
        if wait and kb.embedding_queue is not None:
            embedding = progress.add_task("embedding chunks", total=None)

            def show(state: EmbeddingProgress) -> None:
                total = state.pending + state.embedded
                progress.update(embedding, total=total, completed=state.embedded)

            await kb.wait_for_embeddings(TENANT, collection, on_progress=show)
    finally:
        await kb.close()
    return reports


def _upload(
    url: str,
    api_key: str | None,
    collection: str,
    files: list[Path],
    base: Path,
    advance: Callable[[], None],
) -> list[dict[str, Any]]:
    """Each file through `POST /v1/collections/{c}/files` of the service at `url`."""
    reports: list[dict[str, Any]] = []
    with connect(url, api_key) as client:
        client.ensure_collection(collection)
        for file in files:
            name = file.relative_to(base).as_posix() if file.is_relative_to(base) else file.name
            answer = client.upload_files(collection, {name: file.read_bytes()})
            reports.extend(answer.raw["files"])
            advance()
    return reports


def _print_ingest(collection: str, reports: list[dict[str, Any]], elapsed: float) -> None:
    from rich.console import Console
    from rich.table import Table

    written = sum(int(report["written"]) for report in reports)
    unchanged = sum(int(report["unchanged"]) for report in reports)
    chunks = sum(int(report["chunks_written"]) for report in reports)
    problems = [problem for report in reports for problem in report["problems"]]
    table = Table(title=f"ingested into {collection!r}")
    columns = (
        "files",
        "documents",
        "unchanged",
        "chunks written",
        "problems",
        "seconds",
        "chunks/s",
    )
    for column in columns:
        table.add_column(column, justify="right")
    rate = chunks / elapsed if elapsed > 0 else 0.0
    table.add_row(
        str(len(reports)),
        str(written + unchanged),
        str(unchanged),
        str(chunks),
        str(len(problems)),
        f"{elapsed:.2f}",
        f"{rate:.0f}",
    )
    Console().print(table)
    for problem in problems:
        where = str(problem["file"])
        if problem.get("line") is not None:
            where += f":{problem['line']}"
        if problem.get("page") is not None:
            where += f" (page {problem['page']})"
        typer.echo(f"left out: {where}: {problem['message']}", err=True)


def _report_skipped_links(path: Path, links: list[tuple[Path, Path]], shown: int = 20) -> None:
    """Name the links left out, so nothing is missing from the collection without a word."""
    if not links:
        return
    noun = "link" if len(links) == 1 else "links"
    typer.echo(f"skipped {len(links)} {noun} leading out of {path} (--follow-links reads them):")
    for link, target in links[:shown]:
        typer.echo(f"  {link} -> {target}")
    if len(links) > shown:
        typer.echo(f"  ... and {len(links) - shown} more")


def search(
    query: Annotated[str, typer.Argument(help="What to search for.")],
    collection: CollectionOption,
    mode: Annotated[str, typer.Option(help="bm25, vector or hybrid.")] = "bm25",
    k: Annotated[int, typer.Option("--k", "-k", help="How many results.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Search a collection and print the best chunks."""
    import orjson
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    async def run() -> dict[str, object]:
        kb = _knowledge_base()
        await kb.start()
        try:
            result = await kb.search(TENANT, collection, query, mode=mode, k=k)
        finally:
            await kb.close()
        return result.to_dict()

    if url is not None:
        path = f"/v1/collections/{collection}/search"
        body = remote_call(url, api_key, "POST", path, {"query": query, "mode": mode, "k": k})
    else:
        body = asyncio.run(run())
    if as_json:
        typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    results = body["results"]
    assert isinstance(results, list)
    # The citation column only when some hit has one (a page of a PDF, headings above it).
    cited = any(hit.get("page") is not None or hit.get("headings") for hit in results)
    table = Table(title=Text(f"{query!r} in {collection!r} ({mode}, {body['took_ms']} ms)"))
    for column in ("#", "score", "document", *(("where",) if cited else ()), "snippet"):
        table.add_column(column)
    for rank, hit in enumerate(results, start=1):
        where = (_citation(hit),) if cited else ()
        table.add_row(
            str(rank), f"{hit['score']:.3f}", Text(hit["chunk_id"]), *where, _snippet(hit)
        )
    Console().print(table)
    warnings = body.get("warnings") or []
    assert isinstance(warnings, list)
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)


def _citation(hit: dict[str, Any]) -> Text:
    """Where a hit is, to cite it: `p. 3 · Setup > Ports`."""
    from rich.text import Text

    page = f"p. {hit['page']}" if hit.get("page") is not None else ""
    return Text(" · ".join(part for part in (page, " > ".join(hit.get("headings") or ())) if part))


def _snippet(hit: dict[str, Any]) -> Text:
    """The hit's snippet with its `<mark>` terms in bold. A snippet is HTML-escaped (for pages
    that show it), so its entities are turned back into text; the document's own text is never
    read as console markup (a "[/x]" in a document would otherwise fail the whole table)."""
    from rich.text import Text

    if not hit["snippet"]:
        return Text(hit["text"][:200])
    snippet = Text()
    for number, piece in enumerate(re.split(r"</?mark>", hit["snippet"])):
        snippet.append(html.unescape(piece), style="bold" if number % 2 else "")
    return snippet


def reindex(collection: CollectionOption) -> None:
    """Re-embed every chunk of a collection with the configured embedding model."""

    async def run() -> int:
        kb = _knowledge_base()
        await kb.start()
        try:
            return await kb.reindex(TENANT, collection)
        finally:
            await kb.close()

    count = asyncio.run(run())
    typer.echo(f"re-embedded {count} chunks of {collection!r}")


def eval_retrieval(
    corpus: Annotated[Path, typer.Argument(help="BEIR corpus.jsonl (_id, title, text).")],
    queries: Annotated[Path, typer.Argument(help="BEIR queries.jsonl (_id, text).")],
    qrels: Annotated[Path, typer.Argument(help="BEIR qrels TSV (query-id, corpus-id, score).")],
    modes: Annotated[
        str, typer.Option(help="Comma-separated modes to score.")
    ] = "bm25,vector,hybrid",
    store: Annotated[
        str,
        typer.Option(
            help="`temporary`: a throwaway embedded store; `configured`: the store the settings "
            "choose (PostgreSQL when COMPANION_DATABASE_URL is set), in a collection of its own "
            "that is deleted afterwards."
        ),
    ] = "temporary",
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Score nDCG@10 and recall@100 of each search mode on a BEIR-format dataset."""
    import contextlib
    import tempfile
    import uuid
    from dataclasses import asdict

    import orjson
    from rich.console import Console
    from rich.table import Table

    from companion.config import load_settings
    from companion.knowledge import (
        CollectionNotFound,
        KnowledgeBase,
        SqliteStore,
        build_knowledge_base,
        load_embedder,
    )
    from companion.knowledge._evaluation import evaluate
    from companion.knowledge._validation import check_mode

    if store not in ("temporary", "configured"):
        raise typer.BadParameter("choose `temporary` or `configured`", param_hint="--store")
    wanted = [check_mode(mode.strip()) for mode in modes.split(",") if mode.strip()]
    settings = load_settings()
    embedder = load_embedder(settings)
    if embedder is None:
        wanted = [mode for mode in wanted if mode == "bm25"]
        typer.echo("companion: no embedding model: scoring bm25 only", err=True)

    async def score(kb: KnowledgeBase, collection: str) -> list[dict[str, object]]:
        await kb.start()
        try:
            found = await evaluate(
                kb, corpus, queries, qrels, wanted, tenant="eval", collection=collection
            )
            return [asdict(s) for s in found]
        finally:
            if store == "configured":
                with contextlib.suppress(CollectionNotFound):
                    await kb.delete_collection("eval", collection)
            await kb.close()

    if store == "configured":
        kb = build_knowledge_base(settings, embedder=embedder, serving=False)
        scores = asyncio.run(score(kb, f"eval-{uuid.uuid4().hex[:12]}"))
    else:
        with tempfile.TemporaryDirectory(prefix="companion-eval-") as root:
            scores = asyncio.run(score(KnowledgeBase(SqliteStore(Path(root)), embedder), "beir"))
    if as_json:
        typer.echo(orjson.dumps(scores, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(
        "mode",
        "nDCG@10",
        "recall@100",
        "queries",
        title=f"retrieval on {corpus.parent}, {store} store",
    )
    for row in scores:
        table.add_row(
            str(row["mode"]),
            f"{row['ndcg_at_10']:.4f}",
            f"{row['recall_at_100']:.4f}",
            str(row["queries"]),
        )
    Console().print(table)
