"""The "Answer shapes" table of docs/llm-copy.md, replayed row by row against the fake server.

The table is the specification: each row names the fake's replies (factories in
devkit/fake_together.py, in request order) and the outcome the page promises (requests the
server received, repair requests, copy source). Reading it here keeps the page and the code
from drifting apart: a row the code does not honour fails, and so does a row that names a
reply the fake cannot produce.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import devkit.fake_together as fake_together
from devkit.fake_together import FakeTogether, Reply
from resources.copywriter import generate_copies_sync
from transforms.copy_prompt import CampaignBrief, Offer
from transforms.copy_results import CopySettings

DOC = Path(__file__).resolve().parent.parent / "docs" / "llm-copy.md"
HEADER = "| answer | fake server replies | requests | repairs | copy_source | what happens |"
REPLY = re.compile(r"`(\w+)`(?:\s*x(\d+))?")


def shape_rows() -> list[dict[str, str]]:
    """The table's rows as {column: cell}."""
    lines = DOC.read_text().splitlines()
    start = lines.index(HEADER)
    columns = [cell.strip() for cell in HEADER.strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows.append(dict(zip(columns, cells, strict=True)))
    return rows


def replies(cell: str) -> list[Reply]:
    """`name`, `name` x4, ... as the fake's replies."""
    found = []
    for name, times in REPLY.findall(cell):
        factory = getattr(fake_together, name)
        found += [factory() for _ in range(int(times or 1))]
    assert found, f"no reply named in {cell!r}"
    return found


BRIEF = CampaignBrief(
    campaign_id="shape",
    campaign_name="VIP shape",
    campaign_type="vip",
    offer=Offer(kind="percent_off", value=20, label="20% off premium merchants"),
    target_patterns=["high_spender"],
    audience_size=1234,
)


def test_the_table_is_there_and_covers_the_shapes() -> None:
    named = {name for row in shape_rows() for name, _ in REPLY.findall(row["fake server replies"])}
    assert {"fenced_json", "prose_around_json", "think_then_json", "html_page", "empty_body",
            "truncated_body"} <= named  # fmt: skip


@pytest.mark.parametrize("row", shape_rows(), ids=lambda row: row["answer"][:50])
def test_answer_shape(row: dict[str, str]) -> None:
    with FakeTogether() as fake:
        fake.enqueue(*replies(row["fake server replies"]))
        settings = CopySettings(api_key="test-key-0000", base_url=fake.base_url,
                                backoff_base_s=0.01, backoff_max_s=0.02)
        run = generate_copies_sync([BRIEF], settings)
        received = fake.calls
    result = run.results[0]
    assert received == int(row["requests"])
    assert run.stats["calls_made"] == received
    assert run.stats["repairs"] == int(row["repairs"])
    assert result.copy_source == row["copy_source"]
    quoted = re.findall(r"`([^`]+)`", row["what happens"])
    if result.copy_source == "template":
        # The reason the page quotes: exactly, or its beginning when it ends with "...".
        assert quoted, "a template row must quote its fallback reason"
        expected = quoted[0]
        if expected.endswith("..."):
            assert result.fallback_reason.startswith(expected[:-3])
        else:
            assert result.fallback_reason == expected
    else:
        assert result.fallback_reason is None
