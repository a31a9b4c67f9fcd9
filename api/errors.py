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
        detail = str(error.detail)
        if error.status_code == 405:
            # The original system's write and action endpoints: say where each went.
            detail += ("; this API only reads (see 'From the original API' in docs/api.md "
                       "for where creating, updating, pausing and generating went)")
        body = ErrorResponse(code=code, detail=detail)
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


# One real answer per status, for the OpenAPI examples (tests check each against its schema).
ERROR_EXAMPLES: dict[int, dict[str, Any]] = {
    401: {"status": "error", "code": "unauthorized", "detail": "token expired"},
    403: {"status": "error", "code": "forbidden",
          "detail": "the token of 'portal' lacks the 'admin' role"},
    404: {"status": "error", "code": "not_found",
          "detail": "campaign 3f2b1c9e-7d4a-5e6f-8a9b-0c1d2e3f4a5b not found"},
    422: {"status": "error", "code": "invalid_parameter",
          "detail": "statuss: unknown parameter (accepted: limit, offset, pattern, status, "
                    "type); did you mean 'status'?",
          "errors": [{"parameter": "statuss",
                      "message": "unknown parameter (accepted: limit, offset, pattern, status, "
                                 "type); did you mean 'status'?"}]},
    429: {"status": "error", "code": "rate_limited",
          "detail": "rate limit of 600 requests per minute reached for subject 'portal'; "
                    "retry in 2 s"},
    503: {"status": "error", "code": "database_unavailable",
          "detail": "the warehouse is unavailable: no database connection within the timeout"},
}
ERROR_DESCRIPTIONS: dict[int, str] = {
    401: "Missing, malformed or expired token (with `WWW-Authenticate: Bearer`)",
    403: "Token without the required role",
    404: "No such resource (unknown id or pattern, or no data for the day)",
    422: "Invalid, unknown or repeated parameter; `errors` names each",
    429: "Rate limit reached; see `Retry-After`",
    503: "Warehouse unavailable; see `Retry-After`",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying",
                                "schema": {"type": "integer"}}}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status it can answer, with the error body and an
    example, so the OpenAPI document lists every status the operation returns."""
    responses: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        response: dict[str, Any] = {
            "model": ErrorResponse, "description": ERROR_DESCRIPTIONS[code],
            "content": {"application/json": {"example": ERROR_EXAMPLES[code]}}}
        if code in (429, 503):
            response["headers"] = _RETRY_AFTER
        responses[code] = response
    return responses


# Every route under /api/marketing can answer these (token, parameters, limits, database).
DATA_ERRORS = (401, 403, 422, 429, 503)
