"""Documents to chunks, by structure: headings (Markdown, reStructuredText, HTML), functions and
classes (Python, via :mod:`ast`), pages (PDF, via pypdf), paragraphs (plain text).

Each document is first split into *sections* (a title path and its text); each section is then
packed into chunks of at most ``max_chars`` characters along paragraph boundaries, each chunk
after the first in a section starting with the last ``overlap`` characters of the one before.
A chunk's text starts with its section's title path, so it reads (and embeds) on its own.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from agentos.errors import UserError

__all__ = ["Chunk", "Section", "chunk_file", "chunk_sections", "file_kind", "read_sections"]

KINDS = {
    ".md": "markdown", ".markdown": "markdown", ".rst": "rst", ".txt": "text", ".text": "text",
    ".html": "html", ".htm": "html", ".py": "python", ".pdf": "pdf",
}


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class Chunk:
    """One chunk of a document: its text, its index in the document, its section's title."""

    text: str
    position: int
    section: str


def file_kind(path: Path) -> str | None:
    """``markdown``, ``rst``, ``html``, ``text``, ``python``, ``pdf``, or None (unsupported).
    ``x.rst.txt`` (Sphinx's copied sources) reads as reStructuredText."""
    name = path.name.lower()
    if name.endswith(".rst.txt"):
        return "rst"
    return KINDS.get(path.suffix.lower())


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        raise UserError(f"{path} looks binary (it has NUL bytes); only text formats and PDF are "
                        "ingested. Leave it out or convert it to text.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not UTF-8 text ({error}); re-encode it as UTF-8") from None


# --- per-format sections ----------------------------------------------------------------------


def _markdown(text: str, title: str) -> list[Section]:
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    body: list[str] = []
    fence = False

    def flush() -> None:
        path = " > ".join(t for _, t in stack) or title
        if "".join(body).strip():
            sections.append(Section(path, "\n".join(body).strip()))
        body.clear()

    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
        match = None if fence else re.match(r"^(#{1,6})\s+(.+?)\s*#*\s*$", line)
        if match:
            flush()
            level = len(match.group(1))
            stack[:] = [(lv, t) for lv, t in stack if lv < level] + [(level, match.group(2))]
        else:
            body.append(line)
    flush()
    return sections


_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+:.])\1{2,}\s*$")


def _rst(text: str, title: str) -> list[Section]:
    lines = text.splitlines()
    sections: list[Section] = []
    levels: list[str] = []  # underline characters in order of first appearance
    stack: list[tuple[int, str]] = []
    body: list[str] = []

    def flush() -> None:
        path = " > ".join(t for _, t in stack) or title
        if "".join(body).strip():
            sections.append(Section(path, "\n".join(body).strip()))
        body.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        under = _RST_UNDERLINE.match(nxt)
        if line.strip() and under and len(nxt.strip()) >= len(line.strip()) \
                and not _RST_UNDERLINE.match(line) and not line.startswith((" ", "\t", "..")):
            if body and _RST_UNDERLINE.match(body[-1]) and body[-1][0] == nxt[0]:
                body.pop()  # an overline
            flush()
            char = nxt[0]
            if char not in levels:
                levels.append(char)
            level = levels.index(char)
            stack[:] = [(lv, t) for lv, t in stack if lv < level] + [(level, line.strip())]
            i += 2
            continue
        body.append(line)
        i += 1
    flush()
    return sections


