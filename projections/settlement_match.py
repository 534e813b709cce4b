"""Three-way matching of an acquirer settlement file against the ledger (pure).

Key: the RRN (参考号) of the authorization, else terminal + batch + trace (凭证号). The ledger side is
every completed, authorized card transaction of the batches the file covers (a batch the file does
not mention is not the file's business). Each line ends in one list:

* matched          — same transaction, same amount;
* amount_differs   — same transaction, different amount, currency or type (both shown);
* ledger_only      — in the ledger, not in the file (the acquirer did not settle it);
* file_only        — in the file, not in the ledger (money moved that the store never recorded).
"""

from __future__ import annotations

from typing import Any

Row = dict[str, Any]


def _ledger_line(row: Row) -> dict[str, Any]:
    return {"transaction_id": row["id"], "terminal_no": row["terminal_no"], "batch_no": row["batch_no"],
            "trace_no": row["trace_no"], "rrn": row["rrn"], "auth_code": row["auth_code"], "kind": row["kind"],
            "masked_pan": (row.get("card") or {}).get("masked_pan"), "amount_minor": row["amount_minor"],
            "currency": row["currency"]}


def covered_batches(lines: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(merchant_no, terminal_no, batch_no) of every batch the file mentions."""
    return sorted({(line["merchant_no"], line["terminal_no"], line["batch_no"]) for line in lines})


def match(lines: list[dict[str, Any]], ledger_rows: list[Row]) -> dict[str, Any]:
    # A void (撤销) cancels its sale before settlement: neither reaches the acquirer's file.
    candidates = [r for r in ledger_rows if r.get("payment_method") == "card" and r.get("status") == "completed"
                  and r.get("outcome") == "authorized" and r["kind"] != "void" and not r.get("voided_by")]
    by_rrn = {r["rrn"]: r for r in candidates if r.get("rrn")}
    by_trace = {(r["terminal_no"], r["batch_no"], r["trace_no"]): r for r in candidates}
    used: set[str] = set()
    result: dict[str, list[dict[str, Any]]] = {"matched": [], "amount_differs": [], "ledger_only": [],
                                               "file_only": []}
    for number, line in enumerate(lines, start=1):
        row = by_rrn.get(line["rrn"]) or by_trace.get((line["terminal_no"], line["batch_no"], line["trace_no"]))
        if row is None or row["id"] in used:
            result["file_only"].append({"line": number, **line})
            continue
        used.add(row["id"])
        entry = {"line": number, "file": line, "ledger": _ledger_line(row)}
        same = row["amount_minor"] == line["amount_minor"] and row["currency"] == line["currency"] \
            and row["kind"] == line["type"]
        result["matched" if same else "amount_differs"].append(entry)
    for row in sorted(candidates, key=lambda r: (r["terminal_no"] or "", r["batch_no"], r["trace_no"], r["id"])):
        if row["id"] not in used:
            result["ledger_only"].append(_ledger_line(row))
    summary = {name: len(entries) for name, entries in result.items()}
    return {"summary": summary, "balanced": summary["amount_differs"] == summary["ledger_only"]
            == summary["file_only"] == 0, **result}
