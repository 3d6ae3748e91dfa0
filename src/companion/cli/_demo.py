"""`companion demo`: replay the seed's Phase 5 demo section by section."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["demo"]


def demo(
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Profiling, L1/L2 caching, monitoring, the pipeline, code, tools and search, measured."""
    import orjson
    from rich.console import Console

    from companion.demo import Section, run_demo

    console = Console()

    def show(section: Section) -> None:
        if json_output:
            return
        console.print(f"\n[bold]{section.title}[/bold]")
        if section.skipped:
            console.print(f"  [yellow]skipped:[/yellow] {section.skipped}")
        for line in section.lines:
            console.print(f"  {line}", highlight=False, soft_wrap=True)

    report = run_demo(on_section=show)
    if json_output:
        typer.echo(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode())
        return
    done = [s for s in report.sections if not s.skipped]
    console.print(
        f"\n[bold green]✓ {len(done)} of {len(report.sections)} sections ran[/bold green]"
    )
    console.print("\n[bold]Performance Highlights:[/bold]")
    for line in report.highlights:
        console.print(f"- {line}", highlight=False, soft_wrap=True)
    console.print(f"\nTotal demo time: {report.elapsed_s:.2f}s")