class _HTMLSections(HTMLParser):
    """Text of an HTML page split at h1-h6; skips scripts, styles, navigation and Sphinx's
    sidebars, and keeps only the main content when the page marks it (``role="main"``)."""

    SKIP = {"script", "style", "head", "nav", "noscript", "svg", "button", "form"}
    SKIP_CLASSES = ("sphinxsidebar", "related", "footer", "headerlink", "navigation")
    BLOCK = {"p", "div", "li", "pre", "dt", "dd", "tr", "br", "table", "section", "ul", "ol",
             "blockquote", "dl", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "td", "th"}
    VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed",
            "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, skipping, main)
        self.title = ""
        self.in_title = False
        self.heading: list[str] | None = None
        self.heading_level = 0
        self.path: list[tuple[int, str]] = []
        self.sections: list[tuple[str, list[str]]] = [("", [])]
        self.main_seen = False
        self.pre = 0

    def _skipping(self) -> bool:
        return bool(self.stack) and self.stack[-1][1]

    def _in_main(self) -> bool:
        return bool(self.stack) and self.stack[-1][2]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "title":
            self.in_title = True
        parent_skip = self._skipping()
        skip = parent_skip or tag in self.SKIP or any(
            c in a.get("class", "").split() for c in self.SKIP_CLASSES)
        main = self._in_main() or a.get("role") == "main"
        if a.get("role") == "main":
            self.main_seen = True
        if tag in self.VOID:
            if tag in ("br", "hr") and not skip:
                self._text("\n", main=main)
            return
        self.stack.append((tag, skip, main))
        if skip:
            return
        if tag == "pre":
            self.pre += 1
        if re.fullmatch(r"h[1-6]", tag):
            self.heading, self.heading_level = [], int(tag[1])
        elif tag in self.BLOCK:
            self._text("\n\n", main=main)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in self.VOID:
            return
        while self.stack:
            open_tag, skip, _ = self.stack.pop()
            if not skip and open_tag == "pre":
                self.pre -= 1
            if open_tag == tag:
                break
        if self.heading is not None and re.fullmatch(r"h[1-6]", tag):
            text = " ".join("".join(self.heading).split())
            level = self.heading_level
            self.heading = None
            if text:
                self.path = [(lv, t) for lv, t in self.path if lv < level] + [(level, text)]
                self.sections.append((" > ".join(t for _, t in self.path), []))
        elif tag in self.BLOCK and not self._skipping():
            self._text("\n\n", main=self._in_main())

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title += data
        if self._skipping() or not self.stack:
            return
        if self.heading is not None:
            self.heading.append(data)
            return
        self._text(data if self.pre else re.sub(r"\s+", " ", data), main=self._in_main())

    def _text(self, text: str, main: bool | None = None) -> None:
        self.sections[-1][1].append(text if main is None else ("\x01" if main else "") + text)


def _html(text: str, title: str) -> list[Section]:
    parser = _HTMLSections()
    parser.feed(text)
    parser.close()
    page = " ".join(parser.title.split()) or title
    out: list[Section] = []
    for path, parts in parser.sections:
        if parser.main_seen:  # keep only text inside role="main"
            parts = [p for p in parts if p.startswith("\x01")]
        body = re.sub(r"[ \t]+\n", "\n", "".join(p.lstrip("\x01") for p in parts))
        body = re.sub(r"\n{3,}", "\n\n", body).strip()
        if body:
            out.append(Section(path or page, body))
    return out


def _python(text: str, title: str, max_chars: int) -> list[Section]:
    try:
        tree = ast.parse(text)
    except SyntaxError as error:
        raise UserError(f"{title} is not valid Python ({error}); fix it or leave it out") from None
    lines = text.splitlines()
    sections: list[Section] = []
    covered: set[int] = set()

    def segment(node: ast.AST) -> str:
        start = min([node.lineno, *[d.lineno for d in getattr(node, "decorator_list", [])]])
        end = node.end_lineno or node.lineno
        covered.update(range(start, end + 1))
        return "\n".join(lines[start - 1:end])

    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            sections.append(Section(f"{title}: def {node.name}", segment(node)))
        elif isinstance(node, ast.ClassDef):
            source = segment(node)
            methods = [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
            if len(source) <= max_chars or not methods:
                sections.append(Section(f"{title}: class {node.name}", source))
                continue
            first = methods[0]
            head_end = min([first.lineno, *[d.lineno for d in first.decorator_list]]) - 1
            sections.append(Section(f"{title}: class {node.name}",
                                    "\n".join(lines[node.lineno - 1:head_end])))
            for method in methods:
                start = min([method.lineno, *[d.lineno for d in method.decorator_list]])
                sections.append(Section(f"{title}: {node.name}.{method.name}",
                                        "\n".join(lines[start - 1:method.end_lineno])))
    rest = "\n".join(line for n, line in enumerate(lines, 1) if n not in covered).strip()
    if rest:
        sections.insert(0, Section(f"{title}: module", rest))
    return sections


def _pdf(path: Path) -> list[Section]:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:
        raise UserError("reading PDF needs pypdf: pip install 'agentos-kit[memory]'") from None
    try:
        reader = PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, OSError) as error:
        raise UserError(f"{path} is not a readable PDF ({type(error).__name__}: {error})") from None
    return [Section(f"{path.name}: page {i}", text) for i, text in enumerate(pages, 1)
            if text.strip()]


