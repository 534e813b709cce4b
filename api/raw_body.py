"""Fast path for the hot append routes: validate the raw JSON body in pydantic's core, reply pre-built.

FastAPI's generic body handling (JSON → Python dicts → validation → dependency solving) cost more
than the append itself under load. These helpers keep the same schemas and the same problem+json
errors, and ``install_raw_body_schemas`` puts the request schemas back into the OpenAPI document.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

M = TypeVar("M", bound=BaseModel)
_RAW_MODELS: dict[str, type[BaseModel]] = {}


def parse_body(model: type[M], raw: bytes) -> M:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{**err, "loc": ("body", *err.get("loc", ()))} for err in exc.errors(include_input=False)]
        raise RequestValidationError(errors) from None


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a request body parsed by ``parse_body``."""
    _RAW_MODELS[model.__name__] = model
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


def install_raw_body_schemas(app: FastAPI) -> None:
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default_openapi()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, model in _RAW_MODELS.items():
                model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(model_schema.pop("$defs", {}))
                components[name] = model_schema
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def json_response(body: dict[str, Any], status_code: int) -> Response:
    return Response(json.dumps(body, separators=(",", ":")).encode(), status_code=status_code,
                    media_type="application/json")
