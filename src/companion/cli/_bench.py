"""`companion bench`: run the benchmark suite and write JSON / Markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["bench"]


def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="Short run (under a minute) for CI.")
    ] = False,
    only: Annotated[
        str | None, typer.Option(help="Comma-separated groups, e.g. `cache,monitoring`.")
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write results as JSON.")] = None,
    md_path: Annotated[Path | None, typer.Option("--md", help="Write a Markdown table.")] = None,
    plot_path: Annotated[
        Path | None,
        typer.Option("--plot", help="Draw each figure against its target (.png or .svg)."),
    ] = None,
) -> None:
    """Measure every figure next to its peer in the same run; print medians, ratios and verdicts."""
    import orjson
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.table import Table

    from companion.bench import FULL, QUICK, Case, RowResult, load_cases, run_suite, to_markdown
    from companion.bench._plot import plot
    from companion.bench._render import HEADERS, row_cells

    groups = [name.strip() for name in only.split(",") if name.strip()] if only else None
    cases = load_cases(groups, quick=quick)
    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"{cases[0].group}: {cases[0].name}", total=len(cases))

        def on_row(case: Case, _: RowResult) -> None:
            done = next(i for i, each in enumerate(cases) if each is case) + 1
            following = cases[done] if done < len(cases) else None
            label = f"{following.group}: {following.name}" if following else "done"
            progress.update(task, advance=1, description=label)

        report = run_suite(
            cases,
            QUICK if quick else FULL,
            mode="quick" if quick else "full",
            on_row=on_row,
        )
    table = Table(*HEADERS, title=f"companion bench ({report.mode})")
    for row in report.rows:
        table.add_row(*row_cells(row))
    Console().print(table)
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2))
    if md_path is not None:
        md_path.write_text(to_markdown(report))
    if plot_path is not None:
        plot(report, plot_path)
