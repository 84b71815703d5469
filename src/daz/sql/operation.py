"""One SQL operation as data: what a queued ``sql_operation`` retry carries and re-runs.

Re-sending the failure notice would retry nothing; so the queue item's payload is the original
statement, its parameters (JSON-encoded with their types) and its target, so the handler can run
exactly the operation that failed, under the same correlation id and idempotency key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from daz.sql.statements import decode_params, encode_params

Kind = Literal["query", "exec", "exec_many"]
PAYLOAD_VERSION = 1
DEFAULT_SOURCE = "unknown"


@dataclass(frozen=True, slots=True)
class SqlOperation:
    kind: Kind
    sql: str
    params: tuple[Any, ...]  # exec_many: a tuple of row tuples
    source: str
    correlation_id: str
    idempotency_key: str | None = None
    target: str = "database"

    @property
    def operation_type(self) -> str:
        """The failure events' ``operation_type``: reads are ``sql.query``, every write ``sql.exec``."""
        return "sql.query" if self.kind == "query" else "sql.exec"

    @property
    def idempotent(self) -> bool:
        return self.idempotency_key is not None

    def to_payload(self, *, rerun: bool, reason: str | None = None) -> dict[str, Any]:
        params: list[Any] = (
            [encode_params(row) for row in self.params] if self.kind == "exec_many"
            else encode_params(self.params)
        )
        payload: dict[str, Any] = {
            "v": PAYLOAD_VERSION,
            "kind": self.kind,
            "sql": self.sql,
            "params": params,
            "source": self.source,
            "target": self.target,
            "idempotency_key": self.idempotency_key,
            "rerun": rerun,
        }
        if reason is not None:
            payload["reason"] = reason
        return payload

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], *, correlation_id: str) -> SqlOperation:
        kind = payload.get("kind")
        if kind not in ("query", "exec", "exec_many") or not isinstance(payload.get("sql"), str):
            raise ValueError("not a sql_operation payload (kind/sql missing)")
        raw: Sequence[Any] = payload.get("params") or []
        params = tuple(decode_params(row) for row in raw) if kind == "exec_many" else decode_params(raw)
        return cls(
            kind=kind,
            sql=payload["sql"],
            params=params,
            source=str(payload.get("source") or "unknown"),
            correlation_id=correlation_id,
            idempotency_key=payload.get("idempotency_key"),
            target=str(payload.get("target") or "database"),
        )
