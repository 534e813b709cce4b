"""A minimal Office Open XML workbook (.xlsx), written with the standard library only.

    workbook([(sheet_name, rows), ...]) -> bytes     rows of str | int | None, one sheet each

Text is an inline string (no shared-string table), an int a numeric cell, None no cell at all. No
styles beyond the one Excel requires, no formulas: a report to read, not a model to compute with.

Same input, same bytes: zip members in a fixed order with a fixed timestamp, so an export can be
hashed and compared. Excel and LibreOffice open what this writes; the parts are the smallest set
ECMA-376 requires (content types, package and workbook relationships, workbook, styles, sheets).
"""

from __future__ import annotations

import io
import re
import zipfile
from xml.sax.saxutils import escape, quoteattr

Cell = str | int | None

MAX_ROWS = 1_048_576
MAX_COLUMNS = 16_384  # XFD
MAX_CELL_TEXT = 32_767
MAX_EXACT_INT = 999_999_999_999_999  # Excel keeps 15 significant digits; beyond, it rounds silently

# A spreadsheet runs a text cell starting with one of these as a formula (OWASP "CSV injection"); the
# same set as the CSV export, so a value reads the same in both.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Characters XML 1.0 does not allow, not even as a character reference.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Excel decodes _xHHHH_ in cell text as the character HHHH; escaping the underscore keeps it literal.
_EXCEL_ESCAPE = re.compile("_(x[0-9A-Fa-f]{4}_)")
_SHEET_NAME_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_SHEET_NAME_MAX = 31
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: the file carries no time of its own

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_DOC_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

