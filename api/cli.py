"""Commands of the read API: `api` (serve), `api-role` (read-only role), `api-token`.

`pipelines/cli.py` adds them to the `marketing` command with `add_api_commands`; they also
run on their own: `python -m api.cli serve|role|token ...`. Imports of the heavy parts
(uvicorn, the app, psycopg) happen inside the handlers so `marketing --help` stays fast.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from api.settings import ApiSettings

DEFAULT_PORT = 8000


def _use_demo_warehouse_if_unconfigured() -> None:
    """With no database configured, serve the demo's warehouse (as `marketing ui` does)."""
    if os.environ.get("MARKETING_API_DATABASE_URL") or os.environ.get("MARKETING_WAREHOUSE_URL"):
        return
    from resources.demo_files import load_demo_environment

    os.environ["MARKETING_WAREHOUSE_URL"] = load_demo_environment()["MARKETING_WAREHOUSE_URL"]


def _print_demo_token(settings: ApiSettings, port: int) -> None:
    """With the secret `cmd_serve` generated, an admin token for this run, so the demo works
    with one command. Production configures a key (MARKETING_API_JWT_SECRET or a public
    key / JWKS file) instead."""
    from api.auth import mint_token

    assert settings.jwt_secret is not None
    token = mint_token(settings.jwt_secret, "demo-admin", audience=settings.jwt_audience,
                       issuer=settings.jwt_issuer)
    print("MARKETING_API_JWT_SECRET is not set: generated a secret for this run only.\n"
          "Admin token (valid 12 h, dies with this process):\n\n"
          f"  export TOKEN={token}\n"
          f"  curl -H \"Authorization: Bearer $TOKEN\" "
          f"'http://127.0.0.1:{port}/api/marketing/campaigns?limit=5'\n", flush=True)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.settings import KEY_VARIABLES, ApiSettings

    _use_demo_warehouse_if_unconfigured()
    # No key configured: a secret for this process (its workers inherit the environment).
    generated = not any(os.environ.get(name) for name in KEY_VARIABLES)
    if generated:
        os.environ["MARKETING_API_JWT_SECRET"] = secrets.token_urlsafe(48)
    settings = ApiSettings.from_env()  # fail here, with the message, not in every worker
    if generated:
        _print_demo_token(settings, args.port)
    print(f"read API on http://{args.host}:{args.port} (docs: /docs) over "
          f"{settings.display_url} schema {settings.schema_name}, {args.workers} worker(s)",
          flush=True)
    uvicorn.run("api.app:app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, access_log=not args.no_access_log,
                log_level=args.log_level, proxy_headers=False,
                server_header=False)  # no `server: uvicorn` banner
    return 0


def cmd_role(args: argparse.Namespace) -> int:
    from api.role import apply_readonly_role, role_from_url
    from resources.connection_url import redact_url

    owner_url = args.owner_url or os.environ.get("MARKETING_WAREHOUSE_URL")
    api_url = os.environ.get("MARKETING_API_DATABASE_URL")
    if not owner_url or not (api_url or args.role):
        print("set MARKETING_WAREHOUSE_URL (the owner, who grants) and "
              "MARKETING_API_DATABASE_URL (the API's user and password)", file=sys.stderr)
        return 2
    role, password = role_from_url(api_url) if api_url else (args.role, None)
    role = args.role or role
    schema = os.environ.get("MARKETING_WAREHOUSE_SCHEMA") or "marketing"
    report = apply_readonly_role(owner_url, schema, role, password)
    print(f"{redact_url(owner_url)}: role {report.role!r} can SELECT {len(report.granted)} "
          f"tables of schema {report.schema!r} and nothing else "
          f"({'password set' if password else 'no password set'}); sessions read-only")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Mint with the HS256 secret, or with `--private-key` (RS256 / ES256); the token carries
    the configured aud/iss and is checked against the configured key before it is printed."""
    from api.auth import PrivateKey, TokenVerifier, load_private_key_file, mint_token
    from api.errors import ApiError
    from api.settings import ApiSettings

    try:
        settings = ApiSettings.from_env()
        private_key = load_private_key_file(args.private_key) if args.private_key else None
    except ValueError as error:
        print(f"cannot mint a token: {error}", file=sys.stderr)
        return 2
    key: str | PrivateKey
    if private_key is not None:
        key = private_key
    elif settings.jwt_secret is not None:
        key = settings.jwt_secret
    else:
        print(f"the API verifies tokens with a public key "
              f"({settings.verification_keys().description}); it holds no private key, so it "
              "cannot mint tokens. Mint them where the private key is (the portal's token "
              "issuer), or pass it: marketing api-token --private-key private.pem [--kid KID]",
              file=sys.stderr)
        return 2
    token = mint_token(key, args.subject, role=args.role, ttl=dt.timedelta(hours=args.hours),
                       audience=settings.jwt_audience, issuer=settings.jwt_issuer,
                       kid=args.kid)
    verifier = TokenVerifier.from_settings(settings)
    try:
        verifier.verify(f"Bearer {token}")
    except ApiError as error:
        if error.status_code == 401:  # a 403 (a token without the role) is what was asked
            print(f"the API configured here ({verifier.keys.description}) would refuse this "
                  f"token: {error.detail}", file=sys.stderr)
            return 2
    print(token)
    return 0


def add_api_commands(commands: argparse._SubParsersAction) -> None:
    """Add `api`, `api-role` and `api-token` to a subcommand parser."""
    serve = commands.add_parser("api", help="serve the read-only HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--workers", type=int, default=1,
                       help="uvicorn worker processes (rate limits and caches are per worker)")
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--no-access-log", action="store_true")
    serve.set_defaults(handler=cmd_serve)

    role = commands.add_parser(
        "api-role", help="create/update the API's read-only PostgreSQL role (idempotent)")
    role.add_argument("--owner-url", help="default: MARKETING_WAREHOUSE_URL")
    role.add_argument("--role", help="default: the user of MARKETING_API_DATABASE_URL")
    role.set_defaults(handler=cmd_role)

    token = commands.add_parser("api-token", help="print a signed API token")
    token.add_argument("--subject", default="portal", help="who the token is for (sub)")
    token.add_argument("--role", default="admin")
    token.add_argument("--hours", type=float, default=12)
    token.add_argument("--private-key", type=Path, metavar="FILE",
                       help="PEM RSA / EC P-256 private key: mint RS256 / ES256 (default: "
                            "HS256 with MARKETING_API_JWT_SECRET)")
    token.add_argument("--kid", help="key id for the token header (needed with a JWKS)")
    token.set_defaults(handler=cmd_token)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m api.cli serve|role|token` (same options as the `marketing` commands)."""
    parser = argparse.ArgumentParser(prog="python -m api.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    add_api_commands(commands)
    aliases = {"serve": "api", "role": "api-role", "token": "api-token"}
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in aliases:
        argv[0] = aliases[argv[0]]
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
