#!/usr/bin/env bash
# Run every benchmark in bench/ once and keep the output under bench/results/<timestamp>/.
# usage: bench/run_all.sh            (PY=<python> to pick the interpreter; default .venv/bin/python)
# Benchmarks are never tests: nothing here asserts on timings. docs/performance.md quotes a run.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=.venv-dev/bin/python
OUT=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-all
mkdir -p "$OUT"
failed=0

run() {  # run NAME CMD...: one benchmark, its output in $OUT/NAME.txt, a failure noted, not fatal
  local name=$1; shift
  echo "== $name: $*"
  if "$@" >"$OUT/$name.txt" 2>&1; then
    tail -n 15 "$OUT/$name.txt"
  else
    echo "   FAILED (exit $?), see $OUT/$name.txt"; failed=$((failed + 1))
  fi
}

run rooms        "$PY" bench/rooms.py
run queue-pg     "$PY" bench/queue_throughput.py 20000 4 --batch-size 200
run queue-sqlite "$PY" bench/queue_throughput.py 20000 4 --batch-size 200 --backend sqlite --skip-latency
run breaker      "$PY" bench/breaker.py
run events       "$PY" bench/events.py --events 20000 --db sqlite
run health-http  "$PY" bench/health_http.py
if [ "${WITH_PEERS:-0}" = 1 ]; then
  run queue-peers bash bench/compare_queues.sh 3 20000
fi
{ uname -srm; nproc; "$PY" --version; } >"$OUT/machine.txt" 2>&1
echo "results in $OUT ($failed failed)"
exit "$failed"
