"""The PDF writer: a file whose cross-reference table is right to the byte, Chinese in the predefined
STSong-Light font with nothing embedded, every line back out as it went in and on the column grid of a
receipt, pages that hold what fits, and the same bytes every time."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import zlib
from dataclasses import dataclass

import pytest

from projections.pdf import A4, RECEIPT_58MM, RECEIPT_80MM, Page, text_pdf
from projections.receipt import display_width


@dataclass
class Pdf:
    objects: dict[int, bytes]  # number -> dictionary (the stream's dictionary for a stream)
    streams: dict[int, bytes]  # number -> decoded stream data
    trailer: bytes


def parse(pdf: bytes) -> Pdf:
    """Every object through the xref table, checking each offset lands on its ``N 0 obj``."""
    assert pdf.startswith(b"%PDF-1.4\n")
    assert pdf.endswith(b"%%EOF\n")
    startxref = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert pdf[startxref:].startswith(b"xref\n")
    first, count = map(int, pdf[startxref:].split(b"\n")[1].split())
    assert first == 0
    table = pdf[startxref:].split(b"\n", 2)[2]
    entries = [table[20 * n:20 * (n + 1)] for n in range(count)]
    assert entries[0] == b"0000000000 65535 f \n"
    trailer = table[20 * count:]
    assert trailer.startswith(b"trailer\n<<")
    assert int(re.search(rb"/Size (\d+)", trailer)[1]) == count  # type: ignore[index]
    objects: dict[int, bytes] = {}
    streams: dict[int, bytes] = {}
    for number, entry in enumerate(entries[1:], start=1):
        assert re.fullmatch(rb"\d{10} 00000 n \n", entry)
        offset = int(entry[:10])
        header = b"%d 0 obj\n" % number
        assert pdf[offset:offset + len(header)] == header
        body = pdf[offset + len(header):]
        if body.startswith(b"<< /Length"):
            length = int(body.split(b" ", 3)[2])
            dictionary, _, data = body.partition(b">>\nstream\n")
            assert data[length:].startswith(b"\nendstream\nendobj\n")
            objects[number], streams[number] = dictionary + b">>", zlib.decompress(data[:length])
        else:
            objects[number] = body.split(b"\nendobj\n", 1)[0]
    return Pdf(objects, streams, trailer)


def ref(dictionary: bytes, key: bytes) -> int:
    return int(re.search(rb"/" + key + rb" (\d+) 0 R", dictionary)[1])  # type: ignore[index]


def page_contents(pdf: bytes) -> list[bytes]:
    parsed = parse(pdf)
    catalog = parsed.objects[ref(parsed.trailer, b"Root")]
    pages = parsed.objects[ref(catalog, b"Pages")]
    kids = [int(n) for n in re.findall(rb"(\d+) 0 R", pages.split(b"/Kids [")[1].split(b"]")[0])]
    assert int(re.search(rb"/Count (\d+)", pages)[1]) == len(kids)  # type: ignore[index]
    return [parsed.streams[ref(parsed.objects[kid], b"Contents")] for kid in kids]


# /F1 is STSong-Light with UniGB-UCS2-H (UTF-16BE codes), /F2 Courier with WinAnsiEncoding.
_OPERATION = re.compile(rb"/(F\d) \S+ Tf|(\S+) Tz|(<[0-9A-F]*>) Tj|\[([^\]]*)\] TJ|(T\*)")
_ARRAY_ITEM = re.compile(rb"<([0-9A-F]*)>|(-?\d+(?:\.\d+)?)")


def read_page(content: bytes) -> list[tuple[str, float]]:
    """Each line on a page and how far it advances, in columns (half an em)."""
    lines: list[tuple[str, float]] = []
    font, scale, text, advance = "", 1.0, "", 0.0
    for match in _OPERATION.finditer(content):
        tf, tz, string, array, newline = match.groups()
        if tf:
            font = tf.decode()
        elif tz:
            scale = float(tz) / 100
        elif string or array:
            for item in _ARRAY_ITEM.finditer(string or array):
                hex_string, number = item.groups()
                if number is not None:
                    advance -= float(number) * scale  # in 1/1000 em, a positive number moves back
                elif font == "F1":
                    chunk = bytes.fromhex(hex_string.decode()).decode("utf-16-be")
                    text, advance = text + chunk, advance + 1000 * len(chunk) * scale
                else:
                    chunk = bytes.fromhex(hex_string.decode()).decode("cp1252")
                    text, advance = text + chunk, advance + 600 * len(chunk) * scale
        elif newline:
            lines.append((text, advance / 500))
            text, advance = "", 0.0
    assert not text
    return lines


def pdf_text_lines(pdf: bytes) -> list[str]:
    """The text of every line, page after page, decoded from the hex strings the writer wrote."""
    return [text for content in page_contents(pdf) for text, _ in read_page(content)]


RECEIPT = [
    "            签购单            ",
    "           商户存根           ",
    "--------------------------------",
    "商户名称:        Café (No. 1) \\",
    "金额 AMOUNT:          ¥1,234.50",
    "卡号:          622202******1234",
]


def test_the_file_has_a_header_an_xref_table_whose_offsets_land_on_their_objects_and_a_trailer() -> None:
    pdf = text_pdf(RECEIPT, title="签购单")

    parsed = parse(pdf)

    assert pdf.startswith(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    assert re.search(rb"/Root \d+ 0 R /Info \d+ 0 R /ID \[<[0-9A-F]{32}> <[0-9A-F]{32}>\]", parsed.trailer)
    assert b"/Type /Catalog" in parsed.objects[ref(parsed.trailer, b"Root")]


def test_chinese_is_set_in_predefined_stsong_light_and_no_font_is_embedded() -> None:
    pdf = text_pdf(RECEIPT, title="签购单")
    parsed = parse(pdf)

    [type0] = [o for o in parsed.objects.values() if b"/Subtype /Type0" in o]
    cid_font = parsed.objects[int(re.search(rb"/DescendantFonts \[(\d+) 0 R\]", type0)[1])]  # type: ignore[index]

    assert b"/Encoding /UniGB-UCS2-H" in type0
    assert b"/Subtype /CIDFontType0 /BaseFont /STSong-Light" in cid_font
    assert b"/CIDSystemInfo << /Registry (Adobe) /Ordering (GB1) /Supplement 2 >>" in cid_font
    assert b"/FontFile" not in pdf
    assert b"/BaseFont /Courier /Encoding /WinAnsiEncoding" in pdf


def test_the_text_comes_back_line_by_line_chinese_and_backslashes_and_parentheses_included() -> None:
    lines = [line.rstrip() for line in RECEIPT] + ["(unbalanced \\ ) parens", "商户存根"]

    assert pdf_text_lines(text_pdf(lines, title="t")) == lines


def test_the_tounicode_map_covers_the_chinese_codes_so_text_can_be_copied() -> None:
    parsed = parse(text_pdf(["商户存根"], title="t"))

    [type0] = [o for o in parsed.objects.values() if b"/Subtype /Type0" in o]
    cmap = parsed.streams[ref(type0, b"ToUnicode")].decode()

    for ch in "商户存根":
        high = f"{ord(ch) >> 8:02X}"
        assert f"<{high}00> <{high}FF> <{high}00>" in cmap
    assert "begincodespacerange\n<0000> <FFFF>" in cmap


def test_every_line_keeps_to_the_column_grid_a_chinese_character_taking_two() -> None:
    lines = ["商户存根 MERCHANT COPY", "a商b户c", "Ωmega", "e\u0301", "─" * 3]

    [content] = page_contents(text_pdf(lines, title="t"))

    assert [(text, columns) for text, columns in read_page(content)] == [
        (line, pytest.approx(display_width(line), abs=1e-3)) for line in lines]


@pytest.mark.parametrize(("page", "columns"), [(RECEIPT_80MM, 48), (RECEIPT_58MM, 32)])
def test_a_receipt_page_holds_a_full_width_receipt_line_at_9_pt(page: Page, columns: int) -> None:
    line = "金额" + "8" * (columns - 4)

    assert pdf_text_lines(text_pdf([line], title="t", page=page)) == [line]
    assert pdf_text_lines(text_pdf([line + "9"], title="t", page=page)) == [line, "9"]


def test_a_line_wider_than_the_page_wraps_and_a_chinese_character_is_never_cut() -> None:
    narrow = Page(width=60, height=200, margin=3)  # 12 columns at 9 pt

    assert pdf_text_lines(text_pdf(["x" * 11 + "商户" + "y" * 13], title="t", page=narrow)) == [
        "x" * 11, "商户" + "y" * 8, "y" * 5]


def test_tabs_expand_to_every_eighth_column_and_line_breaks_start_new_lines() -> None:
    assert pdf_text_lines(text_pdf(["a\tb", "商\tc", "one\ntwo\r\nthree", ""], title="t")) == [
        "a       b", "商      c", "one", "two", "three", ""]


def test_characters_outside_the_bmp_and_control_characters_show_as_question_marks() -> None:
    assert pdf_text_lines(text_pdf(["票😀据", "bell\x07"], title="t")) == ["票?据", "bell?"]


def test_lines_past_a_page_go_on_the_next_page_and_every_line_sits_inside_the_margins() -> None:
    per_page = math.floor((A4.height - 2 * A4.margin) / (9 * 1.25))
    lines = [f"line {n} 第{n}行" for n in range(2 * per_page + 1)]

    pdf = text_pdf(lines, title="t")
    contents = page_contents(pdf)

    assert [len(read_page(content)) for content in contents] == [per_page, per_page, 1]
    assert pdf_text_lines(pdf) == lines
    start = re.search(rb"BT (\S+) TL (\S+) (\S+) Td", contents[0])
    assert start is not None
    leading, x, top = map(float, start.groups())
    assert x == A4.margin
    assert top + 9 * 0.88 <= A4.height - A4.margin + 1e-6  # the ascent stays below the top margin
    assert top - (per_page - 1) * leading - 9 * 0.254 >= A4.margin - 1e-6  # the last descender above the bottom one


def test_exactly_a_page_of_lines_makes_one_page_and_no_lines_make_one_blank_page() -> None:
    per_page = math.floor((A4.height - 2 * A4.margin) / (9 * 1.25))

    assert len(page_contents(text_pdf(["x"] * per_page, title="t"))) == 1
    assert len(page_contents(text_pdf(["x"] * (per_page + 1), title="t"))) == 2
    assert [read_page(content) for content in page_contents(text_pdf([], title="t"))] == [[]]


def test_a_smaller_font_fits_more_lines_on_a_page() -> None:
    lines = ["x"] * 100

    assert len(page_contents(text_pdf(lines, title="t", font_size=9))) == 2
    assert len(page_contents(text_pdf(lines, title="t", font_size=6))) == 1


def test_the_title_is_utf16_with_a_byte_order_mark_in_the_document_information() -> None:
    parsed = parse(text_pdf(["x"], title="签购单 (reprint) \\ 😀"))

    info = parsed.objects[ref(parsed.trailer, b"Info")]
    title = re.fullmatch(rb"<< /Title <([0-9A-F]+)> >>", info)

    assert title is not None
    data = bytes.fromhex(title[1].decode())
    assert data[:2] == b"\xfe\xff"
    assert data[2:].decode("utf-16-be") == "签购单 (reprint) \\ 😀"


def test_the_same_input_gives_the_same_bytes_and_no_date_is_written() -> None:
    first = text_pdf(RECEIPT, title="签购单")

    assert text_pdf(RECEIPT, title="签购单") == first
    assert b"CreationDate" not in first and b"ModDate" not in first
    assert text_pdf(RECEIPT, title="签购单 2") != first


@pytest.mark.parametrize("font_size", [0, -9, math.nan, math.inf])
def test_a_font_size_that_is_not_a_positive_number_is_refused(font_size: float) -> None:
    with pytest.raises(ValueError, match="font_size"):
        text_pdf(["x"], title="t", font_size=font_size)


def test_a_page_too_small_for_one_line_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        text_pdf(["x"], title="t", page=Page(width=20, height=20, margin=8))


def test_pdftotext_reads_the_text_when_poppler_is_installed() -> None:
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        message = "pdftotext (poppler-utils, installed by infra/install.sh) is missing"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it: a missing reader there is a broken install
        pytest.skip(message)
    lines = ["Amount: 1,234.50", "商户存根"]

    out = subprocess.run([pdftotext, "-layout", "-enc", "UTF-8", "-", "-"], input=text_pdf(lines, title="t"),
                         capture_output=True, check=True, timeout=60).stdout.decode()

    assert [line.strip() for line in out.splitlines() if line.strip()] == lines
