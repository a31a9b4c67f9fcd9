"""Bearer-token auth: HS256 JWTs carrying an admin role, as the original system had.

Why JWT and not static API keys: the portal already holds JWTs from the original system
(admin-only endpoints, "requires JWT"), tokens expire by themselves, and revoking every
token is one secret rotation. The API only verifies; `mint_token` (used by
`marketing api-token`) is for operators and tests.

A token must be signed with `MARKETING_API_JWT_SECRET` (HS256 only: `alg: none` and key
confusion are refused), carry `sub` and `exp`, and name the required role either as
`"role": "admin"` or inside `"roles": [...]`. Missing/bad/expired -> 401; valid but without
the role -> 403.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt

from api.errors import ApiError

ALGORITHM = "HS256"
# What a 401 tells the client to send (RFC 6750).
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="marketing-api"'}


@dataclass(frozen=True)
class Principal:
    """Who called: the token's subject, and a key that identifies the token itself."""

    subject: str
    token_key: str


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, "unauthorized", detail, headers=CHALLENGE)


class TokenVerifier:
    """Checks `Authorization: Bearer <jwt>` headers against one secret and one role.

    Accepted tokens are remembered (exact token string -> subject, expiry) so a portal
    sending the same token all day pays for the HMAC check once, not per request (it was a
    third of the per-request CPU); the expiry is still checked on every request.
    """

    def __init__(self, secret: str, required_role: str = "admin", leeway_s: float = 30,
                 max_cached: int = 10_000) -> None:
        self._secret = secret
        self.required_role = required_role
        self._leeway = leeway_s
        self._max_cached = max_cached
        self._accepted: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def verify(self, authorization: str | None) -> Principal:
        if not authorization:
            raise _unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("the Authorization header must be 'Bearer <token>'")
        remembered = self._accepted.get(token)
        if remembered is not None:
            if time.time() < remembered[1] + self._leeway:
                return remembered[0]
            del self._accepted[token]
        principal, expires_at = self._decode(token)
        self._accepted[token] = (principal, expires_at)
        while len(self._accepted) > self._max_cached:
            self._accepted.popitem(last=False)
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM],
                                options={"require": ["exp", "sub"]}, leeway=self._leeway)
        except jwt.ExpiredSignatureError as error:
            raise _unauthorized("token expired") from error
        except jwt.InvalidTokenError as error:
            raise _unauthorized(f"invalid token: {error}") from error
        if not _has_role(claims, self.required_role):
            raise ApiError(403, "forbidden",
                           f"the token of {claims['sub']!r} lacks the {self.required_role!r} role")
        # The rate limit is per token; hashing keeps raw tokens out of logs and metrics.
        key = hashlib.sha256(token.encode()).hexdigest()[:32]
        return Principal(subject=str(claims["sub"]), token_key=key), float(claims["exp"])


def _has_role(claims: dict[str, Any], role: str) -> bool:
    roles = claims.get("roles")
    return claims.get("role") == role or (isinstance(roles, list) and role in roles)


def mint_token(secret: str, subject: str, *, role: str | None = "admin",
               ttl: dt.timedelta = dt.timedelta(hours=12), now: dt.datetime | None = None
               ) -> str:
    """A signed token for `subject` (role None: a token without any role, for 403 tests)."""
    issued = now or dt.datetime.now(dt.UTC)
    claims: dict[str, Any] = {"sub": subject, "iat": issued, "exp": issued + ttl}
    if role is not None:
        claims["role"] = role
    return jwt.encode(claims, secret, algorithm=ALGORITHM)
