"""The OpenAPI document is the contract: every answer fits it, no input gets a 5xx.

Three layers: schemathesis generates requests from the schema (valid and invalid ones) and
checks each answer's status, content type and body against the document; a live tour
requests every operation with real ids and validates each answer against its schema; and
the examples in the document are themselves checked against their schemas. The strict
parameter rules (days, unknown and repeated parameters) and the headers are tested here too.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

import httpx
import jsonschema
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.settings import ApiSettings

if TYPE_CHECKING:
    from tests.api_fixtures import MakeClient, Materialized

pytest_plugins = ["tests.api_fixtures"]
API = "/api/marketing"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="session")
def api_openapi(api_client: TestClient) -> dict[str, Any]:
    return api_client.get("/openapi.json").json()


def _document() -> dict[str, Any]:
    """The document does not depend on the data: an app over no warehouse builds it."""
    settings = ApiSettings(jwt_secret="s" * 40, database_url="duckdb:///nowhere.duckdb")
    return create_app(settings).openapi()


contract = schemathesis.openapi.from_dict(_document())


@contract.parametrize()
@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_generated_requests_get_documented_answers_and_never_a_5xx(
        case: Any, api_client: TestClient, api_auth: dict[str, str]) -> None:
    """Positive and negative cases from the schema, with a valid token, against the app
    over real data (each backend): every answer must be documented for its operation."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=api_auth)
    answer = api_client.request(kwargs.pop("method"), kwargs.pop("url"),
                                params=kwargs.pop("params", None),
                                headers=kwargs.pop("headers", None))
    case.validate_response(answer, checks=CHECKS)


# Every operation that takes days, with the names of its day parameters.
DAY_PARAMETERS = {
    f"{API}/analytics/roi": ("start_date", "end_date"),
    f"{API}/analytics/engagement": ("start_date", "end_date"),
    f"{API}/analytics/conversion": ("start_date", "end_date"),
    f"{API}/segments": ("as_of",),
    f"{API}/segments/new_shopper": ("as_of",),
    f"{API}/campaigns/00000000-0000-0000-0000-000000000000/metrics": ("start_date",
                                                                      "end_date"),
    f"{API}/campaigns/00000000-0000-0000-0000-000000000000/recommendations": ("as_of",),
}
# Whole calendar (its ends are where date arithmetic overflows), and things that are not days.
_EDGE = dt.timedelta(days=60)
DAYS = st.one_of(st.dates(), st.dates(max_value=dt.date.min + _EDGE),
                 st.dates(min_value=dt.date.max - _EDGE))
NOT_DAYS = st.one_of(st.integers().map(str), st.text(max_size=12),
                     st.datetimes().map(lambda moment: moment.isoformat()))
DAY_VALUES = st.one_of(DAYS.map(lambda day: day.isoformat()), NOT_DAYS)


@pytest.mark.parametrize("path", sorted(DAY_PARAMETERS))
@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(first=st.none() | DAY_VALUES, last=st.none() | DAY_VALUES)
# The calendar's ends, alone: `end_date=0001-01-01` without a start was a 500.
@example(first=None, last="0001-01-01")
@example(first=None, last="9999-12-31")
@example(first="0001-01-01", last="0001-01-01")
def test_no_day_value_gets_a_server_error(api_client: TestClient, api_auth: dict[str, str],
                                          path: str, first: str | None, last: str | None
                                          ) -> None:
    """Property: any value of any day parameter is answered 200, 404 or 422, never 5xx.
    `first` goes to the range's start (or is unused), `last` to its end or the one day."""
    names = DAY_PARAMETERS[path]
    values = (first, last) if len(names) == 2 else (last,)
    params = {name: value for name, value in zip(names, values, strict=True)
              if value is not None}
    answer = api_client.get(path, params=params, headers=api_auth)
    assert answer.status_code in (200, 404, 422), (params, answer.text)


def _response_schema(spec: dict[str, Any], path: str, method: str, status: int
                     ) -> dict[str, Any]:
    operation = spec["paths"][path][method]
    documented = operation["responses"]
    assert str(status) in documented, f"{method.upper()} {path} answered {status}, " \
                                      f"documented: {sorted(documented)}"
    content = documented[str(status)]["content"]["application/json"]
    # Refs are `#/components/...`: validate inside a document that carries them.
    return {**content["schema"], "components": spec["components"]}


def _validate(spec: dict[str, Any], path: str, method: str, answer: httpx.Response) -> None:
    schema = _response_schema(spec, path, method, answer.status_code)
    jsonschema.Draft202012Validator(schema).validate(answer.json())


