"""ESC/POS byte streams read back: what a receipt printer would print from them.

For tests, the virtual printer (``adapters.printer_sink``) and audits of captured jobs. Pure: bytes in,
values out; any input is safe (unknown or truncated commands are listed, never raised).

    decode_escpos(data)     -> EscposDocument   text, QR payloads, barcodes, cuts, Chinese mode, unknowns
    jobs_text(jobs)         -> list[str]        the text of each job
    next_command(data, pos) -> Command | None   one command's extent (None: the data ends inside it)

Text is decoded as GB18030 (ASCII is a subset of it), the encoding a Chinese receipt printer uses in
Chinese mode. Paper feeds (ESC d, ESC J) end a pending line but add no blank lines: ``lines`` holds
what was printed as text, so a receipt reads back exactly as it was sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

NUL, HT, LF, FF, CR, DLE, CAN, ESC, FS, GS = 0x00, 0x09, 0x0A, 0x0C, 0x0D, 0x10, 0x18, 0x1B, 0x1C, 0x1D
EOT = 0x04

STATUS_QUERY = "DLE EOT"  # real-time status request: the printer answers one byte at once
CUT_COMMANDS = frozenset({"GS V", "ESC i", "ESC m"})  # a job ends here

Data = bytes | bytearray


class Command(NamedTuple):
    """One command (or run of text) in an ESC/POS stream: its name and the offset just past it."""

    name: str  # "text", "LF", "ESC @", "GS ( k", ... or "unknown ..." for bytes no printer defines
    end: int


@dataclass(frozen=True, slots=True)
class EscposDocument:
    """What a printer would make of an ESC/POS stream.

    ``text`` is the printed lines, each followed by "\\n"; ``qr_codes`` the payloads of QR store
    commands (GS ( k, cn 49, fn 80) in UTF-8; ``barcodes`` the payloads of GS k; ``chinese_mode`` whether
    FS & (Chinese mode on) was seen; ``status_queries`` the n of each DLE EOT n; ``unknown_commands``
    names bytes no ESC/POS printer defines, and a command the data ends inside ("truncated ...").
    """

    text: str
    lines: list[str]
    qr_codes: list[str] = field(default_factory=list)
    barcodes: list[str] = field(default_factory=list)
    cuts: int = 0
    chinese_mode: bool = False
    status_queries: list[int] = field(default_factory=list)
    unknown_commands: list[str] = field(default_factory=list)


def decode_escpos(data: bytes) -> EscposDocument:
    """Read ``data`` as a printer would; never raises on any input."""
    lines: list[str] = []
    line = bytearray()
    qr_codes: list[str] = []
    barcodes: list[str] = []
    status_queries: list[int] = []
    unknown: list[str] = []
    cuts = 0
    chinese_mode = False

    def end_line(always: bool) -> None:
        if always or line:
            lines.append(line.decode("gb18030", errors="replace"))
            line.clear()

    pos = 0
    while pos < len(data):
        command = next_command(data, pos)
        if command is None:
            unknown.append(f"truncated {_prefix_name(data, pos)}")
            break
        name, end = command
        if name == "text":
            line += data[pos:end]
        elif name == "HT":
            line += b"\t"
        elif name == "LF":
            end_line(always=True)
        elif name in ("ESC d", "ESC J"):
            end_line(always=False)
        elif name in CUT_COMMANDS:
            end_line(always=False)
            cuts += 1
        elif name == "FS &":
            chinese_mode = True
        elif name == "GS ( k":
            # GS ( k pL pH cn fn [m] data: cn 49 is QR, fn 80 stores the symbol's data after m ("0")
            if end - pos >= 8 and data[pos + 5] == 49 and data[pos + 6] == 80:
                qr_codes.append(data[pos + 8:end].decode("utf-8", errors="replace"))
        elif name == "GS k":
            payload = data[pos + 3:end - 1] if data[pos + 2] <= 6 else data[pos + 4:end]
            barcodes.append(payload.decode("ascii", errors="replace"))
        elif name == STATUS_QUERY:
            status_queries.append(data[pos + 2])
        elif name.startswith("unknown"):
            unknown.append(name)
        pos = end
    end_line(always=False)
    text = "".join(f"{printed}\n" for printed in lines)
    return EscposDocument(text=text, lines=lines, qr_codes=qr_codes, barcodes=barcodes, cuts=cuts,
                          chinese_mode=chinese_mode, status_queries=status_queries, unknown_commands=unknown)


def jobs_text(jobs: list[bytes]) -> list[str]:
    """The printed text of each job (e.g. ``PrinterSink.jobs``)."""
    return [decode_escpos(job).text for job in jobs]


def next_command(data: Data, pos: int) -> Command | None:
    """The command starting at ``data[pos]``; None when ``data`` ends before the command does.

    A run of text reaches the next control byte (or the end of ``data``). Payloads (QR data, raster
    images, barcodes) are skipped by their declared length, so bytes inside them are never taken for
    commands.
    """
    byte = data[pos]
    if byte >= 0x20:
        end = pos + 1
        while end < len(data) and data[end] >= 0x20:
            end += 1
        return Command("text", end)
    if byte in _SINGLE:
        return Command(_SINGLE[byte], pos + 1)
    prefixed = _PREFIXED.get(byte)
    if prefixed is None:
        return Command(f"unknown 0x{byte:02x}", pos + 1)
    if pos + 1 >= len(data):
        return None
    return prefixed(data, pos)


# ---- command lengths ------------------------------------------------------------------------------

_SINGLE = {LF: "LF", CR: "CR", HT: "HT", FF: "FF", CAN: "CAN", NUL: "NUL"}

# Commands with a fixed number of parameter bytes, by the byte after the prefix.
_ESC_PARAMS = {"@": 0, "a": 1, "E": 1, "!": 1, "d": 1, "J": 1, "t": 1, "-": 1, "G": 1, "M": 1, "2": 0, "3": 1,
               "V": 1, "{": 1, "r": 1, "R": 1, " ": 1, "p": 3, "$": 2, "\\": 2, "=": 1, "B": 2, "%": 1, "?": 1,
               "L": 0, "S": 0, "T": 1, "W": 8, "i": 0, "m": 0, "c": 2, "e": 1, "U": 1, "u": 1, "v": 0}
_GS_PARAMS = {"!": 1, "B": 1, "H": 1, "f": 1, "h": 1, "w": 1, "L": 2, "W": 2, "a": 1, "r": 1, "I": 1, "b": 1,
              "/": 1, "P": 2, "$": 2, "\\": 2, "T": 1, ":": 0, "^": 3}
_FS_PARAMS = {"&": 0, ".": 0, "!": 1, "-": 1, "C": 1, "W": 1, "S": 2, "p": 2, "2": 74}
_DLE_PARAMS = {EOT: 1, 0x05: 1}  # DLE EOT n (status), DLE ENQ n (recover)

_NAMES = {ESC: "ESC", GS: "GS", FS: "FS", DLE: "DLE"}
_DLE_NAMES = {EOT: "EOT", 0x05: "ENQ", 0x14: "DC4"}
_BARCODE_MAX = 255  # GS k function A: data up to NUL; a printer gives up long before this


def _sym(byte: int) -> str:
    return chr(byte) if 0x21 <= byte <= 0x7E else f"0x{byte:02x}"


def _prefix_name(data: Data, pos: int) -> str:
    prefix = _NAMES.get(data[pos], f"0x{data[pos]:02x}")
    if pos + 1 >= len(data):
        return prefix
    second = data[pos + 1]
    name = f"{prefix} {_DLE_NAMES.get(second, _sym(second)) if data[pos] == DLE else _sym(second)}"
    if second in b"(8v" and pos + 2 < len(data):  # GS ( k, GS 8 L, GS v 0: the function is in the name
        name += f" {_sym(data[pos + 2])}"
    return name


def _fixed(data: Data, pos: int, length: int, name: str) -> Command | None:
    return Command(name, pos + length) if pos + length <= len(data) else None


def _sized(data: Data, pos: int, header: int, size: int, name: str) -> Command | None:
    """A command of ``header`` bytes followed by ``size`` bytes of payload."""
    return _fixed(data, pos, header + size, name)


def _length_prefixed(data: Data, pos: int, prefix: str) -> Command | None:
    """ESC ( / GS ( / FS ( X pL pH payload: the payload length is little-endian after the function byte."""
    if pos + 5 > len(data):
        return None
    size = data[pos + 3] | data[pos + 4] << 8
    return _sized(data, pos, 5, size, f"{prefix} ( {_sym(data[pos + 2])}")


def _esc(data: Data, pos: int) -> Command | None:
    second = data[pos + 1]
    params = _ESC_PARAMS.get(chr(second))
    if params is not None:
        return _fixed(data, pos, 2 + params, f"ESC {chr(second)}")
    if second == ord("*"):  # ESC * m nL nH d...: bit image, 1 byte per column (8-dot) or 3 (24-dot)
        if pos + 5 > len(data):
            return None
        columns = data[pos + 3] | data[pos + 4] << 8
        return _sized(data, pos, 5, columns * (1 if data[pos + 2] in (0, 1) else 3), "ESC *")
    if second == ord("D"):  # ESC D n1 ... nk NUL: tab stops, k <= 32
        for end in range(pos + 2, min(pos + 2 + 33, len(data))):
            if data[end] == NUL:
                return Command("ESC D", end + 1)
        return None if len(data) < pos + 2 + 33 else Command("unknown ESC D", pos + 2 + 33)
    if second == ord("("):
        return _length_prefixed(data, pos, "ESC")
    if second == ord("&"):
        return _user_characters(data, pos)
    return Command(f"unknown ESC {_sym(second)}", pos + 2)


def _user_characters(data: Data, pos: int) -> Command | None:
    """ESC & y c1 c2 [x d1 ... d(y*x)] for each character c1..c2."""
    if pos + 5 > len(data):
        return None
    height, first, last = data[pos + 2], data[pos + 3], data[pos + 4]
    if last < first:
        return Command("unknown ESC &", pos + 5)
    end = pos + 5
    for _ in range(last - first + 1):
        if end >= len(data):
            return None
        end += 1 + height * data[end]
    return Command("ESC &", end) if end <= len(data) else None


def _gs(data: Data, pos: int) -> Command | None:
    second = data[pos + 1]
    params = _GS_PARAMS.get(chr(second))
    if params is not None:
        return _fixed(data, pos, 2 + params, f"GS {chr(second)}")
    if second == ord("("):
        return _length_prefixed(data, pos, "GS")
    if pos + 2 >= len(data):
        return None
    third = data[pos + 2]
    if second == ord("V"):  # GS V m (cut) or GS V m n (feed n, then cut)
        if third in (0, 1, 48, 49):
            return Command("GS V", pos + 3)
        if third in (65, 66, 97, 98, 103, 104):
            return _fixed(data, pos, 4, "GS V")
        return Command(f"unknown GS V {_sym(third)}", pos + 3)
    if second == ord("k"):
        return _barcode(data, pos, third)
    if second == ord("v") and third == ord("0"):  # GS v 0 m xL xH yL yH d...: raster image, x bytes by y dots
        if pos + 8 > len(data):
            return None
        width = data[pos + 4] | data[pos + 5] << 8
        height = data[pos + 6] | data[pos + 7] << 8
        return _sized(data, pos, 8, width * height, "GS v 0")
    if second == ord("8") and third == ord("L"):  # GS 8 L p1 p2 p3 p4 ...: graphics, 32-bit length
        if pos + 7 > len(data):
            return None
        size = data[pos + 3] | data[pos + 4] << 8 | data[pos + 5] << 16 | data[pos + 6] << 24
        return _sized(data, pos, 7, size, "GS 8 L")
    if second == ord("*"):  # GS * x y d...: downloaded bit image, x*y*8 bytes
        return _sized(data, pos, 4, third * data[pos + 3] * 8, "GS *") if pos + 4 <= len(data) else None
    return Command(f"unknown GS {_sym(second)}", pos + 2)


def _barcode(data: Data, pos: int, kind: int) -> Command | None:
    if kind <= 6:  # function A: GS k m d1 ... dk NUL
        window = pos + 3 + _BARCODE_MAX + 1
        for end in range(pos + 3, min(window, len(data))):
            if data[end] == NUL:
                return Command("GS k", end + 1)
        return None if len(data) < window else Command("unknown GS k", window)
    if 65 <= kind <= 79:  # function B: GS k m n d1 ... dn
        if pos + 4 > len(data):
            return None
        return _sized(data, pos, 4, data[pos + 3], "GS k")
    return Command(f"unknown GS k {_sym(kind)}", pos + 3)


def _fs(data: Data, pos: int) -> Command | None:
    second = data[pos + 1]
    params = _FS_PARAMS.get(chr(second))
    if params is not None:
        return _fixed(data, pos, 2 + params, f"FS {chr(second)}")
    if second == ord("("):
        return _length_prefixed(data, pos, "FS")
    if second == ord("q"):
        return _nv_images(data, pos)
    return Command(f"unknown FS {_sym(second)}", pos + 2)


def _nv_images(data: Data, pos: int) -> Command | None:
    """FS q n [xL xH yL yH d1 ... dk] for each of n images, k = x * y * 8."""
    if pos + 3 > len(data):
        return None
    end = pos + 3
    for _ in range(data[pos + 2]):
        if end + 4 > len(data):
            return None
        width = data[end] | data[end + 1] << 8
        height = data[end + 2] | data[end + 3] << 8
        end += 4 + width * height * 8
    return Command("FS q", end) if end <= len(data) else None


def _dle(data: Data, pos: int) -> Command | None:
    second = data[pos + 1]
    params = _DLE_PARAMS.get(second)
    if params is not None:
        return _fixed(data, pos, 2 + params, f"DLE {_DLE_NAMES[second]}")
    if second == 0x14:  # DLE DC4 fn ...: pulse (1 m t), power off (2 1 8), buzzer (7 ...), clear (8 ...)
        if pos + 3 > len(data):
            return None
        length = {1: 5, 2: 5, 7: 4, 8: 10}.get(data[pos + 2])
        if length is None:
            return Command(f"unknown DLE DC4 {_sym(data[pos + 2])}", pos + 3)
        return _fixed(data, pos, length, "DLE DC4")
    return Command(f"unknown DLE {_sym(second)}", pos + 2)


_PREFIXED: dict[int, Callable[[Data, int], Command | None]] = {ESC: _esc, GS: _gs, FS: _fs, DLE: _dle}
