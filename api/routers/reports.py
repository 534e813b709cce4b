"""Receipts, the accountant's day report and the dispute handler's evidence.

Receipts are rendered from the transaction's own stream (deterministic, always current); the day
report and the dispute search read the ledger view, which a projection keeps up to date a page at
a time. Any of the view reads takes ``wait_for_position`` (the ``position`` an append returned):
the request waits, up to ``TIMEOUT_S``, until the view has applied it (read-your-writes).
"""

from __future__ import annotations

import hashlib
import re
from datetime import date, datetime
from types import SimpleNamespace
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BeforeValidator
from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse, Response

from api.auth import Principal, require
from api.raw_body import json_response
from api.services import Services
from api.transaction_view import transaction_view
from domain.errors import AlreadyExists, Forbidden, InvalidInput, NotFound, OutOfSequence, ProjectionBehind
from domain.terminal import Terminal
from domain.ledger import Ledger
from domain.settlement import SettlementFile, settlement_id_for
from domain.stamp import Stamp
from domain.transaction import Transaction
from domain.z_report import ZReport
from adapters.signing import ALGORITHM, public_pem
from projections.bundle import bundle_body, canonical_bytes
from projections.dispute import evidence_bundle, evidence_text
from projections.read_models import ReadModels
from projections.receipt import COLUMNS, ReceiptFacts, facts_for, receipt_document, receipt_sha256, render_text
from projections.pdf import RECEIPT_58MM, RECEIPT_80MM, text_pdf
from projections.aggregates import DAY_APART, DAY_LINE
from projections.reconciliation import day_report_from_totals, report_csv, report_xlsx
from projections.settlement_file import parse_settlement_csv
from projections.settlement_match import covered_batches, match
from projections.rows import TERMINAL, TILL, TRANSACTION, Z_REPORT

router = APIRouter(tags=["reports"])
TIMEOUT_S = 5.0
BIGINT_MAX = 2**63 - 1  # the largest integer a query may hand the view's SQL (SQLite and PostgreSQL alike)
# Text a query hands the view's SQL: PostgreSQL refuses a NUL in a string parameter.
QueryText = Annotated[str | None, Query(pattern=r"^[^\x00]*$")]


def _iso_date(value: object) -> object:
    """A business day is ISO 8601 text: pydantic alone would read ``date=0`` as 1970-01-01 (a Unix time)."""
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("a date is YYYY-MM-DD")
    return value


Day = Annotated[date, BeforeValidator(_iso_date), Query(alias="date")]
OptionalDay = Annotated[date | None, BeforeValidator(_iso_date), Query(alias="date")]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_TEXT, _FILE = {"schema": {"type": "string"}}, {"schema": {"type": "string", "format": "binary"}}
# The formats a route answers besides JSON, for its OpenAPI (200) entry.
_RECEIPT_FORMATS: dict[int | str, dict[str, Any]] = {200: {"content": {"text/plain": _TEXT, "application/pdf": _FILE}}}
_DAY_FORMATS: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": _TEXT, XLSX: _FILE}}}
_EVIDENCE_FORMATS: dict[int | str, dict[str, Any]] = {200: {"content": {"application/pdf": _FILE}}}
receipt_readers = require("terminal", "accountant", "dispute", "admin")
accountants = require("accountant", "admin")
z_readers = require("terminal", "accountant", "admin")
dispute_handlers = require("dispute", "admin")
# The event whose server time a receipt shows: the host's answer for a card, the cash for cash.
_RECEIPT_TIME_EVENTS = ("Authorized", "Declined", "Reversed", "CashTendered", "TransactionCompleted")


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def _views(request: Request, wait_for_position: int | None) -> ReadModels:
    views = _services(request).views()
    if wait_for_position is not None:
        # Past the log's head no append has answered that position: waiting for it would end in a 503 that
        # tells the client to retry, forever.
        head = await run_in_threadpool(views.runner.head)
        if wait_for_position > head:
            raise InvalidInput(f"wait_for_position {wait_for_position} is past the last recorded event ({head}); "
                               "pass the position an append answered", field="wait_for_position")
        if not await run_in_threadpool(views.wait_for, wait_for_position, TIMEOUT_S):
            raise ProjectionBehind(f"the view has not reached position {wait_for_position} within {TIMEOUT_S:g} s; "
                                   "retry shortly", position=views.watch.position)
    return views


