"""Bearer-token auth: JWTs carrying an admin role, as the original system had.

Why JWT and not static API keys: the portal already holds JWTs from the original system
(admin-only endpoints, "requires JWT"), tokens expire by themselves, and revoking every
token is one key rotation. The API only verifies; `mint_token` (used by
`marketing api-token`) is for operators and tests.

The API verifies with exactly one of (api/settings.py checks it at startup):
- an HS256 secret (`MARKETING_API_JWT_SECRET`): whoever can verify can also mint, so only
  for a deployment where the API and the minter are one trust domain (the demo);
- an RSA or EC P-256 public key in a PEM file (`MARKETING_API_JWT_PUBLIC_KEY_FILE`): RS256
  or ES256; the minter keeps the private key and the API cannot mint;
- a JWKS file of such public keys (`MARKETING_API_JWT_JWKS_FILE`): the token's `kid` header
  picks the key, so the minter can rotate keys by publishing the next one first.

The algorithm accepted is the configured key's, never the token header's choice: `alg:
none`, an HS256 token "signed" with the public key as the HMAC secret (key confusion), an
RS256 token against an EC key are all refused before any key is used.

A token must carry `sub`, `exp`, `aud` (the API's audience, or a list including it), `iss`
(the configured issuer) and the required role either as `"role": "admin"` or inside
`"roles": [...]`. `exp`, `nbf` and `iat` are checked with a leeway for clock skew between
the minter and the API. Missing/bad/expired -> 401; valid but without the role -> 403.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from api.errors import ApiError

if TYPE_CHECKING:
    from api.settings import ApiSettings

HMAC_ALGORITHM = "HS256"
DEFAULT_AUDIENCE = "marketing-api"
DEFAULT_ISSUER = "marketing-portal"
# Clock skew tolerated on exp/nbf/iat. Small against any token lifetime (minutes to hours),
# large enough that a minter whose clock runs a few seconds ahead does not have its fresh
# tokens refused as "not yet valid" (iat in the future).
DEFAULT_LEEWAY_S = 30.0
MIN_RSA_BITS = 2048  # below that RSA signatures are forgeable with enough compute
# What a 401 tells the client to send (RFC 6750).
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="marketing-api"'}
# Members of a private JWK: a verifier's JWKS must not carry them.
_PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Principal:
    """Who called: the token's subject (the rate limit is per subject)."""

    subject: str


@dataclass(frozen=True)
class VerificationKey:
    key: Any  # the HS256 secret (str) or a cryptography public key
    algorithm: str  # the only algorithm a token checked with this key may use


@dataclass(frozen=True)
class VerificationKeys:
    """The configured key: one for every token, or a JWKS where the token's `kid` picks."""

    single: VerificationKey | None = None
    by_kid: Mapping[str, VerificationKey] = field(default_factory=dict)
    description: str = "no key"

    @property
    def algorithms(self) -> tuple[str, ...]:
        keys = [self.single] if self.single else list(self.by_kid.values())
        return tuple(sorted({key.algorithm for key in keys}))


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, "unauthorized", detail, headers=CHALLENGE)


def algorithm_of(key: object) -> str:
    """RS256 for an RSA key (>= 2048 bits), ES256 for an EC P-256 key; else ValueError."""
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"an RSA key of {key.key_size} bits is too short for RS256 "
                             f"(at least {MIN_RSA_BITS})")
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"an EC key on curve {key.curve.name}: ES256 needs P-256 "
                             "(secp256r1, `openssl ecparam -name prime256v1`)")
        return "ES256"
    raise ValueError(f"unsupported key type {type(key).__name__}: RS256 needs an RSA key, "
                     "ES256 an EC P-256 key")


def secret_keys(secret: str) -> VerificationKeys:
    return VerificationKeys(single=VerificationKey(secret, HMAC_ALGORITHM),
                            description="HS256 secret")


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from error


