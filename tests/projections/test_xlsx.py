"""The .xlsx writer: a well-formed package Excel and LibreOffice open, cells where and as they were given,
text that cannot run as a formula or break the XML, Excel's sheet-name rules, and the same bytes every time."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
import zipfile

import pytest

from projections.xlsx import MAX_CELL_TEXT, column_letters, sheet_names, workbook

MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
PKG = "{http://schemas.openxmlformats.org/package/2006/relationships}"
CT = "{http://schemas.openxmlformats.org/package/2006/content-types}"


def parts(data: bytes) -> dict[str, ET.Element]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        return {name: ET.fromstring(archive.read(name)) for name in archive.namelist()}


def read_sheets(data: bytes) -> dict[str, dict[str, str | int]]:
    """Sheet name -> {cell reference: value}, following the relationships as a spreadsheet would."""
    tree = parts(data)
    targets = {rel.get("Id"): rel.get("Target") for rel in tree["xl/_rels/workbook.xml.rels"]}
    result = {}
    for sheet in tree["xl/workbook.xml"].iter(f"{MAIN}sheet"):
        worksheet = tree["xl/" + str(targets[sheet.get(f"{REL}id")])]
        cells: dict[str, str | int] = {}
        for cell in worksheet.iter(f"{MAIN}c"):
            if cell.get("t") == "inlineStr":
                text = "".join(t.text or "" for t in cell.iter(f"{MAIN}t"))
                # Excel reads _xHHHH_ as the character HHHH; _x005F_ is a literal underscore.
                cells[str(cell.get("r"))] = re.sub("_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m[1], 16)), text)
            else:
                cells[str(cell.get("r"))] = int(str(cell.findtext(f"{MAIN}v")))
        result[str(sheet.get("name"))] = cells
    return result


def cells_of(rows: list[list[str | int | None]]) -> dict[str, str | int]:
    return read_sheets(workbook([("S", rows)]))["S"]


def test_the_package_holds_the_parts_excel_needs_and_every_one_is_well_formed_xml() -> None:
    data = workbook([("Lines", [["a"]]), ("Cash", [[1]])])

    tree = parts(data)

    assert list(tree) == ["[Content_Types].xml", "_rels/.rels", "xl/workbook.xml", "xl/_rels/workbook.xml.rels",
                          "xl/styles.xml", "xl/worksheets/sheet1.xml", "xl/worksheets/sheet2.xml"]
    assert data.startswith(b"PK\x03\x04")


def test_every_relationship_points_at_a_part_and_every_part_has_a_content_type() -> None:
    tree = parts(workbook([("Lines", [["a"]]), ("Cash", [[1]])]))

    [office] = tree["_rels/.rels"].iter(f"{PKG}Relationship")
    assert office.get("Target") == "xl/workbook.xml"
    targets = {"xl/" + str(rel.get("Target")) for rel in tree["xl/_rels/workbook.xml.rels"]}
    assert targets == {"xl/styles.xml", "xl/worksheets/sheet1.xml", "xl/worksheets/sheet2.xml"}
    ids = {rel.get("Id") for rel in tree["xl/_rels/workbook.xml.rels"]}
    assert {sheet.get(f"{REL}id") for sheet in tree["xl/workbook.xml"].iter(f"{MAIN}sheet")} < ids
    overrides = {o.get("PartName"): o.get("ContentType") for o in tree["[Content_Types].xml"].iter(f"{CT}Override")}
    assert overrides["/xl/workbook.xml"].endswith(".sheet.main+xml")
    assert overrides["/xl/styles.xml"].endswith(".styles+xml")
    assert overrides["/xl/worksheets/sheet2.xml"].endswith(".worksheet+xml")
    defaults = {d.get("Extension") for d in tree["[Content_Types].xml"].iter(f"{CT}Default")}
    assert defaults == {"rels", "xml"}


def test_cells_carry_excel_references_row_by_row_and_column_27_is_aa() -> None:
    rows: list[list[str | int | None]] = [[f"c{n}" for n in range(1, 29)], ["x", None, 2]]

    sheet = parts(workbook([("S", rows)]))["xl/worksheets/sheet1.xml"]

    refs = [cell.get("r") for cell in sheet.iter(f"{MAIN}c")]
    assert refs[:3] == ["A1", "B1", "C1"]
    assert refs[25:28] == ["Z1", "AA1", "AB1"]
    assert refs[28:] == ["A2", "C2"]
    assert [row.get("r") for row in sheet.iter(f"{MAIN}row")] == ["1", "2"]


def test_column_letters_count_in_base_26_without_a_zero() -> None:
    assert [column_letters(n) for n in (1, 26, 27, 52, 53, 702, 703, 16384)] == [
        "A", "Z", "AA", "AZ", "BA", "ZZ", "AAA", "XFD"]


def test_text_is_an_inline_string_an_int_a_number_and_none_no_cell_at_all() -> None:
    sheet = parts(workbook([("S", [["商户存根", -1250, None, 0], [None, None], ["end"]])]))["xl/worksheets/sheet1.xml"]

    cells = {cell.get("r"): cell for cell in sheet.iter(f"{MAIN}c")}
    assert set(cells) == {"A1", "B1", "D1", "A3"}
    assert cells["A1"].get("t") == "inlineStr"
    assert cells["B1"].get("t") is None and cells["B1"].findtext(f"{MAIN}v") == "-1250"
    assert [row.get("r") for row in sheet.iter(f"{MAIN}row")] == ["1", "3"]  # an empty row is left out


def test_text_round_trips_chinese_markup_characters_and_whitespace() -> None:
    texts = ["商户存根 / 持卡人存根", "A & B <c> \"d\" 'e'", "  padded  ", "two\nlines", "cr\r\nlf", "tab\there",
             "_x0041_ stays as typed", "emoji 😀"]

    assert cells_of([texts]) == {f"{column_letters(n)}1": text for n, text in enumerate(texts, start=1)}


def test_markup_characters_are_escaped_in_the_sheet_xml() -> None:
    with zipfile.ZipFile(io.BytesIO(workbook([("S", [["A & B <c>"]])]))) as archive:
        xml = archive.read("xl/worksheets/sheet1.xml").decode()

    assert "A &amp; B &lt;c&gt;" in xml


def test_characters_xml_forbids_are_dropped() -> None:
    assert cells_of([["a\x00b\x08c\x0bd\x1fe\ufffef\ud800g"]]) == {"A1": "abcdefg"}


def test_text_a_spreadsheet_would_run_as_a_formula_gets_a_leading_apostrophe() -> None:
    risky = ["=HYPERLINK(\"http://x\")", "+1", "-1.50", "@SUM(A1)", "\tx", "\rx"]

    cells = cells_of([[*risky, "a=b", "", -5]])

    assert [cells[f"{column_letters(n)}1"] for n in range(1, len(risky) + 1)] == ["'" + text for text in risky]
    assert cells["G1"] == "a=b"
    assert cells["H1"] == ""
    assert cells["I1"] == -5  # a number is never a formula


def test_sheet_names_follow_excels_rules() -> None:
    assert sheet_names(["Jan/Feb [v2]*?", "a:b\\c", "'quoted'", "   ", "x" * 40, "history", "商户" * 20]) == [
        "Jan_Feb _v2___", "a_b_c", "quoted", "Sheet4", "x" * 31, "history (2)", "商户" * 15 + "商"]


def test_duplicate_sheet_names_ignoring_case_are_numbered_within_31_characters() -> None:
    names = sheet_names(["Report", "REPORT", "report", "y" * 31, "Y" * 31])

    assert names == ["Report", "REPORT (2)", "report (3)", "y" * 31, "Y" * 27 + " (2)"]
    assert all(len(name) <= 31 for name in names)


def test_a_sheet_name_is_escaped_in_the_workbook_xml() -> None:
    assert list(read_sheets(workbook([("P&L <Q1> \"net\"", [[1]])]))) == ["P&L <Q1> \"net\""]


def test_a_character_outside_the_bmp_counts_twice_toward_the_31_limit() -> None:
    assert sheet_names(["😀" * 20]) == ["😀" * 15]


def test_the_same_input_gives_the_same_bytes() -> None:
    sheets: list[tuple[str, list[list[str | int | None]]]] = [("商户", [["a", 1, None], ["=b"]]), ("B", [])]

    first = workbook(sheets)

    assert workbook(sheets) == first
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_an_empty_sheet_is_valid_and_keeps_its_place() -> None:
    assert read_sheets(workbook([("Empty", []), ("Full", [[1]])])) == {"Empty": {}, "Full": {"A1": 1}}


def test_a_workbook_without_sheets_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one sheet"):
        workbook([])


@pytest.mark.parametrize("value", [True, 1.5, b"bytes"])
def test_a_cell_that_is_not_text_an_int_or_none_is_refused(value: object) -> None:
    with pytest.raises(TypeError, match="cell A1"):
        workbook([("S", [[value]])])  # type: ignore[list-item]


def test_an_int_excel_would_round_is_refused() -> None:
    assert cells_of([[999_999_999_999_999]]) == {"A1": 999_999_999_999_999}
    with pytest.raises(ValueError, match="as text"):
        workbook([("S", [[10**15]])])


def test_text_longer_than_a_cell_holds_is_refused() -> None:
    assert cells_of([["x" * MAX_CELL_TEXT]]) == {"A1": "x" * MAX_CELL_TEXT}
    with pytest.raises(ValueError, match="32767"):
        workbook([("S", [["x" * (MAX_CELL_TEXT + 1)]])])
