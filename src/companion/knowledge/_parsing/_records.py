"""CSV and JSON lines: one document per row or line; a bad row or line is reported with its line number
and skipped, and every good one is kept.

CSV: the first row is the header. With a `text` column, it is the document's text, and `id` and
`title` columns are its id and title; without one, the text is the row as `column: value` lines.
The other columns are the metadata, numbers and `true`/`false` typed so that range filters work
(`"01234"` stays a string). A quoted field left open is reported at the row's first line and reading
resumes on the next line, so one stray quote does not swallow the rest of the file.

JSON lines: each line an object `{"text", "id"|"_id"?, "title"?, "metadata"?}`, as before.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

import orjson

from companion.knowledge._parsing._context import DocumentBuilder, ParseContext
from companion.knowledge._parsing._results import ParsedDocument

__all__ = ["parse_csv", "parse_jsonl"]

_DELIMITERS = (",", ";", "\t", "|")
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]{0,14})")
_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]{0,14})\.[0-9]{1,15}")
_WIDE_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")


def parse_csv(data: bytes, context: ParseContext) -> list[ParsedDocument]:
    """One document per row after the header."""
    lines = io.StringIO(context.decode(data), newline="").readlines()
    reader = _CsvRows(context, lines, _delimiter(context, lines))
    return reader.read()


class _CsvRows:
    """Reads rows, restarting after a row whose quotes run over lines and break it."""

    def __init__(self, context: ParseContext, lines: list[str], delimiter: str) -> None:
        self.context = context
        self.lines = lines
        self.delimiter = delimiter
        self.header: list[str] | None = None
        self.documents: list[ParsedDocument] = []
        # Lines read over all restarts: bounded, so a file of open quotes costs linear time.
        self._work_left = 4 * len(lines) + 1000
        self._rows = 0

    def read(self) -> list[ParsedDocument]:
        position = 0
        while position < len(self.lines) and not self.context.stopped:
            resume = self._read_from(position)
            if resume is None:
                break
            if self._work_left <= 0:
                self.context.problem("too many broken rows; the rest was not read", line=resume + 1)
                break
            position = resume
        return self.documents

    def _read_from(self, position: int) -> int | None:
        """Read rows from line index `position`; the index to resume at after a broken row."""
        rows = csv.reader(
            itertools.islice(self.lines, position, None), delimiter=self.delimiter, strict=True
        )
        read = 0
        try:
            for row in rows:
                first, last = position + read + 1, position + rows.line_num
                self._work_left -= rows.line_num - read
                read = rows.line_num
                if not self._row(row, first, last):
                    return first  # resume on the line after the broken row's first
                if self.context.stopped:
                    return None
        except csv.Error as exc:
            self._work_left -= rows.line_num - read
            self.context.problem(f"not valid CSV ({exc}); row skipped", line=position + read + 1)
            return position + read + 1
        return None

    def _row(self, row: list[str], first: int, last: int) -> bool:
        """Handle one row; False when it was broken across lines and reading must resume."""
        self._rows += 1
        if self._rows % 256 == 0 and not self.context.in_time(f"line {first}"):
            return True
        if not any(cell.strip() for cell in row):
            return True
        if self.header is None:
            self.header = _header(row)
            return True
        if len(row) > len(self.header):
            spans = f" (a quoted field runs from line {first} to {last})" if last > first else ""
            self.context.problem(
                f"the row has {len(row)} fields, the header {len(self.header)}{spans}; row skipped",
                line=first,
            )
            return last == first
        if len(self.documents) >= self.context.limits.max_records:
            self.context.stopped = True
            self.context.problem(
                f"stopped after {len(self.documents):,} rows (max_records); the rest was not read",
                line=first,
            )
            return True
        document = self._document(self.header, row, first)
        if document is not None:
            self.documents.append(document)
        return True

    def _document(self, header: list[str], row: list[str], line: int) -> ParsedDocument | None:
        cells = [cell.strip() for cell in row] + [""] * (len(header) - len(row))
        record = {name: cell for name, cell in zip(header, cells, strict=True) if cell}
        columns = {name.lower(): name for name in header}
        text_column, id_column, title_column = (columns.get(key) for key in ("text", "id", "title"))
        if text_column is None:
            text = "\n".join(f"{name}: {value}" for name, value in record.items())
        else:
            text = record.get(text_column, "")
            if not text:
                self.context.problem(f"the '{text_column}' column is empty; row skipped", line=line)
                return None
        own = {text_column, id_column, title_column}
        metadata = {name: _typed(value) for name, value in record.items() if name not in own}
        builder = DocumentBuilder(self.context)
        builder.add(text)
        return builder.build(
            title=record.get(title_column) if title_column else None,
            doc_id=record.get(id_column) if id_column else None,
            metadata=metadata,
            line=line,
        )


def _delimiter(context: ParseContext, lines: Sequence[str]) -> str:
    """Tab for TSV, else the candidate the header line has most of (a comma on a tie)."""
    if PurePath(context.file).suffix.lower() == ".tsv":
        return "\t"
    first = next((line for line in lines if line.strip()), "")
    counts = [(first.count(candidate), -rank) for rank, candidate in enumerate(_DELIMITERS)]
    best = max(range(len(_DELIMITERS)), key=lambda index: counts[index])
    return _DELIMITERS[best] if counts[best][0] else ","


def _header(row: list[str]) -> list[str]:
    """Column names: blanks named `column_N`, repeats suffixed `_2`, `_3`."""
    names: list[str] = []
    for index, cell in enumerate(row, start=1):
        base = " ".join(cell.split()) or f"column_{index}"
        name, suffix = base, 2
        while name in names:
            name, suffix = f"{base}_{suffix}", suffix + 1
        names.append(name)
    return names


def _typed(value: str) -> str | int | float | bool:
    if _INTEGER.fullmatch(value):
        return int(value)
    if _DECIMAL.fullmatch(value):
        return float(value)
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def parse_jsonl(data: bytes, context: ParseContext) -> list[ParsedDocument]:
    """One document per non-blank line."""
    lines: list[bytes | str]
    if data.startswith(_WIDE_BOMS) or context.charset not in (None, "utf-8", "utf8"):
        lines = list(context.decode(data).split("\n"))
    else:
        lines = list(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"))
    documents: list[ParsedDocument] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if context.stopped or (number % 256 == 0 and not context.in_time(f"line {number}")):
            break
        if len(documents) >= context.limits.max_records:
            context.problem(
                f"stopped after {len(documents):,} lines (max_records); the rest was not read",
                line=number,
            )
            break
        document = _json_line(line, number, context)
        if document is not None:
            documents.append(document)
    return documents


def _json_line(line: bytes | str, number: int, context: ParseContext) -> ParsedDocument | None:
    try:
        row: Any = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        reason = "not valid UTF-8" if "utf-8" in str(exc).lower() else f"not valid JSON ({exc})"
        context.problem(f"{reason}; line skipped", line=number)
        return None
    if not isinstance(row, dict):
        context.problem("each line must be a JSON object; line skipped", line=number)
        return None
    text = row.get("text")
    if not isinstance(text, str) or not text.strip():
        context.problem("'text' must be a non-empty string; line skipped", line=number)
        return None
    metadata = row.get("metadata", {})
    if not isinstance(metadata, dict):
        context.problem("'metadata' must be a JSON object; line skipped", line=number)
        return None
    row_id = row.get("id", row.get("_id"))
    if row_id is not None and (isinstance(row_id, bool) or not isinstance(row_id, str | int)):
        context.problem("'id' must be a string or an integer; line skipped", line=number)
        return None
    title = row.get("title")
    builder = DocumentBuilder(context)
    builder.add(text)
    return builder.build(
        title=title if isinstance(title, str) and title.strip() else None,
        doc_id=None if row_id is None else str(row_id),
        metadata=metadata,
        line=number,
    )
