"""HTML: the visible text through lxml's HTML parser (libxml2), one section per heading (`h1`-`h6`)
with its heading path, and the page's `<title>`.

Left out: what is never visible (scripts, styles, `<head>`, templates, `hidden` and `aria-hidden`
elements) and the page's chrome (`<nav>`, navigation/banner/search roles, page-level `<header>`
and `<footer>`, forms' controls). When the page marks its `<main>` content, only that is read.
Block elements end paragraphs; `<br>` ends a line; `<pre>` keeps its line breaks; table cells are
separated by ` | `.
"""

from __future__ import annotations

import re
from typing import Any

from companion.knowledge._parsing._context import DocumentBuilder, ParseContext, require
from companion.knowledge._parsing._results import ParsedDocument

__all__ = ["parse_html"]

_INVISIBLE = frozenset(
    "script style noscript template head svg math iframe object embed canvas audio video "
    "button select textarea input datalist dialog".split()
)
_CHROME_ROLES = frozenset({"navigation", "banner", "contentinfo", "search", "menu", "menubar"})
_CONTENT = frozenset({"article", "main", "section"})
_BLOCKS = frozenset(
    "p div section article header footer aside main li ul ol dl dt dd table thead tbody tfoot tr "
    "caption blockquote pre figure figcaption form fieldset legend details summary address hr "
    "center h1 h2 h3 h4 h5 h6".split()
)
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_CELLS = frozenset({"td", "th"})
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.I)
_XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")


def parse_html(data: bytes, context: ParseContext) -> list[ParsedDocument]:
    """One document, one section per heading (and one for the text before the first)."""
    lxml_html = require("lxml.html", "HTML")
    etree = require("lxml.etree", "HTML")
    if context.charset is None:
        declared = _META_CHARSET.search(data[:4096])
        if declared:
            context.charset = declared.group(1).decode("ascii").lower()
    markup = _XML_DECLARATION.sub("", context.decode(data), count=1)
    try:
        root = lxml_html.document_fromstring(markup)
    except (etree.ParserError, ValueError) as exc:
        context.problem(f"no HTML document found ({exc})")
        return []
    titles = root.xpath("//head/title/text()")
    title = " ".join("".join(titles).split()) or None
    mains = root.xpath("//main | //*[@role='main']")
    walker = _Walker(context)
    walker.walk(etree, mains[0] if len(mains) == 1 else root)
    metadata: dict[str, Any] = {}
    lang = (root.get("lang") or "").strip()
    if lang:
        metadata["lang"] = lang
    title = title or walker.first_heading or context.stem
    return [walker.builder.build(title=title, metadata=metadata)]


class _Walker:
    """Text of one tree in document order, cut into paragraphs and sections at headings."""

    def __init__(self, context: ParseContext) -> None:
        self.context = context
        self.builder = DocumentBuilder(context)
        self.first_heading: str | None = None
        self._path: list[str] = []
        self._paragraphs: list[str] = []
        self._pieces: list[str] = []  # of the current paragraph; "\n" pieces are kept breaks
        self._heading: list[str] | None = None
        self._pre = 0
        self._cells = 0
        self._skipping: Any = None  # the element whose subtree is being skipped

    def walk(self, etree: Any, root: Any) -> None:
        walker = etree.iterwalk(root, events=("start", "end", "comment", "pi"))
        for number, (event, element) in enumerate(walker, start=1):
            if self.context.stopped or (
                number % 1024 == 0 and not self.context.in_time(f"element {number}")
            ):
                break
            if event in ("comment", "pi"):
                self._text(element.tail)
            elif event == "start":
                if self._skipped(element):
                    walker.skip_subtree()
                    self._skipping = element
                    continue
                self._start(element.tag)
                self._text(element.text)
            else:
                if self._skipping is not element:
                    self._end(element.tag)
                self._skipping = None
                if element is not root:  # the tail of <main> lies outside it
                    self._text(element.tail)
        self._end_section()

    def _skipped(self, element: Any) -> bool:
        tag = element.tag
        if not isinstance(tag, str) or tag in _INVISIBLE or tag == "nav":
            return True
        if element.get("hidden") is not None or element.get("aria-hidden") == "true":
            return True
        if (element.get("role") or "").strip().lower() in _CHROME_ROLES:
            return True
        if tag in ("header", "footer"):
            return not any(ancestor.tag in _CONTENT for ancestor in element.iterancestors())
        return False

    def _start(self, tag: str) -> None:
        if tag in _HEADINGS:
            self._end_paragraph()
            self._heading = []
        elif tag in _BLOCKS:
            self._end_paragraph()
        if tag == "pre":
            self._pre += 1
        elif tag == "br":
            self._pieces.append("\n")
        elif tag == "tr":
            self._end_paragraph()
            self._cells = 0
        elif tag in _CELLS:
            if self._cells:
                self._pieces.append(" | ")
            self._cells += 1

    def _end(self, tag: str) -> None:
        if tag in _HEADINGS and self._heading is not None:
            heading = " ".join("".join(self._heading).split())
            self._heading = None
            if heading:
                self._end_section()
                level = _HEADINGS[tag]
                del self._path[level - 1 :]
                self._path += [""] * (level - 1 - len(self._path))  # h3 straight after h1
                self._path.append(heading)
                self._paragraphs.append(heading)
                self.first_heading = self.first_heading or heading
        elif tag == "pre":
            self._end_paragraph()
            self._pre = max(0, self._pre - 1)
        elif tag in _BLOCKS or tag == "tr":
            self._end_paragraph()

    def _text(self, text: str | None) -> None:
        if not text:
            return
        if self._heading is not None:
            self._heading.append(text)
        elif self._pre:
            self._pieces.append(text.replace("\r\n", "\n"))
        else:
            self._pieces.append(text.replace("\n", " "))

    def _end_paragraph(self) -> None:
        if not self._pieces:
            return
        lines = "".join(self._pieces).split("\n")
        self._pieces = []
        if self._pre:
            text = "\n".join(line.rstrip() for line in lines).strip("\n")
        else:
            text = "\n".join(" ".join(line.split()) for line in lines).strip()
        if text.strip():
            self._paragraphs.append(text)

    def _end_section(self) -> None:
        self._end_paragraph()
        headings = tuple(heading for heading in self._path if heading)
        self.builder.add("\n\n".join(self._paragraphs), headings=headings)
        self._paragraphs = []