def read_sections(path: Path, *, max_chars: int = 1000) -> list[Section]:
    """The sections of one file, by its type.

    Raises:
        UserError: unsupported type, binary or non-UTF-8 content, unparsable Python or PDF.
        OSError: the file cannot be read.
    """
    kind = file_kind(path)
    if kind is None:
        raise UserError(f"{path}: unsupported file type; supported: "
                        + ", ".join(sorted({*KINDS, ".rst.txt"})))
    if kind == "pdf":
        return _pdf(path)
    text = _read_text(path)
    title = path.name
    if kind == "markdown":
        return _markdown(text, title)
    if kind == "rst":
        return _rst(text, title)
    if kind == "html":
        return _html(text, title)
    if kind == "python":
        return _python(text, title, max_chars)
    return [Section(title, text.strip())] if text.strip() else []


def _pieces(paragraph: str, max_chars: int) -> Iterable[str]:
    """A paragraph cut into pieces of at most ``max_chars``, at sentence or word boundaries."""
    while len(paragraph) > max_chars:
        cut = max(paragraph.rfind(". ", 0, max_chars), paragraph.rfind("\n", 0, max_chars))
        if cut < max_chars // 2:
            cut = paragraph.rfind(" ", 0, max_chars)
        if cut < max_chars // 2:
            cut = max_chars - 1
        yield paragraph[:cut + 1].strip()
        paragraph = paragraph[cut + 1:].strip()
    if paragraph:
        yield paragraph


def _tail(text: str, overlap: int) -> str:
    if overlap <= 0 or len(text) <= overlap:
        return text if overlap > 0 else ""
    tail = text[-overlap:]
    space = tail.find(" ")
    return tail[space + 1:] if 0 <= space < len(tail) - 1 else tail


def chunk_sections(sections: Iterable[Section], *, max_chars: int = 1000,
                   overlap: int = 150) -> list[Chunk]:
    """Pack each section's paragraphs into chunks of about ``max_chars`` (title included).

    Raises:
        ValueError: ``overlap`` is not smaller than half of ``max_chars``.
    """
    if not 0 <= overlap < max_chars // 2:
        raise ValueError(f"overlap must be in [0, max_chars/2), got {overlap} for {max_chars}")
    chunks: list[Chunk] = []
    for section in sections:
        budget = max(max_chars - len(section.title) - 1, max_chars // 2)
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", section.text) if p.strip()]
        pieces = [piece for p in paragraphs for piece in _pieces(p, budget - overlap)]
        current = ""
        for piece in pieces:
            if current and len(current) + 2 + len(piece) > budget:
                chunks.append(Chunk(f"{section.title}\n{current}", len(chunks), section.title))
                current = _tail(current, overlap)
            current = f"{current}\n\n{piece}" if current else piece
        if current:
            chunks.append(Chunk(f"{section.title}\n{current}", len(chunks), section.title))
    return chunks


def chunk_file(path: Path, *, max_chars: int = 1000, overlap: int = 150) -> list[Chunk]:
    """:func:`read_sections` then :func:`chunk_sections`."""
    return chunk_sections(read_sections(path, max_chars=max_chars), max_chars=max_chars,
                          overlap=overlap)