def public_key_file_keys(path: Path) -> VerificationKeys:
    """One RSA or EC P-256 public key, PEM (`-----BEGIN PUBLIC KEY-----`)."""
    data = _read(path)
    if b"PRIVATE KEY-----" in data:
        raise ValueError(f"{path} holds a private key: give the API only the public key "
                         "(`openssl pkey -in private.pem -pubout -out public.pem`)")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as error:
        raise ValueError(f"{path} is not a PEM public key ('-----BEGIN PUBLIC KEY-----'): "
                         f"{error}") from error
    algorithm = algorithm_of(key)
    return VerificationKeys(single=VerificationKey(key, algorithm),
                            description=f"{algorithm} public key {path}")


def jwks_file_keys(path: Path) -> VerificationKeys:
    """A JWKS (`{"keys": [...]}`) of RSA / EC P-256 public keys, each with a unique `kid`."""
    try:
        document = json.loads(_read(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not JSON: {error}") from error
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not keys:
        raise ValueError(f'{path}: a JWKS is {{"keys": [...]}} with at least one key')
    by_kid: dict[str, VerificationKey] = {}
    for index, jwk in enumerate(keys):
        where = f"{path} key {index}"
        if not isinstance(jwk, dict):
            raise ValueError(f"{where} is not a JSON object")
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            raise ValueError(f"{where} has no 'kid': tokens pick their key by kid")
        where = f"{path} key {kid!r}"
        if kid in by_kid:
            raise ValueError(f"{where} appears twice")
        if jwk.get("kty") not in ("RSA", "EC"):
            raise ValueError(f"{where} has kty {jwk.get('kty')!r}: only RSA (RS256) and EC "
                             "P-256 (ES256) public keys")
        if any(member in jwk for member in _PRIVATE_JWK_MEMBERS):
            raise ValueError(f"{where} holds private key material: give the API public keys "
                             "only")
        if jwk.get("use", "sig") != "sig":
            raise ValueError(f"{where} has use {jwk.get('use')!r}, not 'sig'")
        try:
            parsed = jwt.PyJWK(jwk)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as error:
            raise ValueError(f"{where}: {error}") from error
        algorithm = algorithm_of(parsed.key)
        if jwk.get("alg", algorithm) != algorithm:
            raise ValueError(f"{where} declares alg {jwk['alg']!r}, but the key verifies "
                             f"{algorithm}")
        by_kid[kid] = VerificationKey(parsed.key, algorithm)
    return VerificationKeys(by_kid=by_kid,
                            description=f"JWKS {path} ({len(by_kid)} key(s))")


def load_private_key_file(path: Path) -> PrivateKey:
    """An unencrypted RSA or EC P-256 private key, PEM, for `mint_token`."""
    try:
        key = serialization.load_pem_private_key(_read(path), password=None)
    except TypeError as error:  # encrypted
        raise ValueError(f"{path} is encrypted: decrypt it first (`openssl pkey -in {path}`)"
                         ) from error
    except ValueError as error:
        raise ValueError(f"{path} is not a PEM private key: {error}") from error
    algorithm_of(key)  # refuse what no verifier would accept
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return key


class TokenVerifier:
    """Checks `Authorization: Bearer <jwt>` headers against the configured key and claims.

    Accepted tokens are remembered (exact token string -> subject, expiry) so a portal
    sending the same token all day pays for the signature check once, not per request (it
    was a third of the per-request CPU); the expiry is still checked on every request, with
    the same leeway as a fresh decode.
    """

    def __init__(self, keys: VerificationKeys | str | None, required_role: str = "admin", *,
                 audience: str = DEFAULT_AUDIENCE, issuer: str = DEFAULT_ISSUER,
                 leeway_s: float = DEFAULT_LEEWAY_S, max_cached: int = 10_000,
                 clock: Callable[[], float] = time.time) -> None:
        # A str is an HS256 secret; None (no key) refuses every token.
        if isinstance(keys, str):
            keys = secret_keys(keys)
        self._keys = keys or VerificationKeys()
        self.required_role = required_role
        self.audience = audience
        self.issuer = issuer
        self.leeway_s = leeway_s
        self._max_cached = max_cached
        self._clock = clock
        self._accepted: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        # The settings this verifier was built from (see ApiContext), None if built by hand.
        self.settings: ApiSettings | None = None

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> TokenVerifier:
        verifier = cls(settings.verification_keys(), settings.required_role,
                       audience=settings.jwt_audience, issuer=settings.jwt_issuer,
                       leeway_s=settings.jwt_leeway_seconds)
        verifier.settings = settings
        return verifier

    @property
    def keys(self) -> VerificationKeys:
        return self._keys

    def verify(self, authorization: str | None) -> Principal:
        if not authorization:
            raise _unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("the Authorization header must be 'Bearer <token>'")
        remembered = self._accepted.get(token)
        if remembered is not None:
            # The same rule as PyJWT's exp check: valid while now < exp + leeway.
            if self._clock() < remembered[1] + self.leeway_s:
                return remembered[0]
            self._accepted.pop(token, None)
        principal, expires_at = self._decode(token)
        self._accepted[token] = (principal, expires_at)
        while len(self._accepted) > self._max_cached:
            self._accepted.popitem(last=False)
        return principal

    def _key_for(self, token: str) -> VerificationKey:
        if self._keys.single is not None:
            return self._keys.single
        if not self._keys.by_kid:
            raise _unauthorized("the API has no token verification key configured")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise _unauthorized(f"invalid token: {error}") from error
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise _unauthorized("invalid token: no 'kid' header (this API picks the "
                                "verification key by kid)")
        key = self._keys.by_kid.get(kid)
        if key is None:
            raise _unauthorized(f"invalid token: unknown key id (kid) {kid[:64]!r}")
        return key

    def _decode(self, token: str) -> tuple[Principal, float]:
        key = self._key_for(token)
        try:
            claims = jwt.decode(token, key.key, algorithms=[key.algorithm],
                                audience=self.audience, issuer=self.issuer,
                                options={"require": ["exp", "sub", "aud", "iss"]},
                                leeway=self.leeway_s)
        except jwt.ExpiredSignatureError as error:
            raise _unauthorized("token expired") from error
        except jwt.MissingRequiredClaimError as error:
            raise _unauthorized(f"invalid token: the {error.claim!r} claim is missing"
                                ) from error
        except jwt.InvalidAudienceError as error:
            raise _unauthorized(f"invalid token: the 'aud' claim must be {self.audience!r} "
                                "(or a list including it)") from error
        except jwt.InvalidIssuerError as error:
            raise _unauthorized(f"invalid token: the 'iss' claim must be {self.issuer!r}"
                                ) from error
        except jwt.InvalidTokenError as error:
            raise _unauthorized(f"invalid token: {error}") from error
        if not _has_role(claims, self.required_role):
            raise ApiError(403, "forbidden",
                           f"the token of {claims['sub']!r} lacks the {self.required_role!r} role")
        return Principal(subject=str(claims["sub"])), float(claims["exp"])


def _has_role(claims: dict[str, Any], role: str) -> bool:
    roles = claims.get("roles")
    return claims.get("role") == role or (isinstance(roles, list) and role in roles)


def mint_token(key: str | PrivateKey, subject: str, *, role: str | None = "admin",
               ttl: dt.timedelta = dt.timedelta(hours=12), now: dt.datetime | None = None,
               audience: str | None = DEFAULT_AUDIENCE, issuer: str | None = DEFAULT_ISSUER,
               kid: str | None = None) -> str:
    """A signed token for `subject`: HS256 with a secret (str), RS256 / ES256 with an RSA /
    EC P-256 private key (`load_private_key_file`), `kid` in the header if given.

    `role`, `audience` or `issuer` None leave that claim out (for the tests of refusals).
    """
    algorithm = HMAC_ALGORITHM if isinstance(key, str) else algorithm_of(key)
    issued = now or dt.datetime.now(dt.UTC)
    claims: dict[str, Any] = {"sub": subject, "iat": issued, "exp": issued + ttl}
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    if role is not None:
        claims["role"] = role
    return jwt.encode(claims, key, algorithm=algorithm,
                      headers={"kid": kid} if kid is not None else None)
