"""Auth (401/403), rate limits (429), parameter validation (422) and CORS, over real data."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from api.cli import main as api_cli
from api.settings import ApiSettings

if TYPE_CHECKING:
    from tests.api_fixtures import MakeClient, Materialized, Mint

pytest_plugins = ["tests.api_fixtures"]
API = "/api/marketing"
DATA_PATHS = [f"{API}/campaigns", f"{API}/segments", f"{API}/analytics/roi"]


def test_health_needs_no_token(api_client: TestClient) -> None:
    answer = api_client.get("/health")
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


@pytest.mark.parametrize("path", DATA_PATHS)
def test_no_token_is_401_json_with_a_challenge(api_client: TestClient, path: str) -> None:
    answer = api_client.get(path)
    assert answer.status_code == 401
    assert answer.json()["status"] == "error" and answer.json()["code"] == "unauthorized"
    assert answer.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("header", "message"), [
    ("Basic dXNlcjpwYXNz", "must be 'Bearer <token>'"),
    ("Bearer", "must be 'Bearer <token>'"),
    ("Bearer not-a-jwt", "invalid token"),
])
def test_malformed_authorization_is_401(api_client: TestClient, header: str, message: str) -> None:
    answer = api_client.get(f"{API}/campaigns", headers={"Authorization": header})
    assert answer.status_code == 401
    assert message in answer.json()["detail"]


def test_wrong_secret_expired_and_unsigned_tokens_are_401(api_client: TestClient, api_token: Mint,
                                                          api_jwt_secret: str) -> None:
    forged = api_token(secret="another-secret-of-enough-length-0123456789")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    expired = api_token(now=past, ttl=dt.timedelta(hours=1))
    unsigned = jwt.encode({"sub": "x", "role": "admin", "exp": time.time() + 600}, key=None,
                          algorithm="none")
    no_expiry = jwt.encode({"sub": "x", "role": "admin"}, key=api_jwt_secret, algorithm="HS256")
    for token, message in ((forged, "Signature verification failed"), (expired, "expired"),
                           (unsigned, "invalid token"), (no_expiry, "exp")):
        answer = api_client.get(f"{API}/campaigns", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, token
        assert message in answer.json()["detail"]


def test_a_valid_token_without_the_admin_role_is_403(api_client: TestClient,
                                                     api_token: Mint) -> None:
    for token in (api_token("analyst", role=None), api_token("analyst", role="viewer")):
        answer = api_client.get(f"{API}/campaigns", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 403
        assert answer.json()["code"] == "forbidden" and "admin" in answer.json()["detail"]


def test_roles_may_also_come_as_a_list(api_client: TestClient, api_jwt_secret: str) -> None:
    token = jwt.encode({"sub": "portal", "roles": ["viewer", "admin"],
                        "aud": "marketing-api", "iss": "marketing-portal",
                        "exp": time.time() + 600}, api_jwt_secret, algorithm="HS256")
    answer = api_client.get(f"{API}/campaigns", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200


def test_rate_limit_is_per_subject_with_retry_after(api_duckdb: Materialized,
                                                  make_api_client: MakeClient,
                                                  api_token: Mint) -> None:
    api_client = make_api_client(api_duckdb, rate_limit_per_minute=60, rate_limit_burst=3)
    first, second = ({"Authorization": f"Bearer {api_token(name)}"} for name in ("a", "b"))
    answers = [api_client.get(f"{API}/campaigns?limit=1", headers=first) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    limited = answers[-1]
    assert limited.json()["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) == 1  # one token per second refills
    assert api_client.get(f"{API}/campaigns?limit=1", headers=second).status_code == 200
    time.sleep(1.05)
    assert api_client.get(f"{API}/campaigns?limit=1", headers=first).status_code == 200


def test_unauthenticated_requests_do_not_spend_a_tokens_budget(
        api_duckdb: Materialized, make_api_client: MakeClient, api_token: Mint) -> None:
    api_client = make_api_client(api_duckdb, rate_limit_per_minute=60, rate_limit_burst=1)
    for _ in range(5):
        assert api_client.get(f"{API}/campaigns").status_code == 401
    headers = {"Authorization": f"Bearer {api_token()}"}
    assert api_client.get(f"{API}/campaigns?limit=1", headers=headers).status_code == 200


@pytest.mark.parametrize(("query", "parameter", "fragment"), [
    ("limit=201", "limit", "less than or equal to 200"),
    ("limit=0", "limit", "greater than or equal to 1"),
    ("limit=ten", "limit", "valid integer"),
    ("offset=-1", "offset", "greater than or equal to 0"),
    ("status=running", "status", "'active'"),
    ("type=bogo", "type", "'cashback'"),
    ("pattern=big_spender", "pattern", "'high_spender'"),
])
def test_bad_list_parameters_are_422_naming_the_parameter(
        api_client: TestClient, api_auth: dict, query: str, parameter: str,
        fragment: str) -> None:
    answer = api_client.get(f"{API}/campaigns?{query}", headers=api_auth)
    assert answer.status_code == 422
    body = answer.json()
    assert body["code"] == "invalid_parameter"
    assert body["errors"][0]["parameter"] == parameter
    assert fragment in body["detail"] and body["detail"].startswith(f"{parameter}: ")


@pytest.mark.parametrize("path", [
    f"{API}/campaigns/not-a-uuid", f"{API}/campaigns/123/metrics",
    f"{API}/campaigns/00000000-0000-4000-8000-000000000000/metrics?start_date=2026-13-01",
    f"{API}/campaigns/00000000-0000-4000-8000-000000000000/metrics"
    "?start_date=2026-02-10&end_date=2026-02-01",
    f"{API}/segments?as_of=last-week",
    f"{API}/analytics/roi?group_by=campaign_name",
])
def test_other_bad_parameters_are_422(api_client: TestClient, api_auth: dict,
                                      path: str) -> None:
    answer = api_client.get(path, headers=api_auth)
    assert answer.status_code == 422
    assert answer.json()["errors"] and answer.json()["detail"]


def test_the_page_size_cap_is_configurable(api_duckdb: Materialized,
                                           make_api_client: MakeClient, api_auth: dict) -> None:
    api_client = make_api_client(api_duckdb, max_page_size=5, default_page_size=2)
    assert api_client.get(f"{API}/campaigns?limit=6", headers=api_auth).status_code == 422
    page = api_client.get(f"{API}/campaigns", headers=api_auth).json()
    assert page["limit"] == 2 and len(page["campaigns"]) == 2


def test_cors_only_for_the_configured_portal(api_duckdb: Materialized,
                                             make_api_client: MakeClient, api_auth: dict) -> None:
    portal = "https://portal.example.com"
    api_client = make_api_client(api_duckdb, cors_origins=(portal,))
    allowed = api_client.get(f"{API}/campaigns?limit=1", headers={**api_auth, "Origin": portal})
    assert allowed.headers["access-control-allow-origin"] == portal
    other = api_client.get(f"{API}/campaigns?limit=1",
                           headers={**api_auth, "Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in other.headers
    preflight = api_client.options(f"{API}/campaigns", headers={
        "Origin": portal, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "Authorization"})
    assert preflight.status_code == 200
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    no_cors = make_api_client(api_duckdb)
    answer = no_cors.get(f"{API}/campaigns?limit=1", headers={**api_auth, "Origin": portal})
    assert "access-control-allow-origin" not in answer.headers


# --- aud / iss ---------------------------------------------------------------------------

def _get(client: TestClient, token: str, path: str = f"{API}/campaigns?limit=1") -> Any:
    return client.get(path, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize(("claims", "message"), [
    ({"audience": None}, "the 'aud' claim is missing"),
    ({"audience": "another-api"}, "the 'aud' claim must be 'marketing-api'"),
    ({"issuer": None}, "the 'iss' claim is missing"),
    ({"issuer": "someone-else"}, "the 'iss' claim must be 'marketing-portal'"),
])
def test_audience_and_issuer_are_required_and_checked(
        api_client: TestClient, api_token: Mint, claims: dict, message: str) -> None:
    answer = _get(api_client, api_token(**claims))
    assert answer.status_code == 401
    assert answer.json()["code"] == "unauthorized" and message in answer.json()["detail"]


def test_an_audience_list_including_the_api_is_accepted(api_client: TestClient,
                                                        api_jwt_secret: str) -> None:
    claims = {"sub": "portal", "role": "admin", "iss": "marketing-portal",
              "exp": time.time() + 600}
    listed = jwt.encode({**claims, "aud": ["reports", "marketing-api"]}, api_jwt_secret,
                        algorithm="HS256")
    assert _get(api_client, listed).status_code == 200
    others = jwt.encode({**claims, "aud": ["reports", "billing"]}, api_jwt_secret,
                        algorithm="HS256")
    assert _get(api_client, others).status_code == 401


def test_the_audience_and_issuer_are_configurable(api_duckdb: Materialized,
                                                  make_api_client: MakeClient,
                                                  api_token: Mint) -> None:
    client = make_api_client(api_duckdb, jwt_audience="portal-read-api", jwt_issuer="idp")
    assert _get(client, api_token(audience="portal-read-api", issuer="idp")).status_code == 200
    default_aud = _get(client, api_token(issuer="idp"))
    assert default_aud.status_code == 401 and "'portal-read-api'" in default_aud.json()["detail"]
    default_iss = _get(client, api_token(audience="portal-read-api"))
    assert default_iss.status_code == 401 and "'idp'" in default_iss.json()["detail"]


# --- leeway ------------------------------------------------------------------------------

def test_the_leeway_is_configurable(api_duckdb: Materialized, make_api_client: MakeClient,
                                    api_token: Mint) -> None:
    ttl = dt.timedelta(hours=1)
    expired_5s_ago = api_token(ttl=ttl, now=dt.datetime.now(dt.UTC) - ttl
                               - dt.timedelta(seconds=5))
    lenient = make_api_client(api_duckdb, jwt_leeway_seconds=30)
    assert _get(lenient, expired_5s_ago).status_code == 200
    strict = make_api_client(api_duckdb, jwt_leeway_seconds=0)
    answer = _get(strict, expired_5s_ago)
    assert answer.status_code == 401 and answer.json()["detail"] == "token expired"


def test_remembered_tokens_expire_with_the_same_leeway(api_duckdb: Materialized,
                                                       make_api_client: MakeClient,
                                                       api_token: Mint) -> None:
    """An accepted token is cached; the cache must not outlive the leeway either."""
    token = api_token(ttl=dt.timedelta(seconds=2))
    expires_at = jwt.decode(token, options={"verify_signature": False})["exp"]
    strict = make_api_client(api_duckdb, jwt_leeway_seconds=0)
    lenient = make_api_client(api_duckdb, jwt_leeway_seconds=30)
    assert _get(strict, token).status_code == 200 and _get(lenient, token).status_code == 200
    time.sleep(max(0.0, expires_at + 0.2 - time.time()))
    assert _get(strict, token).status_code == 401  # from the cache: expired, no leeway
    assert _get(lenient, token).status_code == 200  # still within the 30 s


# --- asymmetric keys ---------------------------------------------------------------------

@dataclass(frozen=True)
class SigningKeys:
    """Key pairs of a token issuer, and the files the API is configured with."""

    rsa: rsa.RSAPrivateKey
    ec: ec.EllipticCurvePrivateKey
    rsa_public_pem: Path  # the RSA public key, PEM
    jwks: Path  # both public keys: kid "rsa-1" (RS256) and "ec-1" (ES256)
    rsa_private_pem: Path
    ec_private_pem: Path


@pytest.fixture(scope="module")
def signing_keys(tmp_path_factory: pytest.TempPathFactory) -> SigningKeys:
    folder = tmp_path_factory.mktemp("jwt_keys")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    public_pem = folder / "rsa_public.pem"
    public_pem.write_bytes(rsa_key.public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    jwks = folder / "jwks.json"
    jwks.write_text(json.dumps({"keys": [
        {**RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True), "kid": "rsa-1",
         "use": "sig"},
        {**ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True), "kid": "ec-1",
         "alg": "ES256"},
    ]}))
    private = {}
    for name, key in (("rsa", rsa_key), ("ec", ec_key)):
        private[name] = folder / f"{name}_private.pem"
        private[name].write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                                                    NoEncryption()))
    return SigningKeys(rsa_key, ec_key, public_pem, jwks, private["rsa"], private["ec"])


def _hs256(claims: dict[str, Any], secret: bytes, **header: Any) -> str:
    """An HS256 token computed by hand: PyJWT itself refuses a PEM key as HMAC secret."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', **header}).encode())}."
                     f"{b64(json.dumps(claims).encode())}")
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def _claims(subject: str = "portal") -> dict[str, Any]:
    return {"sub": subject, "role": "admin", "aud": "marketing-api", "iss": "marketing-portal",
            "exp": int(time.time()) + 600}