# ---- receipts ------------------------------------------------------------------------------------
def _receipt_facts(services: Services, principal: Principal, transaction_id: UUID) -> ReceiptFacts:
    """One read of the transaction's stream (its state and the receipt's time); the terminal from the
    ledger view when it has it (a terminal registered long before), else from its own stream."""
    ledger = services.ledger
    events = list(ledger.events.get(transaction_id))
    txn: Any = None
    for event in events:
        txn = event.mutate(txn)
    if not isinstance(txn, Transaction):
        raise NotFound(f"no Transaction with id {transaction_id}")
    if principal.role == "terminal" and principal.terminal_id != txn.txn_terminal_id:
        raise Forbidden("a terminal reads only its own receipts")
    row = services.read_models.view.row(TERMINAL, str(txn.txn_terminal_id)) if services.read_models else None
    terminal: Any = SimpleNamespace(id=UUID(row["id"]), merchant_name=row["merchant_name"],
                                    merchant_no=row["merchant_no"], terminal_no=row["terminal_no"],
                                    parameters=row["parameters"]) if row else ledger.load(txn.txn_terminal_id, Terminal)
    original = ledger.load(txn.original_transaction_id, Transaction) if txn.original_transaction_id else None
    at = next((e.timestamp for e in events if type(e).__name__ in _RECEIPT_TIME_EVENTS), None)
    return facts_for(txn, terminal, original, at=at)


def _receipt(services: Services, principal: Principal, transaction_id: UUID, copy: str,
             reprint_no: int) -> dict[str, Any]:
    return receipt_document(_receipt_facts(services, principal, transaction_id), copy, reprint_no)  # type: ignore[arg-type]


@router.get("/v1/transactions/{transaction_id}/receipt", summary="One copy of a transaction's receipt (签购单)",
            responses=_RECEIPT_FORMATS)
async def get_receipt(transaction_id: UUID, request: Request,
                      copy: Literal["merchant", "customer"] = "customer",
                      format: Literal["json", "text", "pdf"] = "json",  # noqa: A002 - the query parameter's name
                      columns: int = Query(32, description="32 (58 mm paper) or 48 (80 mm)"),
                      lang: Literal["zh", "en"] = "zh",
                      reprint_no: int = Query(0, ge=0, le=99),
                      principal: Principal = Depends(receipt_readers)) -> Response:
    if columns not in COLUMNS:
        raise InvalidInput("columns must be 32 or 48", field="columns")
    document = await run_in_threadpool(_receipt, _services(request), principal, transaction_id, copy, reprint_no)
    if format == "text":
        return PlainTextResponse(render_text(document, columns, lang))
    if format == "pdf":
        pdf = text_pdf(render_text(document, columns, lang).splitlines(), title=f"receipt {transaction_id} {copy}",
                       page=RECEIPT_58MM if columns == 32 else RECEIPT_80MM)
        return Response(pdf, media_type="application/pdf", headers={
            "Content-Disposition": f'inline; filename="receipt-{transaction_id}-{copy}.pdf"'})
    return json_response({"receipt_sha256": receipt_sha256(document), "document": document}, 200)


# ---- reconciliation ------------------------------------------------------------------------------
@router.get("/v1/reports/day", summary="Day report (X report) for one business day: lines, fees, cash variance",
            responses=_DAY_FORMATS)
