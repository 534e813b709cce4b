"""Reading ESC/POS streams back: each command's effect, payloads skipped by length, any bytes safe."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.escpos_decoder import decode_escpos, jobs_text, next_command

ESC, GS, FS, DLE = b"\x1b", b"\x1d", b"\x1c", b"\x10"


def gb(text: str) -> bytes:
    return text.encode("gb18030")


def qr_store(payload: bytes) -> bytes:
    size = len(payload) + 3
    return GS + b"(k" + bytes([size & 0xFF, size >> 8]) + b"1P0" + payload


def test_text_is_decoded_as_gb18030_line_by_line() -> None:
    doc = decode_escpos(gb("合计：￥12.50\n") + gb("，。\n") + b"plain\n")
    assert doc.lines == ["合计：￥12.50", "，。", "plain"]
    assert doc.text == "合计：￥12.50\n，。\nplain\n"


def test_an_unterminated_last_line_is_still_read() -> None:
    assert decode_escpos(b"a\nb").lines == ["a", "b"]


def test_empty_lines_are_kept_and_carriage_returns_ignored() -> None:
    assert decode_escpos(b"a\r\n\nb\n").text == "a\n\nb\n"


@pytest.mark.parametrize("command", [
    ESC + b"@", ESC + b"a\x01", ESC + b"E\x01", ESC + b"!\x30", GS + b"!\x11", ESC + b"t\x00", FS + b".",
    ESC + b"-\x01", GS + b"B\x01", ESC + b"3\x20", ESC + b"2",
], ids=["ESC @", "ESC a", "ESC E", "ESC !", "GS !", "ESC t", "FS .", "ESC -", "GS B", "ESC 3", "ESC 2"])
def test_formatting_commands_take_their_parameter_and_print_nothing(command: bytes) -> None:
    # The parameter bytes ("0", "!"...) would show up as text if the length were wrong.
    doc = decode_escpos(b"A" + command + b"B\n")
    assert doc.lines == ["AB"]
    assert doc.unknown_commands == []


def test_feeds_end_a_pending_line_without_adding_blank_lines() -> None:
    doc = decode_escpos(b"one" + ESC + b"d\x03" + b"two" + ESC + b"J\x40" + ESC + b"d\x05" + b"three\n")
    assert doc.lines == ["one", "two", "three"]


@pytest.mark.parametrize("cut", [GS + b"V\x00", GS + b"V\x01", GS + b"V0", GS + b"VA\x03", GS + b"VB\x00",
                                 ESC + b"i", ESC + b"m"])
def test_cuts_are_counted_and_end_the_line(cut: bytes) -> None:
    doc = decode_escpos(b"x" + cut + b"y\n" + cut)
    assert doc.cuts == 2
    assert doc.lines == ["x", "y"]


def test_fs_ampersand_turns_chinese_mode_on() -> None:
    assert decode_escpos(FS + b"&" + gb("中\n")).chinese_mode
    assert not decode_escpos(gb("中\n")).chinese_mode


def test_a_qr_code_payload_is_read_and_its_other_functions_are_skipped() -> None:
    data = (GS + b"(k\x04\x001A2\x00" + GS + b"(k\x03\x001C\x06" + GS + b"(k\x03\x001E1"
            + qr_store(b"0f8e-\x1dV\x00-txn") + GS + b"(k\x03\x001Q0")
    doc = decode_escpos(data)
    assert doc.qr_codes == ["0f8e-\x1dV\x00-txn"]  # a cut inside the payload is data, not a cut
    assert doc.cuts == 0
    assert doc.lines == []


def test_barcodes_of_both_functions_are_recorded() -> None:
    doc = decode_escpos(GS + b"k\x04CODE39\x00" + GS + b"kI\x06{B1234" + b"after\n")
    assert doc.barcodes == ["CODE39", "{B1234"]
    assert doc.lines == ["after"]


def test_a_raster_image_payload_is_skipped_by_its_size() -> None:
    # 2 bytes wide, 3 dots high: 6 bytes of image, full of bytes that would look like commands and text.
    image = b"\x1dV\x00\nAB"
    doc = decode_escpos(GS + b"v0\x00\x02\x00\x03\x00" + image + b"text\n")
    assert doc.cuts == 0
    assert doc.lines == ["text"]


def test_status_queries_are_listed_and_print_nothing() -> None:
    doc = decode_escpos(DLE + b"\x04\x01" + b"a" + DLE + b"\x04\x04" + b"\n")
    assert doc.status_queries == [1, 4]
    assert doc.lines == ["a"]


def test_unknown_and_truncated_commands_are_listed_not_raised() -> None:
    doc = decode_escpos(b"\x07" + ESC + b"\xfe" + b"ok\n" + GS + b"(k\x10\x00" + b"short")
    assert doc.unknown_commands == ["unknown 0x07", "unknown ESC 0xfe", "truncated GS ( k"]
    assert doc.lines == ["ok"]


def test_next_command_waits_for_the_rest_of_a_split_command() -> None:
    assert next_command(GS + b"V", 0) is None
    assert next_command(ESC, 0) is None
    assert next_command(GS + b"(k\x05\x001P0a", 0) is None
    assert next_command(GS + b"V\x01rest", 0) == ("GS V", 3)


def test_jobs_text_reads_each_job() -> None:
    assert jobs_text([b"a\n" + GS + b"V\x01", gb("乙\n")]) == ["a\n", "乙\n"]


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_crash_the_decoder(data: bytes) -> None:
    doc = decode_escpos(data)
    assert doc.text == "".join(f"{line}\n" for line in doc.lines)


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.sampled_from([ESC, GS, FS, DLE, b"(k", b"v0", b"V", b"k", b"\x00", b"\xff", b"\x04", b"1P0",
                                 b"&", b"*", b"D", b"8L", b"q", b"\n", b"text"]), max_size=60))
def test_command_shaped_noise_never_crashes_the_decoder(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    decode_escpos(data)
    pos = 0
    while pos < len(data):  # every command ends after it starts: the scanner always moves on
        command = next_command(data, pos)
        if command is None:
            break
        assert command.end > pos
        pos = command.end
