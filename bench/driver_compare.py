"""asyncpg vs psycopg 3 on daz's claim/complete path: the same SQL, one connection, 20k rows.

Run with a Python that has both drivers (the peers' venv does):
    bench/.peers-venv/bin/python bench/driver_compare.py [N=20000] [BATCH=200] [--dsn ...]
The SQL is read from src/daz/store/postgres.py and the schema from the migration, so the figures
track the real statements. Prints ``RESULT system=driver test=<driver> … claim_complete_rows_per_s=…``.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import psycopg
from psycopg import AsyncRawCursor

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = (ROOT / "src/daz/store/sql/postgres/0001_retry_queue.sql").read_text()
FILL = """
INSERT INTO daz_retry_queue (correlation_id, operation_type, payload, max_retries, retry_after,
                             timeout_seconds, created_at, updated_at)
SELECT md5(i::text), 'noop', jsonb_build_object('i', i), 3, now() - interval '1 s', 30, now(), now()
FROM generate_series(1, $1::int) i
"""


def statements() -> dict[str, str]:
    tree = ast.parse((ROOT / "src/daz/store/postgres.py").read_text())
    found: dict[str, str] = {}
    for node in tree.body:
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and node.target.id in ("_CLAIM", "_COMPLETE_MANY") and isinstance(node.value, ast.Constant)):
            found[node.target.id] = str(node.value.value)
    return found


async def reset(dsn: str, n: int) -> None:
    conn = await asyncpg.connect(dsn)
    await conn.execute("DROP TABLE IF EXISTS daz_retry_queue CASCADE")
    await conn.execute(SCHEMA)
    await conn.execute(FILL, n)
    await conn.execute("VACUUM ANALYZE daz_retry_queue")
    await conn.close()


async def with_asyncpg(dsn: str, sql: dict[str, str], batch: int) -> int:
    conn = await asyncpg.connect(dsn)
    done = 0
    while True:
        now = datetime.now(UTC)
        rows = await conn.fetch(sql["_CLAIM"], now, batch, now + timedelta(seconds=30), "w", None, None)
        if not rows:
            break
        ids = [r[0] for r in rows]
        fences = [r[14] for r in rows]
        done += len(await conn.fetch(sql["_COMPLETE_MANY"], ids, fences, datetime.now(UTC)))
    await conn.close()
    return done


async def with_psycopg(dsn: str, sql: dict[str, str], batch: int) -> int:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True, cursor_factory=AsyncRawCursor)
    done = 0
    while True:
        now = datetime.now(UTC)
        cur = await conn.execute(sql["_CLAIM"], (now, batch, now + timedelta(seconds=30), "w", None, None),
                                 prepare=True)
        rows = await cur.fetchall()
        if not rows:
            break
        ids = [r[0] for r in rows]
        fences = [r[14] for r in rows]
        cur = await conn.execute(sql["_COMPLETE_MANY"], (ids, fences, datetime.now(UTC)), prepare=True)
        done += len(await cur.fetchall())
    await conn.close()
    return done


async def main(args: argparse.Namespace) -> None:
    sql = statements()
    for name, fn in (("asyncpg", with_asyncpg), ("psycopg", with_psycopg)) * args.reps:
        await reset(args.dsn, args.n)
        t0 = time.perf_counter()
        done = await fn(args.dsn, sql, args.batch)
        elapsed = time.perf_counter() - t0
        assert done == args.n, (name, done)
        print(f"RESULT system=driver test={name} n={args.n} batch_size={args.batch} "
              f"claim_complete_s={elapsed:.3f} claim_complete_rows_per_s={args.n / elapsed:.1f}", flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("n", nargs="?", type=int, default=20_000)
    p.add_argument("batch", nargs="?", type=int, default=200)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--dsn", default="postgresql://root@127.0.0.1:5432/bench_driver")
    asyncio.run(main(p.parse_args()))
