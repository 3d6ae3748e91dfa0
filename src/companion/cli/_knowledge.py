"""`companion ingest`, `companion search` and `companion reindex`: the knowledge base from a shell."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NamedTuple

import typer

from companion.cli._remote import ApiKeyOption, UrlOption, remote_call

if TYPE_CHECKING:
    from companion.knowledge import DocumentInput, KnowledgeBase

__all__ = ["eval_retrieval", "ingest", "reindex", "search"]

TENANT = "default"
CollectionOption = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]


def _knowledge_base() -> KnowledgeBase:
    from companion.config import load_settings
    from companion.knowledge import build_knowledge_base
    from companion.knowledge._embedding_loader import load_embedder

    settings = load_settings()
    return build_knowledge_base(settings, embedder=load_embedder(settings), serving=False)


class _Tree(NamedTuple):
    """The readable files of a folder, and the links left out because they lead out of it."""

    files: list[Path]
    skipped_links: list[tuple[Path, Path]]  # (link, where it leads)


def _files(path: Path, *, follow_links: bool = False) -> _Tree:
    """The files to ingest: PATH itself, or the readable files of the folder, recursively.

    A link to a file or folder outside the folder is left out (and reported) unless
    `follow_links`: a link to `/proc/self/environ` in an ingested folder made this process's own
    environment searchable. Links that stay inside are read as files; linked folders inside are
    already walked under their own name, so only links that lead out are followed, each folder once.
    """
    from companion.errors import InvalidInput
    from companion.knowledge._formats import detect_format

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
                elif entry.is_file() and detect_format(entry) is not None:
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
            elif detect_format(entry) is not None:
                if not (follow_links or target.is_relative_to(root)):
                    tree.skipped_links.append((entry, target))
                elif target.is_file():
                    tree.files.append(entry)

    walk(path)
    return tree


def ingest(
    path: Annotated[Path, typer.Argument(help="A file, or a folder read recursively.")],
    collection: CollectionOption,
    batch_size: Annotated[int, typer.Option(help="Documents committed per transaction.")] = 64,
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
) -> None:
    """Add the documents in PATH (text, Markdown, HTML, JSON lines) to a collection."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from companion.knowledge import CollectionNotFound, EmbeddingProgress, read_documents

    files, skipped_links = _files(path, follow_links=follow_links)
    console = Console(stderr=True)

    def documents() -> Iterator[DocumentInput]:
        base = path if path.is_dir() else path.parent
        for file in files:
            yield from read_documents(file, base=base)
            progress.advance(task)

    async def run() -> tuple[int, int, int, float]:
        kb = _knowledge_base()
        await kb.start()
        try:
            try:
                await kb.get_collection(TENANT, collection)
            except CollectionNotFound:
                await kb.create_collection(TENANT, collection)
            started = time.perf_counter()
            report = await kb.ingest(TENANT, collection, documents(), batch_size=batch_size)
            if wait and kb.embedding_queue is not None:
                embedding = progress.add_task("embedding chunks", total=None)

                def show(state: EmbeddingProgress) -> None:
                    total = state.pending + state.embedded
                    progress.update(embedding, total=total, completed=state.embedded)

                await kb.wait_for_embeddings(TENANT, collection, on_progress=show)
            elapsed = time.perf_counter() - started
        finally:
            await kb.close()
        return report.documents_done, report.documents_skipped, report.chunks_written, elapsed

    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*Progress.get_default_columns()[:1], *columns, console=console) as progress:
        task = progress.add_task("ingesting files", total=len(files))
        done, skipped, chunks, elapsed = asyncio.run(run())
    table = Table(title=f"ingested into {collection!r}")
    for column in ("files", "documents", "unchanged", "chunks written", "seconds", "chunks/s"):
        table.add_column(column, justify="right")
    rate = chunks / elapsed if elapsed > 0 else 0.0
    table.add_row(
        str(len(files)), str(done), str(skipped), str(chunks), f"{elapsed:.2f}", f"{rate:.0f}"
    )
    Console().print(table)
    _report_skipped_links(path, skipped_links)


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
    table = Table(title=f"{query!r} in {collection!r} ({mode}, {body['took_ms']} ms)")
    for column in ("#", "score", "document", "snippet"):
        table.add_column(column)
    results = body["results"]
    assert isinstance(results, list)
    for rank, hit in enumerate(results, start=1):
        snippet = (
            (hit["snippet"] or hit["text"][:200])
            .replace("<mark>", "[bold]")
            .replace("</mark>", "[/bold]")
        )
        table.add_row(str(rank), f"{hit['score']:.3f}", hit["chunk_id"], snippet)
    Console().print(table)


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
