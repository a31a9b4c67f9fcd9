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
_bearer_scheme = HTTPBearer(auto_error=False, description="HS256 JWT with role 'admin'")


async def require_admin(request: Request, _: Annotated[object, Depends(_bearer_scheme)],
                        ) -> Principal:
    """Authenticate, authorize, then count the request against the token's rate limit.

    Needs no database, so a rejected request never takes a pooled connection, and
    only authenticated requests spend a token's budget.
    """
    context: ApiContext = request.app.state.context
    principal = context.verifier.verify(request.headers.get("authorization"))
    wait_s = context.limiter.acquire(principal.token_key)
    if wait_s is not None:
        retry_after = max(1, int(wait_s + 0.999))
        raise ApiError(429, "rate_limited",
                       f"rate limit of {context.settings.rate_limit_per_minute:g} requests per "
                       f"minute reached for this token; retry in {retry_after} s",
                       headers={"Retry-After": str(retry_after)})
    return principal