def _tour(client: TestClient, auth: dict[str, str]
          ) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
    """(template, method) -> (concrete path, params) of a request that should succeed,
    with ids the API itself lists (so the tour needs no second connection to the data)."""
    campaign = client.get(f"{API}/campaigns", headers=auth).json()["campaigns"][0]
    campaign = campaign["campaign_id"]
    segment = client.get(f"{API}/segments", headers=auth).json()["segments"][0]
    pattern = segment["behavior_pattern"]
    one = f"{API}/campaigns/{campaign}"
    return {
        ("/health", "get"): ("/health", {}),
        ("/ready", "get"): ("/ready", {}),
        (f"{API}/campaigns", "get"): (f"{API}/campaigns", {"limit": 5}),
        (f"{API}/campaigns/{{campaign_id}}", "get"): (one, {}),
        (f"{API}/campaigns/{{campaign_id}}/metrics", "get"): (f"{one}/metrics", {}),
        (f"{API}/campaigns/{{campaign_id}}/recommendations", "get"):
            (f"{one}/recommendations", {}),
        (f"{API}/campaigns/{{campaign_id}}/copy", "get"): (f"{one}/copy", {}),
        (f"{API}/segments", "get"): (f"{API}/segments", {}),
        (f"{API}/segments/{{pattern}}", "get"): (f"{API}/segments/{pattern}", {}),
        (f"{API}/analytics/roi", "get"): (f"{API}/analytics/roi", {}),
        (f"{API}/analytics/engagement", "get"): (f"{API}/analytics/engagement", {}),
        (f"{API}/analytics/conversion", "get"): (f"{API}/analytics/conversion", {}),
        (f"{API}/customer-value", "get"): (f"{API}/customer-value", {}),
        (f"{API}/segments/{{pattern}}/value", "get"): (f"{API}/segments/{pattern}/value", {}),
    }


def test_every_operation_answers_what_its_schema_says(
        api_client: TestClient, api_auth: dict[str, str], api_openapi: dict[str, Any]
        ) -> None:
    """A real 200 from every GET operation, and a real error of each kind it documents
    that a request can provoke (404, 422, 401), each validated against the document."""
    tour = _tour(api_client, api_auth)
    operations = {(path, method) for path, ops in api_openapi["paths"].items()
                  for method in ops if method == "get"}
    assert operations == set(tour), "an operation without a live check (or a stale one)"
    for (template, method), (path, params) in sorted(tour.items()):
        answer = api_client.get(path, params=params, headers=api_auth)
        assert answer.status_code == 200, (path, answer.text)
        _validate(api_openapi, template, method, answer)
        documented = api_openapi["paths"][template][method]["responses"]
        wrong = api_client.get(path, params={**params, "unknown_parameter": "1"},
                               headers=api_auth)
        assert wrong.status_code == 422
        _validate(api_openapi, template, method, wrong)
        if "401" in documented:
            anonymous = api_client.get(path, params=params)
            assert anonymous.status_code == 401
            _validate(api_openapi, template, method, anonymous)
    missing = api_client.get(f"{API}/campaigns/00000000-0000-0000-0000-000000000000",
                             headers=api_auth)
    assert missing.status_code == 404
    _validate(api_openapi, f"{API}/campaigns/{{campaign_id}}", "get", missing)
    unknown = api_client.get(f"{API}/segments/not_a_pattern", headers=api_auth)
    assert unknown.status_code == 404
    _validate(api_openapi, f"{API}/segments/{{pattern}}", "get", unknown)


