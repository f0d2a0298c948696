#!/usr/bin/env bash
# Round 1 with 0 and with N unanswered challenges, alternating, on one kept benchmark
# environment: tells a cost of pending challenges apart from the drift of a shared VM over
# the minutes that separate the two levels in bench/run.sh. Usage:
#
#   BENCH_KEEP=1 BENCH_PENDING=0 BENCH_SKIP_FREERADIUS=1 BENCH_NO_STATUS=1 bench/run.sh
#   bench/pending-ab.sh /tmp/radmfa-bench.XXXXXX [PAIRS] [PENDING] [SECONDS]
#
# Defaults: 3 pairs, 100000 pending, 8 s per measurement. Each measurement starts from the
# same database (the kept one with its challenges removed), fills to its level, then runs
# round 1 for SECONDS and prints the rate and radmfa's CPU per reply.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin"
W=${1:?the work directory kept by BENCH_KEEP=1 bench/run.sh}
PAIRS=${2:-3}; LEVEL=${3:-100000}; SECS=${4:-8}
BIN=$PWD/target/release/radmfa
[ -x "$BIN" ] || cargo build --release
conf() { grep -m1 "$1" "$W/radmfa.toml" | sed "$2"; }
SECRET=$(conf secret 's/.*= *"\(.*\)"/\1/')
RPORT=$(conf listen 's/.*:\([0-9]*\)".*/\1/')
LPORT=$(conf urls 's/.*:\([0-9]*\)".*/\1/')

# The starting point: the kept database with no challenges, checkpointed.
BASE=$W/pending-ab-base.db
if [ ! -f "$BASE" ]; then
  python3 - "$W/radmfa.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("DELETE FROM challenges")
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
PY
  cp "$W/radmfa.db" "$BASE"
fi

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
slapd -f "$W/slapd/slapd.conf" -h "ldap://127.0.0.1:$LPORT/" -d 0 >/dev/null 2>&1 &
PIDS+=($!)
sleep 1

load() {
  RADMFA_SECRET=$SECRET "$BIN" client load --server "127.0.0.1:$RPORT" --users "$W/users.csv" \
    -p 100 --json --flow round1 "$@"
}
measure() { # LEVEL
  cp "$BASE" "$W/radmfa.db"; rm -f "$W/radmfa.db-wal" "$W/radmfa.db-shm"
  "$BIN" --config "$W/radmfa.toml" serve 2>>"$W/pending-ab.log" &
  local pid=$! c0 c1 out
  # Stopped by `cleanup` too if a step below fails (its bare `wait` would hang on it).
  PIDS+=("$pid")
  for _ in $(seq 50); do
    RADMFA_SECRET=$SECRET "$BIN" client status --server "127.0.0.1:$RPORT" --timeout 0.2 \
      --retries 0 >/dev/null 2>&1 && break
    sleep 0.1
  done
  if [ "$1" -gt 0 ]; then
    # Said, not assumed: a slow hour may fill less than asked within the 120 s.
    reached=$(load -n "$1" -d 120 | python3 -c 'import json, sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["expected"])')
    [ "$reached" -ge "$1" ] || echo "pending $1: only $reached challenges outstanding" >&2
  fi
  c0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  out=$(load -d "$SECS")
  c1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  python3 -c 'import json, sys
r = json.loads(sys.argv[1]); ticks = int(sys.argv[2]); hz = int(sys.argv[3])
print("pending %7s: %6.0f logins/s, CPU %3d us per reply" % (sys.argv[4], r["ok_per_sec"], ticks * 1e6 / hz / max(1, r["sent"] - r["timeouts"])))' \
    "$out" "$((c1 - c0))" "$(getconf CLK_TCK)" "$1"
}
for _ in $(seq "$PAIRS"); do
  measure 0
  measure "$LEVEL"
done
