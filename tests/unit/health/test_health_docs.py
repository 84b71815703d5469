"""docs/observability.md and the Grafana dashboard stay in step with the metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

from daz.metrics import DazMetrics

DOCS = Path(__file__).resolve().parents[3] / "docs"


def metric_names() -> set[str]:
    names: set[str] = set()
    for family in DazMetrics().registry.collect():
        names.add(family.name + "_total" if family.type == "counter" else family.name)
    return names


def test_every_metric_is_documented() -> None:
    text = (DOCS / "observability.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(daz_[a-z_]+)` \|", text, flags=re.MULTILINE))
    assert metric_names() - documented == set()
    assert documented - metric_names() == set()


def test_dashboard_uses_only_existing_metrics() -> None:
    dash = json.loads((DOCS / "grafana-dashboard.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"daz_[a-z_]+", e)}
    assert used, "the dashboard has no queries"
    assert used - metric_names() == set()
    for name in ("daz_room_state", "daz_health_check_status", "daz_event_loop_lag_seconds",
                 "daz_retry_dead_letter_total", "daz_breaker_state"):
        assert name in used
