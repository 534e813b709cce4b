"""The dispute handler's pages: search, one transaction's evidence, and its downloads.

The evidence is the same bundle the JSON API serves (``api.routers.reports.build_evidence``): the
timeline with both clocks, the chip data, the CVM, the receipts as rendered for print, the related
voids and refunds, and the hash-chain verdict. Nothing shows more of a card than the masked PAN.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.routers.reports import build_evidence, sign_bundle
from api.services import Services
from api.web.page import PageRoute, render, signed_in
from api.web.session import WebUser
from projections.bundle import canonical_bytes
from projections.dispute import evidence_text
from projections.pdf import text_pdf

router = APIRouter(route_class=PageRoute, include_in_schema=False)
NO_NUL = r"^[^\x00]*$"  # PostgreSQL refuses a NUL in a text parameter: a 422 page, never a 500
dispute_handler = signed_in("dispute", "admin")
SHOWN = 200
# The searches the view has indexes for (the JSON API accepts the same).
USABLE = ({"rrn"}, {"auth_code"}, {"terminal_no", "trace_no"}, {"last4", "business_day"})


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _search(services: Services, criteria: dict[str, Any]) -> list[dict[str, Any]]:
    return services.views().view.find_transactions(**criteria)


@router.get("/ui/disputes")
async def search_page(request: Request, rrn: str = Query("", max_length=12, pattern=NO_NUL),
                      auth_code: str = Query("", max_length=6, pattern=NO_NUL),
                      terminal_no: str = Query("", max_length=8, pattern=NO_NUL),
                      trace_no: str = Query("", max_length=6, pattern=NO_NUL),
                      last4: str = Query("", pattern=r"^(\d{4})?$"),
                      day: str = Query("", alias="date", pattern=r"^(\d{4}-\d{2}-\d{2})?$"),
                      amount_minor: str = Query("", pattern=r"^(\d{1,12})?$"),
                      user: WebUser = Depends(dispute_handler)) -> Response:
    form = {"rrn": rrn.strip(), "auth_code": auth_code.strip(), "terminal_no": terminal_no.strip(),
            "trace_no": trace_no.strip(), "last4": last4, "date": day, "amount_minor": amount_minor}
    criteria: dict[str, Any] = {key: value for key, value in {
        "rrn": form["rrn"], "auth_code": form["auth_code"], "terminal_no": form["terminal_no"],
        "trace_no": form["trace_no"], "last4": form["last4"], "business_day": form["date"]}.items() if value}
    if amount_minor:
        criteria["amount_minor"] = int(amount_minor)
    searched = any(form.values())
    usable = any(keys <= criteria.keys() for keys in USABLE)
    rows = await run_in_threadpool(_search, _services(request), criteria) if usable else []
    return render(request, "disputes.html", form=form, searched=searched, usable=usable, matches=rows[:SHOWN],
                  truncated=len(rows) > SHOWN)


@router.get("/ui/disputes/{transaction_id}")
async def evidence_page(request: Request, transaction_id: UUID,
                        user: WebUser = Depends(dispute_handler)) -> Response:
    bundle = await run_in_threadpool(build_evidence, _services(request), transaction_id, None)
    return render(request, "dispute.html", bundle=bundle, transaction_id=str(transaction_id))


@router.get("/ui/disputes/{transaction_id}/bundle.json")
async def bundle_download(request: Request, transaction_id: UUID,
                          user: WebUser = Depends(dispute_handler)) -> Response:
    services = _services(request)
    bundle = await run_in_threadpool(build_evidence, services, transaction_id, None)
    signed = await run_in_threadpool(sign_bundle, services, transaction_id, bundle)
    return Response(canonical_bytes(signed), media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="evidence-{transaction_id}.json"', "Cache-Control": "no-store"})


@router.get("/ui/disputes/{transaction_id}/evidence.pdf")
async def pdf_download(request: Request, transaction_id: UUID,
                       user: WebUser = Depends(dispute_handler)) -> Response:
    bundle = await run_in_threadpool(build_evidence, _services(request), transaction_id, None)
    pdf = await run_in_threadpool(text_pdf, evidence_text(bundle), title=f"dispute evidence {transaction_id}")
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="evidence-{transaction_id}.pdf"', "Cache-Control": "no-store"})