def test_the_hand_made_hs256_token_is_a_valid_one(api_jwt_secret: str) -> None:
    """So that the key-confusion test below refuses a correctly signed HS256 token."""
    token = _hs256(_claims(), api_jwt_secret.encode())
    assert jwt.decode(token, api_jwt_secret, algorithms=["HS256"], audience="marketing-api",
                      issuer="marketing-portal")["sub"] == "portal"


def test_rs256_with_a_public_key_file(api_duckdb: Materialized, make_api_client: MakeClient,
                                      api_token: Mint, api_jwt_secret: str,
                                      signing_keys: SigningKeys) -> None:
    client = make_api_client(api_duckdb, jwt_secret=None,
                             jwt_public_key_file=signing_keys.rsa_public_pem)
    assert _get(client, api_token(private_key=signing_keys.rsa)).status_code == 200
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = {
        # the classic key confusion: HMAC "signed" with the public key the API verifies with
        "key confusion": _hs256(_claims(), signing_keys.rsa_public_pem.read_bytes()),
        "an HS256 token": api_token(secret=api_jwt_secret),
        "alg none": jwt.encode(_claims(), key=None, algorithm="none"),
        "another RSA key": api_token(private_key=other_key),
        "an ES256 token": api_token(private_key=signing_keys.ec),
    }
    for case, token in refused.items():
        answer = _get(client, token)
        assert answer.status_code == 401, case
        assert "alg" in answer.json()["detail"] or "Signature" in answer.json()["detail"], case


