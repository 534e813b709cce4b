"""Lines of text as a PDF 1.4 file, written with the standard library only and embedding no font.

    text_pdf(lines, title=..., font_size=9, page=A4) -> bytes     receipts, evidence bundles as text

The text sits on a grid of columns as on a receipt printer (``receipt.char_width``): a column is half
an em, a Chinese character takes two. Two fonts every viewer can show without embedding:

* Chinese, and anything else outside Windows-1252, in ``STSong-Light``, Adobe's predefined Simplified
  Chinese CID font (Type0, CMap ``UniGB-UCS2-H``: each character a UTF-16BE code, in hex). A viewer
  substitutes a Song/Ming face it has (Acrobat's Asian font pack, poppler through fontconfig, pdf.js).
  A ToUnicode map makes the text searchable and copyable even where the CMap is not installed.
* Latin in ``Courier``, a standard-14 font, squeezed to half an em (``Tz``). STSong-Light's own Latin
  is proportional (CIDs 1-95), so amounts right-aligned on a receipt would not line up in it.

Lines wider than the page wrap onto the next line (nothing runs off the edge); a page holds as many
lines as fit, then a new page starts. No creation date and an ID derived from the content: the same
input gives the same bytes.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
import zlib
from dataclasses import dataclass

from projections.receipt import char_width


@dataclass(frozen=True)
class Page:
    """A page size and its margin on every side, in points (1/72 inch)."""

    width: float
    height: float
    margin: float


A4 = Page(595.28, 841.89, 42.52)  # 15 mm margins: 113 columns at 9 pt
RECEIPT_80MM = Page(226.77, 841.89, 5.0)  # 48 columns at 9 pt, as render_text(columns=48)
RECEIPT_58MM = Page(164.41, 841.89, 10.0)  # 32 columns at 9 pt, as render_text(columns=32)

LEADING = 1.25  # line distance, in font sizes
TAB = 8  # columns
_HALF = 500  # a column, in 1/1000 em
_COURIER_SCALE = f"{100 * _HALF / 600:.5f}"  # Courier advances 600/1000 em: Tz squeezes it to a column
_CJK, _LATIN = "F1", "F2"
_HEADER = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"  # the second line marks the file as binary for transfer tools
_SURROGATE = re.compile("[\ud800-\udfff]")

# Fixed object numbers; pages (and their content streams) follow from _FIRST_PAGE on.
_CATALOG, _PAGES, _INFO, _TYPE0, _CIDFONT, _DESCRIPTOR, _TOUNICODE, _COURIER = range(1, 9)
_FIRST_PAGE = 9


def text_pdf(lines: list[str], *, title: str, font_size: float = 9, page: Page = A4) -> bytes:
    """``lines`` as a PDF, top to bottom, in ``font_size`` points, titled ``title`` in its metadata.

    A tab moves to the next multiple of 8 columns; a line break inside a line starts a new one. A
    character outside Unicode's Basic Multilingual Plane, or a control, format, private-use or
    unassigned one, shows as ``?``. Raises ``ValueError`` when ``font_size`` is not a positive number or the page
    cannot hold one line of two columns.
    """
    if not (math.isfinite(font_size) and font_size > 0):
        raise ValueError(f"font_size must be a positive number, not {font_size!r}")
    pitch, leading = font_size * _HALF / 1000, font_size * LEADING
    columns = int((page.width - 2 * page.margin) / pitch + 1e-6)
    rows = int((page.height - 2 * page.margin) / leading + 1e-6)
    if columns < 2 or rows < 1:
        raise ValueError(f"a {page.width}x{page.height} pt page with {page.margin} pt margins cannot hold "
                         f"one line at {font_size} pt")
    grid = [piece for line in lines for part in (line.splitlines() or [""]) for piece in _wrap(part, columns)]
    pages = [grid[start:start + rows] for start in range(0, len(grid), rows)] or [[]]
    used = {ch for line in grid for ch in line if _font_of(ch) == _CJK}

    kids = b" ".join(b"%d 0 R" % (_FIRST_PAGE + 2 * n) for n in range(len(pages)))
    objects: dict[int, bytes] = {
        _CATALOG: b"<< /Type /Catalog /Pages %d 0 R /ViewerPreferences << /DisplayDocTitle true >> >>" % _PAGES,
        _PAGES: b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(pages)),
        _INFO: b"<< /Title %s >>" % _text_string(title),
        _TYPE0: (b"<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light-UniGB-UCS2-H /Encoding /UniGB-UCS2-H"
                 b" /DescendantFonts [%d 0 R] /ToUnicode %d 0 R >>" % (_CIDFONT, _TOUNICODE)),
        _CIDFONT: (b"<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light"
                   b" /CIDSystemInfo << /Registry (Adobe) /Ordering (GB1) /Supplement 2 >>"
                   b" /FontDescriptor %d 0 R /DW 1000 >>" % _DESCRIPTOR),
        _DESCRIPTOR: (b"<< /Type /FontDescriptor /FontName /STSong-Light /Flags 6 /FontBBox [-25 -254 1000 880]"
                      b" /ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 737 /StemV 58 >>"),
        _TOUNICODE: _stream(_to_unicode(used)),
        _COURIER: b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>",
    }
    resources = b"<< /Font << /%s %d 0 R /%s %d 0 R >> /ProcSet [/PDF /Text] >>" % (
        _CJK.encode(), _TYPE0, _LATIN.encode(), _COURIER)
    media_box = f"[0 0 {_num(page.width)} {_num(page.height)}]".encode()
    for n, page_lines in enumerate(pages):
        number = _FIRST_PAGE + 2 * n
        objects[number] = b"<< /Type /Page /Parent %d 0 R /MediaBox %s /Resources %s /Contents %d 0 R >>" % (
            _PAGES, media_box, resources, number + 1)
        objects[number + 1] = _stream(_content(page_lines, font_size, page))
    return _file(objects)


def _text_string(text: str) -> bytes:
    """A PDF text string: UTF-16BE with its byte order mark, in hex (no escaping to get wrong)."""
    return _hex(("\ufeff" + _SURROGATE.sub("\ufffd", text)).encode("utf-16-be")).encode("ascii")


def _wrap(line: str, columns: int) -> list[str]:
    """``line`` in pieces of at most ``columns``, tabs expanded, a wide character never cut."""
    pieces: list[str] = []
    current, used = "", 0
    for ch in line:
        ch = _shown(ch)
        if ch == "\t":
            ch = " " * min(TAB - used % TAB, columns - used)
            width = len(ch)
        else:
            width = char_width(ch)
        if used + width > columns:
            pieces.append(current)
            current, used = "", 0
        current += ch
        used += width
    pieces.append(current)
    return [piece.rstrip() for piece in pieces]


def _shown(ch: str) -> str:
    # UniGB-UCS2-H has one code unit per character: nothing beyond U+FFFF (nor half a surrogate pair).
    if ch == "\t":
        return ch
    return "?" if ord(ch) > 0xFFFF or unicodedata.category(ch)[0] == "C" else ch


def _font_of(ch: str) -> str:
    if char_width(ch) != 1:
        return _CJK
    try:
        ch.encode("cp1252")
    except UnicodeEncodeError:
        return _CJK
    return _LATIN


def _content(lines: list[str], font_size: float, page: Page) -> bytes:
    size = _num(font_size)
    top = page.height - page.margin - font_size * 0.88  # STSong-Light's ascent: the first line touches the margin
    out = [f"BT {_num(font_size * LEADING)} TL {_num(page.margin)} {_num(top)} Td"]
    font: str | None = None
    for line in lines:
        for run_font, run in _runs(line):
            if run_font != font:
                font = run_font
                out.append(f"/{font} {size} Tf {_COURIER_SCALE if font == _LATIN else 100} Tz")
            out.append(_show(run_font, run))
        out.append("T*")
    out.append("ET")
    return "\n".join(out).encode("ascii")


def _runs(line: str) -> list[tuple[str, str]]:
    runs: list[tuple[str, str]] = []
    for ch in line:
        font = _font_of(ch)
        if runs and runs[-1][0] == font:
            runs[-1] = (font, runs[-1][1] + ch)
        else:
            runs.append((font, ch))
    return runs


def _show(font: str, run: str) -> str:
    if font == _LATIN:
        return f"{_hex(run.encode('cp1252'))} Tj"
    # Every STSong-Light glyph here advances one em (DW 1000); a character of fewer columns (a narrow
    # non-Latin letter, a combining mark) pulls what follows back by the difference, so the grid holds.
    items: list[str] = []
    chunk = ""
    for ch in run:
        chunk += ch
        shortfall = 1000 - _HALF * char_width(ch)
        if shortfall:
            items += [_hex(chunk.encode("utf-16-be")), str(shortfall)]
            chunk = ""
    if chunk:
        items.append(_hex(chunk.encode("utf-16-be")))
    return f"{items[0]} Tj" if len(items) == 1 else f"[{' '.join(items)}] TJ"


def _hex(data: bytes) -> str:
    return f"<{data.hex().upper()}>"


def _to_unicode(used: set[str]) -> bytes:
    """A ToUnicode CMap for the UCS-2 codes in use: each code is its own character."""
    # One range per high byte in use: a bfrange may only vary its last byte.
    highs = sorted({ord(ch) >> 8 for ch in used})
    ranges = [f"<{h:02X}00> <{h:02X}FF> <{h:02X}00>" for h in highs]
    blocks = []
    for start in range(0, len(ranges), 100):  # at most 100 entries per block
        chunk = ranges[start:start + 100]
        blocks.append(f"{len(chunk)} beginbfrange\n" + "\n".join(chunk) + "\nendbfrange")
    return "\n".join([
        "/CIDInit /ProcSet findresource begin", "12 dict begin", "begincmap",
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
        "/CMapName /Adobe-Identity-UCS def", "/CMapType 2 def",
        "1 begincodespacerange", "<0000> <FFFF>", "endcodespacerange",
        *blocks,
        "endcmap", "CMapName currentdict /CMap defineresource pop", "end", "end",
    ]).encode("ascii")


def _stream(data: bytes) -> bytes:
    packed = zlib.compress(data, 6)
    return b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(packed), packed)


def _file(objects: dict[int, bytes]) -> bytes:
    out = bytearray(_HEADER)
    offsets = []
    for number in range(1, len(objects) + 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, objects[number])
    xref = len(out)
    # Derived from the content, so the file stays reproducible; readers use it to tell files apart.
    file_id = hashlib.md5(bytes(out), usedforsecurity=False).hexdigest().upper().encode()
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R /ID [<%s> <%s>] >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, _CATALOG, _INFO, file_id, file_id, xref)
    return bytes(out)


def _num(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