async def get_day_report(request: Request, day: Day, store_id: QueryText = None,
                         format: Literal["json", "csv", "xlsx"] = "json",  # noqa: A002
                         wait_for_position: int | None = Query(None, ge=1),
                         principal: Principal = Depends(accountants)) -> Response:
    views = await _views(request, wait_for_position)
    report = await run_in_threadpool(build_day_report, views, day.isoformat(), store_id,
                                     _services(request).clock.now())
    if format == "csv":
        return Response(report_csv(report), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="till-ledger-{day.isoformat()}.csv"'})
    if format == "xlsx":
        return Response(report_xlsx(report), media_type=XLSX, headers={
            "Content-Disposition": f'attachment; filename="till-ledger-{day.isoformat()}.xlsx"'})
    return json_response(report, 200)


def build_day_report(views: ReadModels, day: str, store_id: str | None, now: datetime) -> dict[str, Any]:
    view = views.view
    scope = {"business_day": day, **({"store_id": store_id} if store_id else {})}
    lines = view.aggregate_rows(DAY_LINE, **scope)
    apart = view.aggregate_rows(DAY_APART, **scope)
    in_doubt = [r for outcome in ("pending", "unknown")
                for r in view.find_transactions(business_day=day, outcome=outcome)]
    tills = view.day(TILL, day, store_id)
    till_cash = view.till_cash([t["id"] for t in tills])
    terminal_ids = {t["terminal_id"] for t in tills} | {r["terminal_id"] for r in in_doubt}
    terminals = list(view.rows(TERMINAL, sorted(terminal_ids)).values())
    report = day_report_from_totals(day, lines, apart, in_doubt, tills, till_cash, terminals, store_id=store_id,
                                    generated_at=now.isoformat())
    report["position"] = views.projection.position()
    return report


@router.get("/v1/reports/z", summary="Z reports (one per settled terminal batch) of a business day")
async def list_z_reports(request: Request, day: Day, store_id: QueryText = None,
                         wait_for_position: int | None = Query(None, ge=1),
                         principal: Principal = Depends(accountants)) -> dict[str, Any]:
    views = await _views(request, wait_for_position)
    rows = await run_in_threadpool(views.view.day, Z_REPORT, day.isoformat(), store_id)
    return {"business_day": day.isoformat(), "store_id": store_id,
            "z_reports": sorted(rows, key=lambda r: (r["store_id"] or "", r["terminal_no"] or "", r["z_number"]))}


@router.get("/v1/reports/z/{z_report_id}", summary="One Z report as recorded at settlement (immutable, chain checked)")
async def get_z_report(z_report_id: UUID, request: Request,
                       principal: Principal = Depends(z_readers)) -> Response:
    records, check = await run_in_threadpool(_services(request).ledger.history, z_report_id, ZReport)
    issued = records[0]
    if principal.role == "terminal" and str(principal.terminal_id) != str(issued["z_terminal_id"]):
        raise Forbidden("a terminal reads only its own Z reports")  # the agent prints them at settlement
    return json_response({"z_report_id": str(z_report_id), "z_number": issued["z_number"],
                          "terminal_id": issued["z_terminal_id"], "batch_no": issued["batch_no"],
                          "business_day": issued["business_day"], "settled_at": issued["settled_at"],
                          "issued_at": issued["timestamp"], "report": issued["report"],
                          "hash": issued["hash"], "chain_valid": check.valid}, 200)


# ---- acquirer settlement files --------------------------------------------------------------------
def settlement_matches(services: Services, settlement_id: UUID) -> dict[str, Any]:
    settlement = services.ledger.load(settlement_id, SettlementFile)
    view = services.views().view
    rows: list[dict[str, Any]] = []
    for merchant_no, terminal_no, batch_no in covered_batches(settlement.lines):
        rows += [r for r in view.find_transactions(terminal_no=terminal_no, batch_no=batch_no)
                 if r["merchant_no"] == merchant_no]
    return {"settlement_id": str(settlement.id), "file_name": settlement.file_name,
            "file_sha256": settlement.file_sha256, "lines": len(settlement.lines),
            **match(settlement.lines, rows)}


def import_settlement(services: Services, data: bytes, file_name: str) -> tuple[UUID, bool]:
    """Record the file (once); its id and whether this call imported it."""
    lines = parse_settlement_csv(data)
    digest = hashlib.sha256(data).hexdigest()
    try:
        imported = services.executor.run(Ledger.import_settlement_file(
            Stamp(None, None, None, services.clock.now()), digest, file_name, lines))
    except AlreadyExists:
        return settlement_id_for(digest), False
    return imported.id, True


@router.post("/v1/settlements", status_code=201, summary="Import an acquirer settlement file (CSV, "
             "docs/settlement-file.md) and match it against the ledger; the same file again is not re-imported",
             openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}})