def test_es256_and_rs256_from_a_jwks_chosen_by_kid(api_duckdb: Materialized,
                                                   make_api_client: MakeClient,
                                                   api_token: Mint,
                                                   signing_keys: SigningKeys) -> None:
    client = make_api_client(api_duckdb, jwt_secret=None, jwt_jwks_file=signing_keys.jwks)
    assert _get(client, api_token(private_key=signing_keys.ec, kid="ec-1")).status_code == 200
    assert _get(client, api_token(private_key=signing_keys.rsa, kid="rsa-1")).status_code == 200
    unknown = _get(client, api_token(private_key=signing_keys.ec, kid="ec-2"))
    assert unknown.status_code == 401 and "unknown key id (kid) 'ec-2'" in unknown.json()["detail"]
    no_kid = _get(client, api_token(private_key=signing_keys.ec))
    assert no_kid.status_code == 401 and "kid" in no_kid.json()["detail"]
    rsa_pem = signing_keys.rsa_public_pem.read_bytes()
    for case, token in {
        "key confusion": _hs256(_claims(), rsa_pem, kid="rsa-1"),
        "ES256 under the RSA kid": api_token(private_key=signing_keys.ec, kid="rsa-1"),
        "alg none": jwt.encode(_claims(), key=None, algorithm="none", headers={"kid": "ec-1"}),
    }.items():
        assert _get(client, token).status_code == 401, case


