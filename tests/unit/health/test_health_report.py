"""health+json rendering against the IETF draft's field rules, and the rule checker itself."""

from __future__ import annotations

from typing import Any

from daz.config import HealthConfig
from daz.health.monitor import HealthMonitor, HealthReport
from daz.health.report import draft_violations, health_json, split_component
from daz.health.types import CheckResult, HealthStatus
from daz.metrics import DazMetrics
from daz.testing import FakeClock


class Fixed:
    def __init__(self, name: str, critical: bool,
                 results: list[tuple[str, str, HealthStatus, Any, str | None]], clock: FakeClock) -> None:
        self.name, self.critical, self._results, self._clock = name, critical, results, clock

    async def run(self) -> list[CheckResult]:
        return [CheckResult(c, m, s, v, u, "" if s is HealthStatus.PASS else f"{m} is {s}", self._clock.now())
                for c, m, s, v, u in self._results]


Spec = tuple[str, bool, list[tuple[str, str, HealthStatus, Any, str | None]]]


async def report_for(*checks_spec: Spec) -> HealthReport:
    clock = FakeClock()
    checks = [Fixed(n, c, r, clock) for n, c, r in checks_spec]
    return await HealthMonitor(checks, None, DazMetrics(), clock, HealthConfig()).run_once()


def test_split_component() -> None:
    assert split_component("room:lobby") == ("room", "lobby")
    assert split_component("database") == ("database", None)


async def test_document_follows_the_draft() -> None:
    report = await report_for(
        ("rooms", True, [("room:lobby", "liveness", HealthStatus.PASS, 1.5, "s"),
                         ("room:other", "liveness", HealthStatus.FAIL, 200.0, "s")]),
        ("database", True, [("database", "latency", HealthStatus.WARN, 150.0, "ms")]),
    )
    doc = health_json(report)
    assert draft_violations(doc) == []
    assert doc["status"] == "fail"
    assert "room:other" in doc["output"]
    rooms = doc["checks"]["room:liveness"]
    assert [r["componentId"] for r in rooms] == ["lobby", "other"]
    assert "output" not in rooms[0]
    assert rooms[1]["output"] == "liveness is fail"
    assert rooms[1]["observedUnit"] == "s"
    assert rooms[1]["time"] == "2026-01-01T00:00:00.000Z"
    db = doc["checks"]["database:latency"][0]
    assert db == {"componentType": "datastore", "observedValue": 150.0, "observedUnit": "ms",
                  "status": "warn", "time": "2026-01-01T00:00:00.000Z", "output": "latency is warn"}


async def test_passing_document_has_no_output() -> None:
    passing = [("database", "latency", HealthStatus.PASS, 1, "ms")]
    doc = health_json(await report_for(("database", True, passing)))
    assert doc["status"] == "pass"
    assert "output" not in doc
    assert draft_violations(doc) == []


def test_before_first_tick_the_document_fails_with_a_reason() -> None:
    doc = health_json(None)
    assert doc["status"] == "fail"
    assert "starting" in doc["output"]
    assert draft_violations(doc) == []


def test_checker_catches_each_rule() -> None:
    good_entry = {"status": "pass", "time": "2026-01-01T00:00:00Z"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"status": "ok"}, "status must be"),
        ({"status": "pass", "bogus": 1}, "unknown top-level field"),
        ({"status": "pass", "output": "x"}, "output should be omitted"),
        ({"status": "pass", "checks": {"nocolon": [good_entry]}}, "componentName:measurementName"),
        ({"status": "pass", "checks": {"a:b:c": [good_entry]}}, "componentName:measurementName"),
        ({"status": "pass", "checks": {"a:b": good_entry}}, "non-empty array"),
        ({"status": "pass", "checks": {"a:b": [{"status": "up"}]}}, "status must be"),
        ({"status": "pass", "checks": {"a:b": [{"status": "pass", "time": "yesterday"}]}}, "RFC 3339"),
        ({"status": "pass", "checks": {"a:b": [{"status": "pass", "value": 1}]}}, "unknown field"),
        ({"status": "pass", "checks": {"a:b": [{"status": "pass", "output": "x"}]}}, "omitted"),
        ({"status": "warn", "version": 1}, "version must be a string"),
    ]
    for doc, expected in cases:
        problems = draft_violations(doc)
        assert any(expected in p for p in problems), (doc, problems)
