"""Every error the API returns is JSON of one shape: `{"status": "error", "code", "detail"}`.

The portal shows `detail` to an operator and branches on `code`, so both must be stable and
say what to change: a 422 names the parameter and the accepted values, a 503 says the
warehouse is unavailable (and `Retry-After` when to try again), never a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.database import DatabaseUnavailable

log = logging.getLogger("api")
RETRY_AFTER_UNAVAILABLE_S = 5


class FieldError(BaseModel):
    """One invalid parameter."""

    parameter: str
    message: str


class ErrorResponse(BaseModel):
    """The body of every 4xx/5xx answer."""

    status: Literal["error"] = "error"
    code: str
    detail: str
    errors: list[FieldError] | None = None


class ApiError(Exception):
    """Raised by routes and dependencies; rendered as `ErrorResponse`."""

    def __init__(self, status_code: int, code: str, detail: str,
                 headers: dict[str, str] | None = None,
                 errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.code = code
        self.detail = detail
        self.headers = headers
        self.errors = errors


def not_found(detail: str) -> ApiError:
    return ApiError(404, "not_found", detail)


def invalid(parameter: str, message: str) -> ApiError:
    """A 422 for a parameter that passed type checks but not a cross-field rule."""
    return ApiError(422, "invalid_parameter", f"{parameter}: {message}",
                    errors=[FieldError(parameter=parameter, message=message)])


def _render(status_code: int, body: ErrorResponse, headers: dict[str, str] | None = None
            ) -> JSONResponse:
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status_code,
                        headers=headers)


def _parameter_name(location: tuple[Any, ...]) -> str:
    # ("query", "limit") -> "limit"; ("path", "campaign_id") -> "campaign_id"
    parts = [str(part) for part in location if part not in ("query", "path", "header", "body")]
    return ".".join(parts) or "request"


def _validation_message(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid value"))
    if "input" in error and error["input"] is not None:
        message += f" (got {error['input']!r})"
    return message


def install_error_handlers(app: FastAPI) -> None:
    """Route every failure through `ErrorResponse`."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, error: ApiError) -> JSONResponse:
        body = ErrorResponse(code=error.code, detail=error.detail, errors=error.errors)
        return _render(error.status_code, body, error.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, error: RequestValidationError) -> JSONResponse:
        fields = [FieldError(parameter=_parameter_name(tuple(item.get("loc", ()))),
                             message=_validation_message(item))
                  for item in error.errors()]
        detail = "; ".join(f"{field.parameter}: {field.message}" for field in fields)
        body = ErrorResponse(code="invalid_parameter", detail=detail, errors=fields)
        return _render(422, body)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "error")
        body = ErrorResponse(code=code, detail=str(error.detail))
        return _render(error.status_code, body, getattr(error, "headers", None))

    @app.exception_handler(DatabaseUnavailable)
    async def _unavailable(_: Request, error: DatabaseUnavailable) -> JSONResponse:
        log.warning("warehouse unavailable: %s", error)
        body = ErrorResponse(code="database_unavailable",
                             detail=f"the warehouse is unavailable: {error}")
        return _render(503, body, {"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)})

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=error)
        body = ErrorResponse(code="internal_error", detail="internal error (see the API log)")
        return _render(500, body)


# For `responses=` on routes, so OpenAPI documents the error shapes.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing, malformed or expired token"},
    403: {"model": ErrorResponse, "description": "Token without the required role"},
    422: {"model": ErrorResponse, "description": "Invalid parameter"},
    429: {"model": ErrorResponse, "description": "Rate limit reached; see Retry-After"},
    503: {"model": ErrorResponse, "description": "Warehouse unavailable; see Retry-After"},
}
