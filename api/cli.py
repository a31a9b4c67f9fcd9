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

DEFAULT_PORT = 8000


def _use_demo_warehouse_if_unconfigured() -> None:
    """With no database configured, serve the demo's warehouse (as `marketing ui` does)."""
    if os.environ.get("MARKETING_API_DATABASE_URL") or os.environ.get("MARKETING_WAREHOUSE_URL"):
        return
    from pipelines.demo import load_demo_environment

    os.environ["MARKETING_WAREHOUSE_URL"] = load_demo_environment()["MARKETING_WAREHOUSE_URL"]


def _ephemeral_secret_and_token(port: int) -> None:
    """No secret configured: make one for this process (and its workers) and print an admin
    token, so the demo works with one command. Production sets MARKETING_API_JWT_SECRET."""
    from api.auth import mint_token

    secret = secrets.token_urlsafe(48)
    os.environ["MARKETING_API_JWT_SECRET"] = secret
    token = mint_token(secret, "demo-admin")
    print("MARKETING_API_JWT_SECRET is not set: generated a secret for this run only.\n"
          "Admin token (valid 12 h, dies with this process):\n\n"
          f"  export TOKEN={token}\n"
          f"  curl -H \"Authorization: Bearer $TOKEN\" "
          f"'http://127.0.0.1:{port}/api/marketing/campaigns?limit=5'\n", flush=True)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.settings import ApiSettings

    _use_demo_warehouse_if_unconfigured()
    if not os.environ.get("MARKETING_API_JWT_SECRET"):
        _ephemeral_secret_and_token(args.port)
    settings = ApiSettings.from_env()  # fail here, with the message, not in every worker
    print(f"read API on http://{args.host}:{args.port} (docs: /docs) over "
          f"{settings.display_url} schema {settings.schema_name}, {args.workers} worker(s)",
          flush=True)
    uvicorn.run("api.app:app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, access_log=not args.no_access_log,
                log_level=args.log_level, proxy_headers=False)
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
    from api.auth import mint_token

    secret = os.environ.get("MARKETING_API_JWT_SECRET")
    if not secret:
        print("MARKETING_API_JWT_SECRET is not set", file=sys.stderr)
        return 2
    print(mint_token(secret, args.subject, role=args.role,
                     ttl=dt.timedelta(hours=args.hours)))
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