async def post_settlement(request: Request, file_name: str = Query("settlement.csv", max_length=200),
                          principal: Principal = Depends(accountants)) -> Response:
    data = await request.body()
    services = _services(request)
    settlement_id, new = await run_in_threadpool(import_settlement, services, data, file_name)
    result = await run_in_threadpool(settlement_matches, services, settlement_id)
    return json_response({**result, "imported": new}, 201 if new else 200)


@router.get("/v1/settlements/{settlement_id}/matches", summary="Matched, amount differs, ledger only, file only")
async def get_settlement_matches(settlement_id: UUID, request: Request,
                                 wait_for_position: int | None = Query(None, ge=1),
                                 principal: Principal = Depends(accountants)) -> Response:
    await _views(request, wait_for_position)
    return json_response(await run_in_threadpool(settlement_matches, _services(request), settlement_id), 200)


# ---- dispute evidence ----------------------------------------------------------------------------
@router.get("/v1/disputes/search", summary="Find transactions by RRN, auth code, terminal + trace, or last 4 + day")
async def search_disputes(request: Request, rrn: QueryText = None, auth_code: QueryText = None,
                          terminal_no: QueryText = None, trace_no: QueryText = None,
                          last4: str | None = Query(None, pattern=r"^\d{4}$"), day: OptionalDay = None,
                          amount_minor: int | None = Query(None, ge=0, le=BIGINT_MAX),
                          wait_for_position: int | None = Query(None, ge=1),
                          principal: Principal = Depends(dispute_handlers)) -> dict[str, Any]:
    criteria: dict[str, Any] = {k: v for k, v in {
        "rrn": rrn, "auth_code": auth_code, "terminal_no": terminal_no, "trace_no": trace_no, "last4": last4,
        "business_day": day.isoformat() if day else None, "amount_minor": amount_minor}.items() if v is not None}
    usable = ({"rrn"}, {"auth_code"}, {"terminal_no", "trace_no"}, {"last4", "business_day"})
    if not any(keys <= criteria.keys() for keys in usable):
        raise InvalidInput("search by rrn, auth_code, terminal_no + trace_no, or last4 + date (+ amount_minor)",
                           field="query")
    views = await _views(request, wait_for_position)
    rows = await run_in_threadpool(views.view.find_transactions, **criteria)
    return {"matches": [{"transaction_id": r["id"], "kind": r["kind"], "status": r["status"], "outcome": r["outcome"],
                         "amount_minor": r["amount_minor"], "currency": r["currency"], "terminal_no": r["terminal_no"],
                         "trace_no": r["trace_no"], "rrn": r["rrn"], "auth_code": r["auth_code"],
                         "masked_pan": (r["card"] or {}).get("masked_pan"), "business_day": r["business_day"],
                         "opened_at": r["opened_at"]} for r in rows[:200]],
            "truncated": len(rows) > 200}


