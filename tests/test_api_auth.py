"""Auth (401/403), rate limits (429), parameter validation (422) and CORS, over real data."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING

import jwt
import pytest
from fastapi.testclient import TestClient

if TYPE_CHECKING:
    from tests.api_fixtures import MakeClient, Materialized, Mint

pytest_plugins = ["tests.api_fixtures"]
API = "/api/marketing"
DATA_PATHS = [f"{API}/campaigns", f"{API}/segments", f"{API}/analytics/roi", "/ready"]


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
                        "exp": time.time() + 600}, api_jwt_secret, algorithm="HS256")
    answer = api_client.get(f"{API}/campaigns", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200


def test_rate_limit_is_per_token_with_retry_after(api_duckdb: Materialized,
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
