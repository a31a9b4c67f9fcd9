"""Small helpers that turn frames into metadata the Dagster UI renders well."""

import dagster as dg
import polars as pl

MAX_ROWS = 40


def markdown_table(frame: pl.DataFrame, max_rows: int = MAX_ROWS) -> dg.MetadataValue:
    """A frame as a Markdown table (first `max_rows` rows), floats to 3 decimals."""
    if frame.is_empty():
        return dg.MetadataValue.md("_(no rows)_")
    shown = frame.head(max_rows)
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)
    lines = [header, rule]
    for row in shown.iter_rows():
        cells = [f"{value:.3f}" if isinstance(value, float) else str(value) for value in row]
        lines.append("| " + " | ".join(cells) + " |")
    if frame.height > max_rows:
        lines.append(f"\n_{frame.height - max_rows} more rows not shown_")
    return dg.MetadataValue.md("\n".join(lines))


def pattern_chart(counts: dict[str, int], users: int) -> dg.MetadataValue:
    """A text bar chart of the pattern mix (Markdown renders in the asset's metadata)."""
    widest = max(counts.values(), default=0) or 1
    lines = ["| pattern | users | share | |", "|---|---:|---:|---|"]
    for pattern, count in counts.items():
        bar = "█" * round(24 * count / widest)
        share = count / users if users else 0.0
        lines.append(f"| {pattern} | {count:,} | {share:.1%} | {bar} |")
    return dg.MetadataValue.md("\n".join(lines))