def test_every_answer_of_every_operation_has_a_fitting_example(
        api_openapi: dict[str, Any]) -> None:
    checked = 0
    for path, operations in api_openapi["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if method == "head":
                    continue  # no body
                content = response.get("content", {}).get("application/json")
                assert content and "example" in content, f"{method} {path} {status}"
                schema = {**content["schema"], "components": api_openapi["components"]}
                jsonschema.Draft202012Validator(schema).validate(content["example"])
                checked += 1
    assert checked >= 12 * 5  # 12 GET operations, at least 5 statuses each


def test_closed_sets_are_enums_in_the_schema(api_openapi: dict[str, Any]) -> None:
    schemas = api_openapi["components"]["schemas"]
    summary = schemas["CampaignSummary"]["properties"]
    for field, enum in (("status", "CampaignStatus"), ("campaign_type", "CampaignType"),
                        ("target_pattern", "BehaviorPattern")):
        assert summary[field] == {"$ref": f"#/components/schemas/{enum}"}
        assert len(schemas[enum]["enum"]) >= 5
    assert "enum" in schemas["RecommendationRule"]
    segment = api_openapi["paths"][f"{API}/segments/{{pattern}}"]["get"]["parameters"]
    pattern = next(p for p in segment if p["name"] == "pattern")
    assert pattern["schema"]["enum"] == schemas["BehaviorPattern"]["enum"]


@pytest.mark.parametrize("path", [f"{API}/analytics/roi", f"{API}/analytics/engagement",
                                  f"{API}/analytics/conversion"])
@pytest.mark.parametrize("value", ["0001-01-01", "0001-01-29", "0", "1700000000",
                                   "2026-02-30", "2026-12-01T00:00:00", "9999-12-31",
                                   "26-12-01", " 2026-12-01"])
def test_days_are_strict_iso_within_range(api_client: TestClient, api_auth: dict[str, str],
                                          path: str, value: str) -> None:
    """`end_date=0001-01-01` used to be a 500 (OverflowError); `end_date=0` was 1970."""
    answer = api_client.get(path, params={"end_date": value}, headers=api_auth)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["parameter"] == "end_date"


def test_unknown_parameters_are_rejected_with_a_suggestion(api_client: TestClient,
                                                           api_auth: dict[str, str]) -> None:
    """`?statuss=active` used to return every campaign."""
    answer = api_client.get(f"{API}/campaigns", params={"statuss": "active"},
                            headers=api_auth)
    assert answer.status_code == 422
    error = answer.json()["errors"][0]
    assert error["parameter"] == "statuss" and "did you mean 'status'" in error["message"]


def test_repeated_parameters_are_rejected(api_client: TestClient,
                                          api_auth: dict[str, str]) -> None:
    """`?limit=1&limit=200` used to take the last value."""
    answer = api_client.get(f"{API}/campaigns?limit=1&limit=200", headers=api_auth)
    assert answer.status_code == 422
    assert answer.json()["errors"] == [{"parameter": "limit",
                                        "message": "given 2 times; give it once"}]


def test_an_anonymous_caller_learns_no_parameter_names(api_client: TestClient) -> None:
    answer = api_client.get(f"{API}/campaigns", params={"statuss": "active"})
    assert answer.status_code == 401


def test_json_answers_are_not_cached_sniffed_or_framed(api_client: TestClient,
                                                       api_auth: dict[str, str]) -> None:
    for path, headers in ((f"{API}/campaigns?limit=1", api_auth), (f"{API}/campaigns", {}),
                          ("/health", {}), ("/ready", {})):
        answer = api_client.get(path, headers=headers)
        assert answer.headers["cache-control"] == "no-store", path
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], path


def test_swagger_ui_is_served_from_the_api_itself(api_client: TestClient) -> None:
    """It loaded from a CDN and rendered blank offline."""
    page = api_client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(asset.startswith("/docs/static/") for asset in assets), assets
    for asset in assets:
        loaded = api_client.get(asset)
        assert loaded.status_code == 200 and len(loaded.content) > 1_000, asset
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_a_refused_cors_preflight_is_json(api_duckdb: Materialized,
                                         make_api_client: MakeClient) -> None:
    """Starlette answers a refused preflight in text/plain; the portal parses JSON."""
    client = make_api_client(api_duckdb, cors_origins=("https://portal.example",))
    answer = client.options(f"{API}/campaigns", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["code"] == "cors_rejected" and "origin" in answer.json()["detail"]
    allowed = client.options(f"{API}/campaigns", headers={
        "Origin": "https://portal.example", "Access-Control-Request-Method": "GET"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://portal.example"


@pytest.mark.parametrize(("method", "path"), [
    ("POST", f"{API}/campaigns"),
    ("PUT", f"{API}/campaigns/00000000-0000-0000-0000-000000000000"),
    ("DELETE", f"{API}/campaigns/00000000-0000-0000-0000-000000000000"),
])
def test_the_original_write_endpoints_say_where_they_went(
        api_client: TestClient, api_auth: dict[str, str], method: str, path: str) -> None:
    answer = api_client.request(method, path, headers=api_auth)
    assert answer.status_code == 405
    body = answer.json()
    assert body["code"] == "method_not_allowed" and "docs/api.md" in body["detail"]


def test_the_rule_enum_names_every_recommendation_rule() -> None:
    from transforms.campaign_config import RECOMMENDATION_RULES, RecommendationThresholds
    from transforms.recommendations import _rules

    assert tuple(rule[0] for rule in _rules(RecommendationThresholds())) == RECOMMENDATION_RULES