_STYLES = (
    f'<styleSheet xmlns="{_MAIN}">'
    '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)


def workbook(sheets: list[tuple[str, list[list[Cell]]]]) -> bytes:
    """The .xlsx file holding ``sheets`` in order, each a name and its rows (row 1 first).

    Sheet names are made acceptable to Excel (see ``sheet_names``). A text cell that a spreadsheet
    would run as a formula is written with a leading apostrophe, as text. Raises ``ValueError`` for no
    sheets, more rows or columns than Excel has, text longer than a cell holds, or an int Excel cannot
    hold exactly; ``TypeError`` for a cell that is not ``str``, ``int`` or ``None`` (a bool included).
    """
    if not sheets:
        raise ValueError("a workbook needs at least one sheet")
    names = sheet_names([name for name, _ in sheets])
    parts = {
        "[Content_Types].xml": _content_types(len(sheets)),
        "_rels/.rels": _package_rels(),
        "xl/workbook.xml": _workbook(names),
        "xl/_rels/workbook.xml.rels": _workbook_rels(len(sheets)),
        "xl/styles.xml": _DECLARATION + _STYLES,
    }
    for number, (_, rows) in enumerate(sheets, start=1):
        parts[f"xl/worksheets/sheet{number}.xml"] = _worksheet(rows)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, text in parts.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 0  # otherwise the host OS, and the bytes would differ between machines
            info.external_attr = 0
            archive.writestr(info, text.encode("utf-8"), compresslevel=6)
    return out.getvalue()


def sheet_names(names: list[str]) -> list[str]:
    """``names`` as Excel accepts them: ``[]:*?/\\`` replaced by ``_``, control characters dropped, no
    leading or trailing apostrophe, at most 31 characters, never blank (``Sheet<n>``) nor ``History``
    (Excel reserves it), and unique ignoring case (a later duplicate gets `` (2)``, `` (3)``...)."""
    taken = {"history"}
    result = []
    for number, raw in enumerate(names, start=1):
        name = _SHEET_NAME_FORBIDDEN.sub("_", _CONTROL.sub("", _NOT_XML.sub("", raw))).strip().strip("'")
        name = _truncate(name, _SHEET_NAME_MAX).rstrip("'") or f"Sheet{number}"
        unique, copy = name, 1
        while unique.lower() in taken:
            copy += 1
            suffix = f" ({copy})"
            unique = _truncate(name, _SHEET_NAME_MAX - len(suffix)) + suffix
        taken.add(unique.lower())
        result.append(unique)
    return result


def column_letters(index: int) -> str:
    """The letters of the 1-based column ``index``: 1 -> ``A``, 26 -> ``Z``, 27 -> ``AA``."""
    letters = ""
    while index > 0:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def _truncate(text: str, limit: int) -> str:
    # Excel counts UTF-16 code units: a character outside the BMP takes two.
    while len(text.encode("utf-16-le")) > 2 * limit:
        text = text[:-1]
    return text


def _worksheet(rows: list[list[Cell]]) -> str:
    if len(rows) > MAX_ROWS:
        raise ValueError(f"{len(rows)} rows: a sheet holds at most {MAX_ROWS}")
    out = [f'{_DECLARATION}<worksheet xmlns="{_MAIN}"><sheetData>']
    for row_number, row in enumerate(rows, start=1):
        if len(row) > MAX_COLUMNS:
            raise ValueError(f"row {row_number} has {len(row)} cells: a sheet holds at most {MAX_COLUMNS}")
        cells = [_cell(f"{column_letters(col)}{row_number}", value) for col, value in enumerate(row, start=1)]
        if any(cells):
            out.append(f'<row r="{row_number}">{"".join(cells)}</row>')
    out.append("</sheetData></worksheet>")
    return "".join(out)


def _cell(ref: str, value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"cell {ref}: {type(value).__name__} is not str, int or None")
    if isinstance(value, int):
        if abs(value) > MAX_EXACT_INT:
            raise ValueError(f"cell {ref}: {value} has more digits than Excel keeps; write it as text")
        return f'<c r="{ref}"><v>{value}</v></c>'
    text = _NOT_XML.sub("", value)
    if text.startswith(_FORMULA_STARTS):
        text = "'" + text
    if len(text) > MAX_CELL_TEXT:
        raise ValueError(f"cell {ref}: {len(text)} characters, a cell holds at most {MAX_CELL_TEXT}")
    # A bare CR would come back as LF from any XML parser; a character reference keeps it.
    body = escape(_EXCEL_ESCAPE.sub(r"_x005F_\1", text)).replace("\r", "&#13;")
    return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{body}</t></is></c>'


def _content_types(sheet_count: int) -> str:
    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="{_CT}.worksheet+xml"/>'
        for n in range(1, sheet_count + 1)
    )
    return (
        f'{_DECLARATION}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{_CT}.sheet.main+xml"/>'
        f'<Override PartName="/xl/styles.xml" ContentType="{_CT}.styles+xml"/>'
        f"{overrides}</Types>"
    )


def _package_rels() -> str:
    return (
        f'{_DECLARATION}<Relationships xmlns="{_PKG_RELS}">'
        f'<Relationship Id="rId1" Type="{_DOC_RELS}/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>"
    )


def _workbook(names: list[str]) -> str:
    sheets = "".join(
        f'<sheet name={quoteattr(name)} sheetId="{n}" r:id="rId{n}"/>' for n, name in enumerate(names, start=1)
    )
    return f'{_DECLARATION}<workbook xmlns="{_MAIN}" xmlns:r="{_DOC_RELS}"><sheets>{sheets}</sheets></workbook>'


def _workbook_rels(sheet_count: int) -> str:
    # Sheets take rId1..rIdN (as _workbook refers to them); styles the next one.
    rels = [
        f'<Relationship Id="rId{n}" Type="{_DOC_RELS}/worksheet" Target="worksheets/sheet{n}.xml"/>'
        for n in range(1, sheet_count + 1)
    ]
    rels.append(f'<Relationship Id="rId{sheet_count + 1}" Type="{_DOC_RELS}/styles" Target="styles.xml"/>')
    return f'{_DECLARATION}<Relationships xmlns="{_PKG_RELS}">{"".join(rels)}</Relationships>'
