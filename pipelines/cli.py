"""The `marketing` command: demo, UI, migrations and data generation."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from resources.settings import PipelineSettings


def _cmd_demo(args: argparse.Namespace) -> int:
    from pipelines.demo import DemoOptions, run_demo

    run_demo(DemoOptions(users=args.users, days=args.days, analyze_days=args.analyze_days,
                         seed=args.seed))
    return 0


def _dg_command() -> list[str]:
    """`dg` of this interpreter's environment. `dg dev` reads the project from
    pyproject.toml's [tool.dg] (the code location `pipelines.definitions`), so it runs from
    the repository root, like `make ui`; `dagster dev -w workspace.yaml` is deprecated."""
    script = Path(sys.executable).with_name("dg")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from dagster_dg_cli.cli import main; "
            "sys.argv[0] = 'dg'; sys.exit(main())"]


def _cmd_ui(args: argparse.Namespace) -> int:
    from pipelines.supervisor import run_process_group, stop_timeout_from_env
    from resources.demo_files import load_demo_environment

    environment = {**os.environ}
    if not os.environ.get("MARKETING_WAREHOUSE_URL"):
        environment.update(load_demo_environment())
    print(f"Dagster UI on http://{args.host}:{args.port} (DAGSTER_HOME="
          f"{environment.get('DAGSTER_HOME', '(default)')}); Ctrl-C stops it", flush=True)
    command = [*_dg_command(), "dev", "-h", args.host, "-p", str(args.port)]
    # Its own process group, stopped as a whole on SIGTERM/SIGINT/SIGHUP (SIGKILL after
    # MARKETING_UI_STOP_TIMEOUT_S, default 8 s): `subprocess.call` left the webserver,
    # daemon and code servers orphaned.
    return run_process_group(command, env=environment, name="marketing ui",
                             stop_timeout=stop_timeout_from_env(os.environ))


def _cmd_migrate(args: argparse.Namespace) -> int:
    from resources.warehouse import Warehouse

    settings = PipelineSettings.from_env()
    warehouse = Warehouse(url=settings.warehouse_url, schema_name=settings.warehouse_schema)
    applied = warehouse.migrate()
    print(f"{warehouse.display_url}: applied {applied or 'nothing (up to date)'}; "
          f"schema version {warehouse.schema_version()}")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    import datetime as dt

    from datagen.config import GeneratorConfig
    from datagen.generator import generate_transactions, generate_users
    from datagen.writers import write_source

    start = dt.date.fromisoformat(args.start_date) if args.start_date else None
    config = GeneratorConfig(seed=args.seed, users=args.users, days=args.days, start_date=start)
    users = generate_users(config)
    transactions = generate_transactions(config, users)
    counts = write_source(args.target, {"users": users, "transactions": transactions},
                          file_format=args.format)
    for table, rows in counts.items():
        print(f"{table}: {rows:,} rows -> {args.target}")
    print(f"first partition date: {config.start_date}")
    return 0


def _cmd_campaign(args: argparse.Namespace) -> int:
    from pipelines.campaign_ops import UnknownCampaign, set_campaign_status
    from resources.warehouse import Warehouse
    from transforms.lifecycle import InvalidTransition

    settings = PipelineSettings.from_env()
    warehouse = Warehouse(url=settings.warehouse_url, schema_name=settings.warehouse_schema)
    requested = "paused" if args.action == "pause" else "active"
    try:
        status = set_campaign_status(warehouse, args.campaign_id, requested,
                                     reason=args.reason, set_by=args.by)
    except (UnknownCampaign, InvalidTransition) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"campaign {args.campaign_id} is now {status}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="marketing", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="generate demo data and run the whole pipeline")
    demo.add_argument("--users", type=int, default=5_000)
    demo.add_argument("--days", type=int, default=120)
    demo.add_argument("--analyze-days", type=int, default=28,
                      help="how many recent days get profiles and campaigns")
    demo.add_argument("--seed", type=int, default=42)
    demo.set_defaults(handler=_cmd_demo)

    ui = commands.add_parser("ui", help="open the Dagster UI (on the demo unless configured)")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(handler=_cmd_ui)

    migrate = commands.add_parser("migrate", help="apply schema migrations to the warehouse")
    migrate.set_defaults(handler=_cmd_migrate)

    generate = commands.add_parser("generate", help="write generated source data")
    generate.add_argument("target", help="duckdb:///file, postgresql://..., or a directory")
    generate.add_argument("--users", type=int, default=5_000)
    generate.add_argument("--days", type=int, default=120)
    generate.add_argument("--start-date", help="YYYY-MM-DD (default: history ends today)")
    generate.add_argument("--seed", type=int, default=42)
    generate.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    generate.set_defaults(handler=_cmd_generate)

    campaign = commands.add_parser("campaign", help="pause or resume a campaign (operators)")
    campaign.add_argument("action", choices=("pause", "resume"))
    campaign.add_argument("campaign_id")
    campaign.add_argument("--reason", help="why (kept in campaign_status_overrides)")
    campaign.add_argument("--by", help="who (default: the current OS user)")
    campaign.set_defaults(handler=_cmd_campaign)

    from pipelines.ingest_command import add_ingest_command

    add_ingest_command(commands)  # ingest: stage a range, print rejections

    from api.cli import add_api_commands

    add_api_commands(commands)  # api (serve), api-role, api-token
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
