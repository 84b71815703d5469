#!/usr/bin/env bash
# Run daz's queue benchmark and both peers (pgqueuer, procrastinate) in one session; print a table.
# usage: bench/compare_queues.sh [REPS=3] [N=20000]
# env:   PROCRASTINATE_N (default 2000: it drains ~430 jobs/s, so 20k would take minutes per rep;
#        its rate does not depend on N), SKIP_PROCRASTINATE=1
# Peers come from ../shared/bench-anchors beside the repository (override with ANCHORS=...), installed
# into a throwaway venv at bench/.peers-venv (gitignored). Each system gets its own database; `test` is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-3}
N=${2:-20000}
ANCHORS=${ANCHORS:-../shared/bench-anchors}
if [ ! -f "$ANCHORS/summarize.py" ]; then
  echo "compare_queues.sh: peer harnesses not found in $ANCHORS (set ANCHORS=/path/to/bench-anchors)" >&2
  exit 2
fi
ANCHORS=$(cd "$ANCHORS" && pwd)  # absolute: the loop below runs the peers from inside that folder
PGURL=${PGURL:-postgresql://root@127.0.0.1:5432}
VENV=bench/.peers-venv
DAZ_PY=${DAZ_PY:-.venv-dev/bin/python}
OUT=bench/results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$ANCHORS/requirements.txt"
fi
for db in bench_pgqueuer bench_procrastinate bench_daz; do
  psql "$PGURL/postgres" -qAtc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
    || createdb -d "$PGURL/postgres" "$db" 2>/dev/null || psql "$PGURL/postgres" -qc "CREATE DATABASE $db"
done

for rep in $(seq 1 "$REPS"); do
  echo "--- rep $rep/$REPS" >&2
  (cd "$ANCHORS" && "$OLDPWD/$VENV/bin/python" bench_pgqueuer.py "$N" 5 --batch-size 100 --dsn "$PGURL/bench_pgqueuer") \
    | tee -a "$OUT/queues.log"
  if [ "${SKIP_PROCRASTINATE:-0}" != 1 ]; then
    (cd "$ANCHORS" && "$OLDPWD/$VENV/bin/python" bench_procrastinate.py "${PROCRASTINATE_N:-2000}" 10 \
        --latency-samples 20 --dsn "$PGURL/bench_procrastinate") | tee -a "$OUT/queues.log"
  fi
  "$DAZ_PY" bench/queue_throughput.py "$N" 4 --batch-size 200 --dsn "$PGURL/bench_daz" | tee -a "$OUT/queues.log"
  "$DAZ_PY" bench/queue_throughput.py "$N" 4 --batch-size 200 --backend sqlite --skip-latency | tee -a "$OUT/queues.log"
done

"$VENV/bin/python" "$ANCHORS/summarize.py" "$OUT"/queues.log | tee "$OUT/summary.txt"
# The headline figures side by side (median of the reps).
"$VENV/bin/python" - "$OUT/queues.log" <<'PY' | tee -a "$OUT/summary.txt"
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    if line.startswith("RESULT "):
        r = dict(kv.split("=", 1) for kv in line.split()[1:])
        rows.setdefault(f"{r['system']} {r.get('test', '')}".strip(), []).append(r)
def med(rs, k):
    vals = [float(r[k]) for r in rs if k in r]
    return f"{statistics.median(vals):,.2f}" if vals else "-"
print("\n| system | n | enqueue (s) | drain jobs/s | idle p50 (ms) | runs |")
print("|---|---:|---:|---:|---:|---:|")
for name, rs in rows.items():
    print(f"| {name} | {rs[0]['n']} | {med(rs, 'enqueue_s')} | {med(rs, 'drain_jobs_per_s')} "
          f"| {med(rs, 'idle_latency_ms_p50')} | {len(rs)} |")
PY
