"""The accountant's pages: the day (X report, totals, hourly chart, cash per till, Z reports),
its CSV/XLSX downloads, one Z report, and the settlement file upload with its matches.

Every figure comes from the same functions as the JSON API (``api.routers.reports``), so the page,
the download and ``GET /v1/reports/day`` always agree.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from uuid import UUID
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from api.routers.reports import XLSX, build_day_report, import_settlement, settlement_matches
from api.services import Services
from api.web.day_summary import bars, grouped, hourly, variance_class
from api.web.i18n import choose_language, translator
from api.web.page import PageRoute, error_page, render, signed_in
from api.web.session import SessionAuthority, WebUser
from domain.errors import InvalidInput
from domain.z_report import ZReport
from projections.aggregates import DAY_HOUR
from projections.reconciliation import report_csv, report_xlsx
from projections.rows import DEFAULT_TIMEZONE, Z_REPORT

router = APIRouter(route_class=PageRoute, include_in_schema=False)
accountant = signed_in("accountant", "admin")
MAX_SETTLEMENT_BYTES = 20 * 1024 * 1024


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _today(services: Services) -> date:
    # The stores' wall clock (the seed's stores are in China); the accountant can pick any day.
    return services.clock.now().astimezone(ZoneInfo(DEFAULT_TIMEZONE)).date()


def _day_page_data(services: Services, day: date, store_id: str | None) -> dict[str, Any]:
    views = services.views()
    report = build_day_report(views, day.isoformat(), store_id, services.clock.now())
    scope = {"business_day": day.isoformat(), **({"store_id": store_id} if store_id else {})}
    z_reports = sorted(views.view.day(Z_REPORT, day.isoformat(), store_id),
                       key=lambda r: (r["store_id"] or "", r["terminal_no"] or "", r["z_number"]))
    return {
        "report": report,
        "by_terminal": grouped(report["lines"], "store_id", "terminal_no"),
        "by_operator": grouped(report["lines"], "terminal_no", "operator_no"),
        "by_brand": grouped(report["lines"], "brand", "kind"),
        "charts": {currency: bars(hours) for currency, hours in
                   hourly(views.view.aggregate_rows(DAY_HOUR, **scope)).items()},
        "drawers": [{**d, "css": variance_class(d)} for d in report["cash"]],
        "z_reports": z_reports,
        "stores": views.view.stores(),
    }


@router.get("/ui/day")
async def day_page(request: Request, day: date | None = Query(None, alias="date"),
                   store: str | None = Query(None, max_length=64, pattern=r"^[^\x00]*$"),
                   user: WebUser = Depends(accountant)) -> Response:
    services = _services(request)
    chosen = day or _today(services)
    data = await run_in_threadpool(_day_page_data, services, chosen, store or None)
    return render(request, "day.html", day=chosen.isoformat(), store=store or "", **data)


@router.get("/ui/day.{extension}")
async def day_download(request: Request, extension: str, day: date = Query(..., alias="date"),
                       store: str | None = Query(None, max_length=64, pattern=r"^[^\x00]*$"),
                       user: WebUser = Depends(accountant)) -> Response:
    if extension not in ("csv", "xlsx"):
        raise InvalidInput("download as .csv or .xlsx", field="extension")
    services = _services(request)
    report = await run_in_threadpool(build_day_report, services.views(), day.isoformat(), store or None,
                                     services.clock.now())
    name = f"till-ledger-{day.isoformat()}{'-' + store if store else ''}.{extension}"
    disposition = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    if extension == "csv":
        return Response(report_csv(report), media_type="text/csv; charset=utf-8", headers=disposition)
    return Response(report_xlsx(report), media_type=XLSX, headers=disposition)


@router.get("/ui/z/{z_report_id}")
async def z_report_page(request: Request, z_report_id: UUID, user: WebUser = Depends(accountant)) -> Response:
    records, check = await run_in_threadpool(_services(request).ledger.history, z_report_id, ZReport)
    issued = records[0]
    report = issued["report"]
    return render(request, "z_report.html", z=issued, report=report, chain_valid=check.valid,
                  z_report_id=str(z_report_id), by_brand=grouped(report.get("lines", []), "brand", "kind"))


def _check_csrf(request: Request, user: WebUser, presented: str) -> None:
    sessions: SessionAuthority = request.app.state.web_sessions
    if not sessions.sealer.csrf_ok(user.nonce, presented):
        raise _FormExpired()


class _FormExpired(InvalidInput):
    code = "form_expired"
    title = "The form expired"

    def __init__(self) -> None:
        super().__init__("reload the page and try again", field="csrf")


@router.post("/ui/settlements")
async def upload_settlement(request: Request, file: Annotated[UploadFile, File()],
                            csrf: Annotated[str, Form(max_length=64)] = "",
                            user: WebUser = Depends(accountant)) -> Response:
    _check_csrf(request, user, csrf)
    data = await file.read(MAX_SETTLEMENT_BYTES + 1)
    t = translator(choose_language(request))
    if len(data) > MAX_SETTLEMENT_BYTES:
        return error_page(request, 413, f"{t('settlement_file')}: > {MAX_SETTLEMENT_BYTES // (1024 * 1024)} MB")
    name = (file.filename or "settlement.csv").rsplit("/", 1)[-1][:200]
    settlement_id, new = await run_in_threadpool(import_settlement, _services(request), data, name)
    return RedirectResponse(f"/ui/settlements/{settlement_id}{'' if new else '?again=1'}", status_code=303)


@router.get("/ui/settlements/{settlement_id}")
async def settlement_page(request: Request, settlement_id: UUID, again: bool = False,
                          user: WebUser = Depends(accountant)) -> Response:
    result = await run_in_threadpool(settlement_matches, _services(request), settlement_id)
    return render(request, "settlement.html", result=result, again=again)

