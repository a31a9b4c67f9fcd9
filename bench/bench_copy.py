"""Benchmark of LLM campaign copy against the fake Together server over real HTTP.

    python -m bench.bench_copy                      # 200 campaigns, 1 s latency, concurrency 5
    python -m bench.bench_copy --campaigns 50 --latency 0.2 --no-write
    python -m bench.bench_copy --outages            # a dead server: all hanging, all failing

A cold run (empty cache) measures what bounded concurrency buys: with latency L per call and
concurrency C, N campaigns should take about N / C x L. A warm rerun with the same cache must
make zero calls. The figures are written to the "LLM copy" section of docs/benchmarks.md
(only that section is replaced; other sections are left as they are).

`--outages` runs the same campaigns against a server where every request hangs, then one
where every request fails with HTTP 503, with the default settings (30 s per request, 3
retries, circuit breaker after 5 failures, default deadline): wall time, requests the server
received and outcomes, written to the "Measured: a dead server" section of docs/llm-copy.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import time
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any

from devkit.fake_together import FakeTogether, Reply, hanging, server_error
from resources.copywriter import generate_copies_sync
from transforms.copy_prompt import CAMPAIGN_TYPES, CampaignBrief, Offer
from transforms.copy_results import CopySettings, InMemoryCopyCache

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
SECTION = "## LLM copy"
OUTAGE_DOC = DOC.parent / "llm-copy.md"
OUTAGE_SECTION = "### Measured: a dead server"
OUTAGES: dict[str, tuple[str, Reply]] = {
    "hanging": ("every request hangs (never answers)", hanging()),
    "failing": ("every request fails with HTTP 503", server_error(503)),
}
PATTERNS = ("high_spender", "frequent_shopper", "weekend_shopper", "inactive", "new_shopper")
OFFERS = (
    Offer(kind="percent_off", value=20, label="20% off premium merchants"),
    Offer(kind="cashback", value=5, label="5% cashback"),
    Offer(kind="points_multiplier", value=2, label="double points"),
    Offer(kind="bonus", value=10, label="$10 bonus at $200", min_spend=200),
    Offer(kind="amount_off", value=15, label="$15 off your next purchase"),
)


def make_briefs(count: int) -> list[CampaignBrief]:
    """`count` distinct briefs (distinct prompts, so no two share a cache entry)."""
    return [
        CampaignBrief(
            campaign_id=f"bench-{i}",
            campaign_name=f"Bench campaign {i}",
            campaign_type=CAMPAIGN_TYPES[i % len(CAMPAIGN_TYPES)],
            offer=OFFERS[i % len(OFFERS)],
            target_patterns=[PATTERNS[i % len(PATTERNS)]],
            audience_size=500 + 37 * i,
            segment_facts={"avg_spend": 40.0 + i, "top_category": "groceries"},
        )
        for i in range(count)
    ]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = found.group(1).strip() if found else cpu
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, together {version('together')}"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    briefs = make_briefs(args.campaigns)
    cache = InMemoryCopyCache()
    with FakeTogether(latency_s=args.latency) as fake:
        settings = CopySettings(
            api_key="bench-key",
            base_url=fake.base_url,
            max_concurrency=args.concurrency,
            timeout_s=args.latency + 10,
        )
        cold = generate_copies_sync(briefs, settings, cache)
        cold_calls = fake.calls
        warm = generate_copies_sync(briefs, settings, cache)
        figures = {
            "cold": cold.stats,
            "warm": warm.stats,
            "server_calls_cold": cold_calls,
            "server_calls_warm": fake.calls - cold_calls,
            "max_in_flight": fake.max_in_flight,
        }
    for name in ("cold", "warm"):
        s = figures[name]
        print(
            f"{name}: {s['campaigns']} campaigns in {s['wall_time_s']:.2f} s, "
            f"calls {s['calls_made']}, llm {s['llm']}, cache {s['cache']}, "
            f"template {s['template']}, p50 {s['latency_p50_ms']} ms, "
            f"p95 {s['latency_p95_ms']} ms, tokens {s['tokens_in']}/{s['tokens_out']}, "
            f"est. ${s['estimated_cost_usd']:.4f}"
        )
    print(f"server: max in flight {figures['max_in_flight']}")
    return figures


def run_outage(name: str, campaigns: int) -> dict[str, Any]:
    """The copywriter with default settings against a server in outage `name`."""
    _, reply = OUTAGES[name]
    with FakeTogether(default=reply) as fake:
        settings = CopySettings(api_key="bench-key", base_url=fake.base_url)
        started = time.perf_counter()
        result = generate_copies_sync(make_briefs(campaigns), settings, InMemoryCopyCache())
        wall = time.perf_counter() - started
        received = fake.calls
    stats = result.stats
    print(f"{name}: {campaigns} campaigns in {wall:.1f} s, server received {received} "
          f"requests, llm {stats['llm']} / template {stats['template']}, stopped by "
          f"{stats['stopped_by']}, deadline {stats['deadline_s']} s, reasons "
          f"{stats['fallback_reasons']}")
    return {"name": name, "wall_s": wall, "requests": received, "stats": stats}


def outage_section(campaigns: int, runs: list[dict[str, Any]]) -> str:
    """The markdown of the "Measured: a dead server" section of docs/llm-copy.md."""
    lines = [
        OUTAGE_SECTION,
        "",
        f"`python -m bench.bench_copy --outages --campaigns {campaigns}` "
        f"({date.today().isoformat()}): default settings",
        "(30 s per request, 3 retries, 5 in flight, breaker after 5 failures of a kind, default",
        "deadline) against the fake server over real HTTP.",
        f"Machine: {machine()}.",
        "",
        "| server | wall time | requests received | llm / template | stopped by | reason |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        stats = run["stats"]
        reasons = sorted(stats["fallback_reasons"].items(), key=lambda item: -item[1])
        top = f"`{reasons[0][0]}` ({reasons[0][1]})" if reasons else "-"
        lines.append(f"| {OUTAGES[run['name']][0]} | {run['wall_s']:.1f} s | "
                     f"{run['requests']} | {stats['llm']} / {stats['template']} | "
                     f"`{stats['stopped_by']}` | {top} |")
    lines += [
        "",
        "- Hanging: the wall time is one request timeout (30 s) plus start-up.",
        "- Requests: more than 5 can arrive, at most 5 + 4 = 9 (the count varies run to run):",
        "  the first failures free slots and waiting campaigns start requests before the 5th",
        "  failure opens the breaker; those are abandoned the moment it opens. None after.",
        "- Before the breaker and the deadline (issue 17): 8 hanging campaigns took 3 min 39 s,",
        f"  and a failing server got 4 requests per campaign ({4 * campaigns} for {campaigns}).",
        "- With the breaker off (`circuit_breaker_failures: 0`) the deadline is the bound: "
        f"{stats['deadline_s']:g} s",
        f"  for {campaigns} prompts by default (configured, not measured here).",
        "",
    ]
    return "\n".join(lines)


def write_outage_section(text: str, doc: Path = OUTAGE_DOC) -> None:
    """Replace the outage section of docs/llm-copy.md (it must exist); keep the rest."""
    existing = doc.read_text()
    pattern = re.compile(rf"^{re.escape(OUTAGE_SECTION)}\n.*?(?=^##|\Z)",
                         re.MULTILINE | re.DOTALL)
    if not pattern.search(existing):
        raise SystemExit(f"{doc} has no '{OUTAGE_SECTION}' section to replace")
    doc.write_text(pattern.sub(lambda _: text + "\n", existing, count=1))


def section(args: argparse.Namespace, figures: dict[str, Any]) -> str:
    """The markdown of the "LLM copy" section for these figures."""
    cold, warm = figures["cold"], figures["warm"]
    ideal = args.campaigns / args.concurrency * args.latency
    command = (
        f"python -m bench.bench_copy --campaigns {args.campaigns} "
        f"--latency {args.latency:g} --concurrency {args.concurrency}"
    )

    def row(name: str, s: dict[str, Any], wall: str) -> str:
        p50 = f"{s['latency_p50_ms']} ms" if s["latency_p50_ms"] is not None else "-"
        p95 = f"{s['latency_p95_ms']} ms" if s["latency_p95_ms"] is not None else "-"
        sources = f"{s['llm']} / {s['cache']} / {s['template']}"
        return f"| {name} | {wall} | {s['calls_made']} | {sources} | {p50} | {p95} |"

    lines = [
        SECTION,
        "",
        f"`{command}` ({date.today().isoformat()}): the copywriter through the real `together`",
        "SDK against the fake server (`devkit/fake_together.py`) over real HTTP on 127.0.0.1,",
        f"every call answering after {args.latency:g} s.",
        f"Machine: {machine()}.",
        "",
        "| run | wall time | calls | llm / cache / template | p50 call | p95 call |",
        "|---|---|---|---|---|---|",
        row("cold cache", cold, f"{cold['wall_time_s']:.2f} s"),
        row("warm cache (rerun)", warm, f"{warm['wall_time_s']:.3f} s"),
        "",
        f"- Lower bound for the cold run: {args.campaigns} / {args.concurrency} x "
        f"{args.latency:g} s = {ideal:.0f} s; measured overhead "
        f"{cold['wall_time_s'] - ideal:.2f} s (client start-up, first connections).",
        f"- Server side: {figures['server_calls_cold']} requests in the cold run, "
        f"{figures['server_calls_warm']} in the warm rerun, at most "
        f"{figures['max_in_flight']} in flight (limit {args.concurrency}).",
        f"- Tokens (the fake counts about 4 characters per token): {cold['tokens_in']:,} in, "
        f"{cold['tokens_out']:,} out, estimated ${cold['estimated_cost_usd']:.4f} at the "
        "default $0.88 per million tokens each way.",
        "- Against the real API the per-call latency is the model's (not measured here: no "
        "key in this environment); wall time stays about campaigns / max_concurrency x "
        "latency until Together's rate limit answers 429.",
        "",
    ]
    return "\n".join(lines)


def write_section(text: str, doc: Path = DOC) -> None:
    """Replace this benchmark's section of the doc, or append it; keep every other section."""
    existing = doc.read_text() if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(existing):
        updated = pattern.sub(lambda _: text + "\n", existing, count=1)
    else:
        updated = existing.rstrip("\n") + "\n\n" + text
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(updated.rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=200)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per call")
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="do not update the doc")
    parser.add_argument("--outages", action="store_true",
                        help="measure a hanging and a failing server instead")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.outages:
        runs = [run_outage(name, args.campaigns) for name in OUTAGES]
        print(f"total {time.perf_counter() - started:.1f} s")
        if not args.no_write:
            write_outage_section(outage_section(args.campaigns, runs))
            print(f"wrote the '{OUTAGE_SECTION[4:]}' section of {OUTAGE_DOC}")
        return
    figures = run(args)
    print(f"total {time.perf_counter() - started:.1f} s")
    if not args.no_write:
        write_section(section(args, figures))
        print(f"wrote the '{SECTION[3:]}' section of {DOC}")


if __name__ == "__main__":
    main()
