"""Headers every answer carries, and CORS refusals in the API's own JSON error shape.

Why: the JSON answers hold business figures behind a token, so no cache (browser or proxy)
may keep them (`Cache-Control: no-store`), and a browser must never sniff them into
something executable (`nosniff`) or frame them. The documentation page gets a policy that
lets Swagger UI run from the API's own files (it loads nothing from a CDN). The server
banner is switched off where uvicorn starts (`server_header=False` in api/cli.py).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# JSON is data, never a document: nothing may load, run or frame it.
DATA_HEADERS = {
    **COMMON_HEADERS,
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
# Swagger UI: its script and styles come from this server (one inline bootstrap script).
DOCS_HEADERS = {
    **COMMON_HEADERS,
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                               "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                               "frame-ancestors 'none'",
}


class SecurityHeadersMiddleware:
    """Adds DATA_HEADERS to every answer, DOCS_HEADERS under the documentation paths."""

    def __init__(self, app: ASGIApp, docs_paths: tuple[str, ...]) -> None:
        self.app = app
        self.docs_paths = docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = DOCS_HEADERS if path.startswith(self.docs_paths) else DATA_HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class JsonCORSMiddleware(CORSMiddleware):
    """Starlette's CORS handling, with a refused preflight answered as our JSON error."""

    def preflight_response(self, request_headers: object) -> Response:
        response = super().preflight_response(request_headers)  # type: ignore[arg-type]
        if response.status_code < 400:
            return response
        reason = response.body.decode(errors="replace")  # "Disallowed CORS origin, method"
        headers = {key: value for key, value in response.headers.items()
                   if key.lower().startswith("access-control-") or key.lower() == "vary"}
        return JSONResponse({"status": "error", "code": "cors_rejected",
                             "detail": f"{reason}: this origin, method or header is not "
                                       "allowed by MARKETING_API_CORS_ORIGIN"},
                            status_code=response.status_code, headers=headers)

