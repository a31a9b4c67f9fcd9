"""What every route needs, built once per app: settings, reader, auth, limiter, cache."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from api.auth import Principal, TokenVerifier
from api.cache import TTLCache
from api.database import Reader
from api.errors import ApiError
from api.ratelimit import RateLimiter
from api.settings import ApiSettings


@dataclass(frozen=True)
class ApiContext:
    settings: ApiSettings
    reader: Reader
    verifier: TokenVerifier
    limiter: RateLimiter
    cache: TTLCache


async def get_context(request: Request) -> ApiContext:
    return request.app.state.context


Context = Annotated[ApiContext, Depends(get_context)]

# Only documents the scheme in OpenAPI ("Authorize" in /docs); the header is checked below
# so that every failure gets our JSON body rather than a bare 403.
_bearer_scheme = HTTPBearer(
    auto_error=False,
    description="JWT with role 'admin', `aud` and `iss`; HS256, RS256 or ES256 as the "
                "server's key is configured")


async def require_admin(request: Request, _: Annotated[object, Depends(_bearer_scheme)],
                        ) -> Principal:
    """Authenticate, authorize, then count the request against the subject's rate limit.

    Needs no database, so a rejected request never takes a pooled connection, and
    only authenticated requests spend a subject's budget. The budget is per subject
    (`sub`), not per token: minting more tokens does not buy more requests.
    """
    context: ApiContext = request.app.state.context
    principal = context.verifier.verify(request.headers.get("authorization"))
    wait_s = context.limiter.acquire(principal.subject)
    if wait_s is not None:
        retry_after = max(1, int(wait_s + 0.999))
        per_minute, _ = context.limiter.limit(principal.subject)
        raise ApiError(429, "rate_limited",
                       f"rate limit of {per_minute:g} requests per minute reached for "
                       f"subject {principal.subject[:64]!r}; retry in {retry_after} s",
                       headers={"Retry-After": str(retry_after)})
    return principal
