#!/usr/bin/env bash
# Inline logins over UDP and over RadSec, alternating, on one kept benchmark environment made
# with BENCH_RADSEC=1: what RadSec costs per login, apart from the drift of a shared VM
# between the separate runs of bench/run.sh. Usage:
#
#   BENCH_KEEP=1 BENCH_RADSEC=1 BENCH_PENDING=0 BENCH_SKIP_FREERADIUS=1 BENCH_NO_STATUS=1 \
#     bench/run.sh
#   bench/radsec-ab.sh /tmp/radmfa-bench.XXXXXX [PAIRS] [SECONDS]
#
# Defaults: 3 pairs, 5 s each. One radmfa serves all runs; each run takes users of its own
# (a code used by one run cannot be used by the next) and prints the rate and radmfa's CPU
# per reply. The benchmark's window is ±10 steps: codes used in the last ten minutes (by
# bench/run.sh, or an earlier run of this script) are refused as replays, which shows as
# fewer "as expected" than sent. Wait ten minutes between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin"
W=${1:?the work directory kept by BENCH_KEEP=1 BENCH_RADSEC=1 bench/run.sh}
PAIRS=${2:-3}; SECS=${3:-5}
BIN=$PWD/target/release/radmfa
[ -x "$BIN" ] || cargo build --release
[ -d "$W/pki" ] || { echo "$W has no pki/: make it with BENCH_RADSEC=1" >&2; exit 1; }
conf() { grep -m1 "$1" "$W/radmfa.toml" | sed "$2"; }
SECRET=$(conf secret 's/.*= *"\(.*\)"/\1/')
RPORT=$(conf '^listen' 's/.*:\([0-9]*\)".*/\1/')
SPORT=$(grep -A1 '^\[radsec\]' "$W/radmfa.toml" | tail -1 | sed 's/.*:\([0-9]*\)".*/\1/')
LPORT=$(conf urls 's/.*:\([0-9]*\)".*/\1/')
USERS=$(wc -l <"$W/users.csv")
SHARE=$((USERS / (2 * PAIRS)))

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
slapd -f "$W/slapd/slapd.conf" -h "ldap://127.0.0.1:$LPORT/" -d 0 >/dev/null 2>&1 &
PIDS+=($!)
"$BIN" --config "$W/radmfa.toml" serve 2>>"$W/radsec-ab.log" &
PID=$!; PIDS+=($PID)
for _ in $(seq 50); do
  RADMFA_SECRET=$SECRET "$BIN" client status --server "127.0.0.1:$RPORT" --timeout 0.2 \
    --retries 0 >/dev/null 2>&1 && break
  sleep 0.1
done

N=0
measure() { # LABEL ARGS...
  local label=$1 c0 c1 out; shift
  c0=$(awk '{print $14 + $15}' "/proc/$PID/stat")
  out=$(RADMFA_SECRET=$SECRET "$BIN" client load --users "$W/users.csv" -p 100 --json \
    --flow inline -d "$SECS" --source 127.0.0.2 --totp-window 10 \
    --range "$((N * SHARE)):$(((N + 1) * SHARE))" "$@")
  c1=$(awk '{print $14 + $15}' "/proc/$PID/stat")
  N=$((N + 1))
  python3 -c 'import json, sys
r = json.loads(sys.argv[1]); ticks = int(sys.argv[2]); hz = int(sys.argv[3])
print("inline %-6s %6.0f logins/s (%d of %d as expected), CPU %3d us per reply" % (sys.argv[4],
      r["ok_per_sec"], r["expected"], r["sent"], ticks * 1e6 / hz / max(1, r["sent"] - r["timeouts"])))' \
    "$out" "$((c1 - c0))" "$(getconf CLK_TCK)" "$label"
}
P=$W/pki
for _ in $(seq "$PAIRS"); do
  measure udp --server "127.0.0.1:$RPORT"
  measure radsec --server "127.0.0.1:$SPORT" --secret radsec --radsec-cert "$P/client.pem" \
    --radsec-key "$P/client.key" --radsec-ca "$P/ca.pem"
done