def build_evidence(services: Services, transaction_id: UUID, as_of_version: int | None) -> dict[str, Any]:
    views = services.views()
    row = views.view.row(TRANSACTION, str(transaction_id))
    if row is None:
        raise NotFound(f"no transaction {transaction_id} in the view (yet)")
    records, check = services.ledger.history(transaction_id, Transaction)
    if as_of_version is not None and not 1 <= as_of_version <= len(records):
        raise InvalidInput(f"as_of_version must be between 1 and {len(records)}", field="as_of_version")
    related_ids = [r["id"] for r in row.get("related", [])]
    if row.get("original_transaction_id"):
        related_ids.insert(0, row["original_transaction_id"])
    related = list(views.view.rows(TRANSACTION, related_ids).values())
    receipts: dict[str, Any] | None = None
    try:
        facts = _receipt_facts(services, _SystemReader(), transaction_id)  # type: ignore[arg-type]
    except OutOfSequence:
        facts = None  # no outcome yet: no receipt exists
    if facts is not None:
        receipts = {}
        for copy in ("merchant", "customer"):
            document = receipt_document(facts, copy)  # type: ignore[arg-type]
            receipts[copy] = {"document": document, "receipt_sha256": receipt_sha256(document),
                              "text": render_text(document, 32), "printed": row["prints"].get(copy, 0)}
    state = None
    if as_of_version is not None:
        state = transaction_view(services.ledger.repository.get(transaction_id, version=as_of_version))
    chain = {"valid": check.valid, "broken_at_version": check.broken_at_version, "problem": check.reason,
             "head_hash": records[-1]["hash"] if records else None}
    return evidence_bundle(row, records, chain, related, receipts, state, as_of_version)


def sign_bundle(services: Services, transaction_id: UUID, evidence: dict[str, Any]) -> dict[str, Any]:
    """The self-contained bundle: evidence, every event with its hash, the service's signature."""
    key = services.signing_key
    if key is None:
        raise RuntimeError("this process has no signing key")
    records, _ = services.ledger.history(transaction_id, Transaction)
    body = bundle_body(evidence, records)
    return {**body, "signature": {"algorithm": ALGORITHM, "key_id": key.key_id, "public_key": public_pem(key.public),
                                  "value": key.sign(canonical_bytes(body))}}


class _SystemReader:
    role = "dispute"
    terminal_id = None


@router.get("/v1/disputes/{transaction_id}/evidence", summary="Dispute evidence bundle (JSON): timeline, chip "
            "data, CVM, receipts, related credits, hash chain; as of any event version", responses=_EVIDENCE_FORMATS)
async def get_evidence(transaction_id: UUID, request: Request, as_of_version: int | None = Query(None, ge=1),
                       format: Literal["json", "pdf", "bundle"] = "json",  # noqa: A002
                       wait_for_position: int | None = Query(None, ge=1),
                       principal: Principal = Depends(dispute_handlers)) -> Response:
    await _views(request, wait_for_position)
    services = _services(request)
    bundle = await run_in_threadpool(build_evidence, services, transaction_id, as_of_version)
    if format == "bundle":
        signed = await run_in_threadpool(sign_bundle, services, transaction_id, bundle)
        return Response(canonical_bytes(signed), media_type="application/json", headers={
            "Content-Disposition": f'attachment; filename="evidence-{transaction_id}.json"'})
    if format == "pdf":
        pdf = text_pdf(evidence_text(bundle), title=f"dispute evidence {transaction_id}")
        return Response(pdf, media_type="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="evidence-{transaction_id}.pdf"'})
    return json_response(bundle, 200)


@router.get("/v1/keys/signing", summary="The public key that signs evidence bundles (compare its key_id)")
async def get_signing_key(request: Request) -> dict[str, Any]:
    key = _services(request).signing_key
    if key is None:
        raise NotFound("this process signs nothing")
    return {"algorithm": ALGORITHM, "key_id": key.key_id, "public_key": public_pem(key.public)}


@router.get("/v1/projections", summary="Each projection's position, the log head and the lag")
async def get_projections(request: Request, principal: Principal = Depends(require("accountant", "dispute",
                                                                                     "admin"))) -> dict[str, Any]:
    return {"projections": await run_in_threadpool(_services(request).views().status)}
