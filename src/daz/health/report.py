"""The ``application/health+json`` document (IETF draft "Health Check Response Format for HTTP APIs").

Checks are keyed ``componentName:measurementName``. Our components are named ``kind`` or
``kind:id`` (``database``, ``room:lobby``), so ``room:lobby``'s ``liveness`` becomes the key
``room:liveness`` with ``componentId: "lobby"``; several rooms share one key, one object each.
``output`` is present only for warn/fail, as the draft asks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from daz import __version__
from daz.clock import rfc3339
from daz.health.monitor import HealthReport
from daz.health.types import CheckResult

HEALTH_JSON = "application/health+json"
SERVICE_ID = "daz"
STATUSES = frozenset({"pass", "warn", "fail"})
TOP_LEVEL_FIELDS = frozenset(
    {"status", "version", "releaseId", "notes", "output", "serviceId", "description", "checks", "links"}
)
CHECK_FIELDS = frozenset({
    "componentId", "componentType", "observedValue", "observedUnit", "status", "affectedEndpoints",
    "time", "output", "links",
})
_COMPONENT_TYPES = {"database": "datastore", "retry_queue": "datastore", "spool": "datastore",
                    "process": "system"}
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def split_component(component: str) -> tuple[str, str | None]:
    kind, _, ident = component.partition(":")
    return kind, ident or None


def check_object(result: CheckResult) -> dict[str, Any]:
    kind, ident = split_component(result.component)
    obj: dict[str, Any] = {}
    if ident is not None:
        obj["componentId"] = ident
    obj["componentType"] = _COMPONENT_TYPES.get(kind, "component")
    if result.observed_value is not None:
        obj["observedValue"] = result.observed_value
    if result.observed_unit is not None:
        obj["observedUnit"] = result.observed_unit
    obj["status"] = result.status.value
    obj["time"] = rfc3339(result.time)
    if result.status.value != "pass" and result.output:
        obj["output"] = result.output
    return obj


def health_json(report: HealthReport | None) -> dict[str, Any]:
    """The document for ``GET /health``; before the first tick it fails with output ``starting``."""
    doc: dict[str, Any] = {
        "status": "fail" if report is None else report.status.value,
        "version": __version__.split(".")[0],
        "releaseId": __version__,
        "serviceId": SERVICE_ID,
        "description": "daz: a self-healing runtime for CyTube chat bots",
    }
    if report is None:
        doc["output"] = "starting: no health check has completed yet"
        doc["checks"] = {}
        return doc
    checks: dict[str, list[dict[str, Any]]] = {}
    for comp in report.components.values():
        for result in comp.results:
            kind, _ = split_component(result.component)
            checks.setdefault(f"{kind}:{result.measurement}", []).append(check_object(result))
    doc["checks"] = checks
    failing = report.failing()
    if report.status.value != "pass":
        worst = failing or [c for c in report.components.values()
                            if c.critical and c.status is report.status]
        doc["output"] = "; ".join(f"{c.component}: {c.output}" for c in worst) or report.status.value
    return doc


def draft_violations(doc: Mapping[str, Any]) -> list[str]:
    """Every way ``doc`` breaks the draft's field rules (empty when it conforms)."""
    problems: list[str] = []
    if doc.get("status") not in STATUSES:
        problems.append(f"status must be pass/warn/fail, got {doc.get('status')!r}")
    problems.extend(f"unknown top-level field {key!r}" for key in doc if key not in TOP_LEVEL_FIELDS)
    problems.extend(
        f"{key} must be a string"
        for key in ("version", "releaseId", "serviceId", "description", "output")
        if key in doc and not isinstance(doc[key], str)
    )
    if doc.get("status") == "pass" and "output" in doc:
        problems.append("output should be omitted when status is pass")
    checks = doc.get("checks", {})
    if not isinstance(checks, Mapping):
        return [*problems, "checks must be an object"]
    for key, entries in checks.items():
        if not isinstance(key, str) or key.count(":") != 1 or "" in key.split(":"):
            problems.append(f"check key {key!r} must be componentName:measurementName")
        if not isinstance(entries, list) or not entries:
            problems.append(f"{key}: value must be a non-empty array of objects")
            continue
        for entry in entries:
            problems.extend(_entry_violations(key, entry))
    return problems


def _entry_violations(key: str, entry: Any) -> list[str]:
    if not isinstance(entry, Mapping):
        return [f"{key}: entries must be objects"]
    problems = [f"{key}: unknown field {f!r}" for f in entry if f not in CHECK_FIELDS]
    if entry.get("status") not in STATUSES:
        problems.append(f"{key}: status must be pass/warn/fail")
    if "time" in entry and not _RFC3339.match(str(entry["time"])):
        problems.append(f"{key}: time must be RFC 3339, got {entry['time']!r}")
    problems.extend(
        f"{key}: {field} must be a string"
        for field in ("componentId", "componentType", "observedUnit", "output")
        if field in entry and not isinstance(entry[field], str)
    )
    if entry.get("status") == "pass" and "output" in entry:
        problems.append(f"{key}: output should be omitted when status is pass")
    return problems
