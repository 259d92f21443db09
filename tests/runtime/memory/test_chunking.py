"""Chunking by structure: headings, sections, functions, pages; sizes and overlap."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentos.errors import UserError
from agentos.runtime.memory.chunking import Section, chunk_file, chunk_sections, read_sections

DOCS = Path("/usr/share/doc/python3.11-doc/html")


def test_markdown_splits_at_headings_with_the_heading_path(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text("# Guide\nintro text\n\n## Install\npip install it\n\n```\n# not a heading\n```\n"
                    "## Use\nrun it\n")
    sections = read_sections(path)
    assert [s.title for s in sections] == ["Guide", "Guide > Install", "Guide > Use"]
    assert "# not a heading" in sections[1].text


def test_rst_splits_at_underlined_titles_by_level(tmp_path: Path) -> None:
    path = tmp_path / "doc.rst"
    path.write_text("=====\nTitle\n=====\n\nintro\n\nPart A\n------\n\ntext a\n\nSub\n~~~\n\nsub text\n\n"
                    "Part B\n------\n\ntext b\n")
    titles = [s.title for s in read_sections(path)]
    assert titles == ["Title", "Title > Part A", "Title > Part A > Sub", "Title > Part B"]


def test_html_keeps_main_content_and_drops_navigation(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Page</title><script>var x = 1;</script></head><body>"
        "<div class='related'>Navigation links</div><div role='main'><h1>Topic<a class='headerlink'>¶</a></h1>"
        "<p>First paragraph.</p><h2>Details</h2><p>Second &amp; last.</p></div>"
        "<div class='footer'>Copyright</div></body></html>"
    )
    sections = read_sections(path)
    assert [(s.title, s.text) for s in sections] == [
        ("Topic", "First paragraph."), ("Topic > Details", "Second & last.")]


def test_python_docs_page_chunks_carry_the_page_title() -> None:
    chunks = chunk_file(DOCS / "library" / "heapq.html")
    assert chunks[0].text.startswith("heapq — Heap queue algorithm")
    assert any("heappush(heap, item)" in c.text for c in chunks)
    assert all("Navigation" not in c.text for c in chunks)


def test_python_source_chunks_by_function_and_class(tmp_path: Path) -> None:
    path = tmp_path / "mod.py"
    path.write_text('"""Doc."""\nimport os\n\ndef f(x):\n    return x\n\n@dec\nclass C:\n'
                    '    def m(self):\n        pass\n')
    titles = [s.title for s in read_sections(path)]
    assert titles == ["mod.py: module", "mod.py: def f", "mod.py: class C"]
    big = tmp_path / "big.py"
    body = "\n".join(f"    def m{i}(self):\n        return {'x' * 80!r}" for i in range(20))
    big.write_text(f"class Big:\n    '''Big class.'''\n{body}\n")
    titles = [s.title for s in read_sections(big, max_chars=500)]
    assert titles[:3] == ["big.py: class Big", "big.py: Big.m0", "big.py: Big.m1"]


def test_pdf_chunks_by_page(tmp_path: Path) -> None:
    pypdf = pytest.importorskip("pypdf")
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = pypdf.PdfWriter()
    for text in ("Alpha page text", "Beta page text"):
        page = writer.add_blank_page(300, 300)
        font = DictionaryObject({NameObject("/Type"): NameObject("/Font"),
                                 NameObject("/Subtype"): NameObject("/Type1"),
                                 NameObject("/BaseFont"): NameObject("/Helvetica")})
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject(
            {NameObject("/F1"): writer._add_object(font)})})
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 20 150 Td ({text}) Tj ET".encode())
        page[NameObject("/Contents")] = writer._add_object(stream)
    path = tmp_path / "doc.pdf"
    with path.open("wb") as f:
        writer.write(f)
    sections = read_sections(path)
    assert [(s.title, s.text.strip()) for s in sections] == [
        ("doc.pdf: page 1", "Alpha page text"), ("doc.pdf: page 2", "Beta page text")]


def test_long_sections_split_under_the_limit_with_overlap() -> None:
    text = " ".join(f"Sentence number {i} says something." for i in range(200))
    chunks = chunk_sections([Section("T", text)], max_chars=400, overlap=80)
    assert len(chunks) > 5 and all(len(c.text) <= 400 for c in chunks)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    for before, after in zip(chunks, chunks[1:]):
        head = after.text.split("\n", 1)[1][:40]
        assert head in before.text  # each chunk starts with the tail of the one before


def test_bad_files_raise_errors_that_say_what_to_do(tmp_path: Path) -> None:
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(UserError, match="looks binary"):
        read_sections(binary)
    latin = tmp_path / "latin.md"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(UserError, match="re-encode it as UTF-8"):
        read_sections(latin)
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n")
    with pytest.raises(UserError, match="not valid Python"):
        read_sections(broken)
    with pytest.raises(UserError, match="unsupported file type"):
        read_sections(tmp_path / "x.docx")
    fake_pdf = tmp_path / "fake.pdf"
    fake_pdf.write_text("not a pdf")
    with pytest.raises(UserError, match="not a readable PDF"):
        read_sections(fake_pdf)