def test_exactly_one_verification_key_and_only_usable_key_files(
        signing_keys: SigningKeys, api_jwt_secret: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no token verification key"):
        ApiSettings()
    with pytest.raises(ValueError, match="MARKETING_API_JWT_SECRET and "
                                         "MARKETING_API_JWT_PUBLIC_KEY_FILE are both set"):
        ApiSettings(jwt_secret=api_jwt_secret, jwt_public_key_file=signing_keys.rsa_public_pem)
    with pytest.raises(ValueError, match="at least 32"):
        ApiSettings(jwt_secret="short")
    with pytest.raises(ValueError, match="holds a private key"):
        ApiSettings(jwt_public_key_file=signing_keys.rsa_private_pem)
    small = tmp_path / "small.pem"
    small.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=1024)
                      .public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(ValueError, match="1024 bits is too short"):
        ApiSettings(jwt_public_key_file=small)
    p384 = tmp_path / "p384.pem"
    p384.write_bytes(ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(ValueError, match="ES256 needs P-256"):
        ApiSettings(jwt_public_key_file=p384)
    jwks = json.loads(signing_keys.jwks.read_text())
    for change, message in (
            (lambda k: k.pop("kid"), "has no 'kid'"),
            (lambda k: k.update(kty="oct", k="c2VjcmV0"), "only RSA"),
            (lambda k: k.update(alg="RS384"), "declares alg 'RS384'")):
        broken = json.loads(json.dumps(jwks))
        change(broken["keys"][0])
        path = tmp_path / "broken.json"
        path.write_text(json.dumps(broken))
        with pytest.raises(ValueError, match=message):
            ApiSettings(jwt_jwks_file=path)
    # a key with its private half in the JWKS
    with_private = {"keys": [{**RSAAlgorithm.to_jwk(signing_keys.rsa, as_dict=True),
                              "kid": "rsa-1"}]}
    path = tmp_path / "private.json"
    path.write_text(json.dumps(with_private))
    with pytest.raises(ValueError, match="private key material"):
        ApiSettings(jwt_jwks_file=path)


# --- the token command -------------------------------------------------------------------

@pytest.fixture
def api_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No MARKETING_API_* variable from the outside; the test sets its own."""
    import os

    for name in [name for name in os.environ if name.startswith("MARKETING_API_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def test_the_token_command_puts_the_configured_audience_and_issuer(
        api_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        api_client: TestClient, api_jwt_secret: str) -> None:
    api_env.setenv("MARKETING_API_JWT_SECRET", api_jwt_secret)
    assert api_cli(["token", "--subject", "ops"]) == 0
    token = capsys.readouterr().out.strip()
    assert _get(api_client, token).status_code == 200  # the app has the default aud/iss
    api_env.setenv("MARKETING_API_JWT_AUDIENCE", "portal-read-api")
    api_env.setenv("MARKETING_API_JWT_ISSUER", "idp")
    assert api_cli(["token"]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), options={"verify_signature": False})
    assert (claims["aud"], claims["iss"], claims["sub"]) == ("portal-read-api", "idp", "portal")


def test_the_token_command_mints_rs256_and_es256_with_a_private_key(
        api_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        api_duckdb: Materialized, make_api_client: MakeClient,
        signing_keys: SigningKeys) -> None:
    api_env.setenv("MARKETING_API_JWT_JWKS_FILE", str(signing_keys.jwks))
    client = make_api_client(api_duckdb, jwt_secret=None, jwt_jwks_file=signing_keys.jwks)
    for private, kid, algorithm in ((signing_keys.ec_private_pem, "ec-1", "ES256"),
                                    (signing_keys.rsa_private_pem, "rsa-1", "RS256")):
        assert api_cli(["token", "--private-key", str(private), "--kid", kid]) == 0
        token = capsys.readouterr().out.strip()
        assert jwt.get_unverified_header(token)["alg"] == algorithm
        assert _get(client, token).status_code == 200
    # checked before printing: a kid the API does not know, no private key at all
    assert api_cli(["token", "--private-key", str(signing_keys.ec_private_pem),
                    "--kid", "rsa-1"]) == 2
    assert "would refuse this token" in capsys.readouterr().err
    assert api_cli(["token"]) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and "cannot mint tokens" in printed.err
    assert "--private-key" in printed.err


# --- per-subject rate limits -------------------------------------------------------------

def test_tokens_of_one_subject_share_one_budget(api_duckdb: Materialized,
                                                make_api_client: MakeClient,
                                                api_token: Mint) -> None:
    # 6 per minute: nothing refills during the test.
    client = make_api_client(api_duckdb, rate_limit_per_minute=6, rate_limit_burst=3)
    now = dt.datetime.now(dt.UTC)
    # Three distinct tokens of one subject (another iat each), then one more.
    tokens = [api_token("minter", now=now - dt.timedelta(seconds=s)) for s in range(4)]
    assert len(set(tokens)) == 4
    assert [_get(client, token).status_code for token in tokens] == [200, 200, 200, 429]
    limited = _get(client, tokens[0])
    assert limited.status_code == 429 and "'minter'" in limited.json()["detail"]
    assert _get(client, api_token("someone-else")).status_code == 200


def test_a_subject_can_have_its_own_limit(api_duckdb: Materialized,
                                          make_api_client: MakeClient,
                                          api_token: Mint) -> None:
    client = make_api_client(api_duckdb, rate_limit_per_minute=6, rate_limit_burst=2,
                             rate_limits="portal-backend=6000/8, reports=3/1")
    backend, other, reports = (api_token(name) for name in ("portal-backend", "other", "reports"))
    assert [_get(client, other).status_code for _ in range(3)] == [200, 200, 429]
    assert [_get(client, backend).status_code for _ in range(8)] == [200] * 8
    assert [_get(client, reports).status_code for _ in range(2)] == [200, 429]
    limited = _get(client, reports).json()["detail"]
    assert "rate limit of 3 requests per minute" in limited and "'reports'" in limited
    # With the default limit off, only the listed subjects are limited.
    unlimited = make_api_client(api_duckdb, rate_limit_per_minute=0, rate_limits="reports=3/1")
    assert [_get(unlimited, other).status_code for _ in range(5)] == [200] * 5
    assert [_get(unlimited, reports).status_code for _ in range(2)] == [200, 429]


@pytest.mark.parametrize(("value", "message"), [
    ("portal-backend=6000", "expected SUBJECT=PER_MINUTE/BURST"),
    ("portal-backend:6000/100", "expected SUBJECT=PER_MINUTE/BURST"),
    ("=6000/100", "expected SUBJECT=PER_MINUTE/BURST"),
    ("portal-backend=fast/100", "PER_MINUTE must be a number"),
    ("portal-backend=6000/1.5", "BURST a whole number"),
    ("portal-backend=0/100", "above 0"),
    ("portal-backend=6000/0", "at least 1"),
    ("a=1/1,a=2/2", "more than once for a"),
])
def test_bad_rate_limit_overrides_are_refused(api_jwt_secret: str, value: str,
                                              message: str) -> None:
    with pytest.raises(ValueError, match="MARKETING_API_RATE_LIMITS") as refused:
        ApiSettings.from_env({"MARKETING_API_JWT_SECRET": api_jwt_secret,
                              "MARKETING_API_RATE_LIMITS": value})
    assert message in str(refused.value)


# --- environment -------------------------------------------------------------------------

def test_an_unknown_marketing_api_variable_is_refused(api_jwt_secret: str) -> None:
    env = {"MARKETING_API_JWT_SECRET": api_jwt_secret, "MARKETING_API_JWT_AUDIENCES": "x",
           "MARKETING_WAREHOUSE_URL": "duckdb:///w.duckdb"}  # not ours: not checked here
    with pytest.raises(ValueError, match="unknown variable MARKETING_API_JWT_AUDIENCES "
                                         r"\(did you mean MARKETING_API_JWT_AUDIENCE"):
        ApiSettings.from_env(env)
    with pytest.raises(ValueError, match="unknown variable MARKETING_API_RATE_LIMIT "):
        ApiSettings.from_env({"MARKETING_API_JWT_SECRET": api_jwt_secret,
                              "MARKETING_API_RATE_LIMIT": "6000/100"})
    settings = ApiSettings.from_env({
        "MARKETING_API_JWT_SECRET": api_jwt_secret, "MARKETING_API_JWT_AUDIENCE": "a",
        "MARKETING_API_JWT_ISSUER": "i", "MARKETING_API_JWT_LEEWAY_SECONDS": "5",
        "MARKETING_API_RATE_LIMITS": "portal-backend=6000/100"})
    assert (settings.jwt_audience, settings.jwt_issuer, settings.jwt_leeway_seconds) == (
        "a", "i", 5)
    assert [(limit.subject, limit.per_minute, limit.burst) for limit in settings.rate_limits
            ] == [("portal-backend", 6000, 100)]


def test_settings_errors_name_the_variable_and_never_echo_the_secret() -> None:
    secret = "too-short-but-secret"
    with pytest.raises(ValueError) as refused:
        ApiSettings.from_env({"MARKETING_API_JWT_SECRET": secret,
                              "MARKETING_API_JWT_LEEWAY_SECONDS": "-1"})
    message = str(refused.value)
    assert "MARKETING_API_JWT_SECRET: String should have at least 32 characters" in message
    assert "MARKETING_API_JWT_LEEWAY_SECONDS" in message and secret not in message
