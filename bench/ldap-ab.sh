#!/usr/bin/env bash
# radmfa with different [ldap] settings, alternating, on one kept benchmark environment:
# what a setting (pool_size, max_concurrent_binds, ...) is worth, apart from the drift of a
# shared VM between separate runs of bench/run.sh. Usage:
#
#   BENCH_KEEP=1 BENCH_USERS=40000 BENCH_SECONDS=5 BENCH_PENDING=0 BENCH_SKIP_FREERADIUS=1 \
#     BENCH_NO_STATUS=1 bench/run.sh
#   bench/ldap-ab.sh /tmp/radmfa-bench.XXXXXX ROUNDS SECONDS "pool_size = 4" "pool_size = 16"
#
# Each variant is TOML that replaces or adds keys in the kept [ldap] section (";" separates
# lines, so "pool_size = 32;max_concurrent_binds = 64" sets both); SECTION=server (or any
# other section of the kept file) puts them there instead, and BIN=path runs another build
# (to compare binaries: one variant, one round per call, alternating BIN). Every run starts radmfa afresh, warms
# it up for a second, then measures one workload (FLOW=inline, the default, or reject) with
# users of its own, and prints the rate, radmfa's and slapd's CPU per reply and how busy the
# whole machine was (/proc/stat; 100 % per core). Inline runs use TOTP codes: a code used
# in the last ten minutes is refused as a replay, which shows as fewer "ok" than sent, so
# wait ten minutes between inline runs (or use FLOW=reject, which sends no codes).
# PERF=SECONDS also records radmfa with `perf record -g` during each run (perf-N.data in the
# work directory; read with `perf report -i FILE --no-children`).
#
# UPSTREAM=1 also starts Debian's FreeRADIUS as an upstream RADIUS server that knows every
# user of users.csv (their passwords in its `users` file, replies signed), adds an
# [upstream] section pointing at it, and prints FreeRADIUS's CPU per reply too. SECTION=client
# sets the keys in every [[client]]; so the password check by LDAP against the one by the
# upstream server is:
#   UPSTREAM=1 SECTION=client bench/ldap-ab.sh DIR 3 4 'primary = "ldap"' 'primary = "upstream"'

set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin"
W=${1:?the work directory kept by BENCH_KEEP=1 bench/run.sh}
ROUNDS=${2:?rounds}; SECS=${3:?seconds per run}; shift 3
[ $# -gt 0 ] || { echo "give at least one [ldap] variant" >&2; exit 2; }
VARIANTS=("$@")
FLOW=${FLOW:-inline}
BIN=${BIN:-$PWD/target/release/radmfa}
[ -x "$BIN" ] || cargo build --release
conf() { grep -m1 "$1" "$W/radmfa.toml" | sed "$2"; }
SECRET=$(conf secret 's/.*= *"\(.*\)"/\1/')
RPORT=$(conf '^listen' 's/.*:\([0-9]*\)".*/\1/')
LPORT=$(conf urls 's/.*:\([0-9]*\)".*/\1/')
USERS=$(wc -l <"$W/users.csv")
SHARE=$((USERS / (ROUNDS * ${#VARIANTS[@]})))

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
slapd -f "$W/slapd/slapd.conf" -h "ldap://127.0.0.1:$LPORT/" -d 0 >"$W/slapd/ab.log" 2>&1 &
SLAPD=$!; PIDS+=($SLAPD)
sleep 1
BASE=$W/radmfa.toml
FR=""
if [ -n "${UPSTREAM:-}" ]; then
  F=$W/upstream-fr; mkdir -p "$F/log" "$F/run"
  FPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  FSECRET=upstream-bench-secret
  # users.csv: user,password,seed per line.
  python3 - "$W/users.csv" "$F/users" <<'PY'
import csv, sys
rows = csv.reader(open(sys.argv[1]))
with open(sys.argv[2], "w") as out:
    for r in rows:
        out.write('%s\tCleartext-Password := "%s"\n' % (r[0], r[1]))
PY
  cat >"$F/radiusd.conf" <<CONF
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = $F/log
raddbdir = $F
radacctdir = $F/log
name = freeradius
confdir = $F
run_dir = $F/run
db_dir = $F
libdir = /usr/lib/freeradius
pidfile = $F/run/freeradius.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 262144
hostname_lookups = no
log {
	destination = files
	file = $F/log/radius.log
	auth = no
}
security {
	reject_delay = 0
	status_server = yes
}
thread pool {
	start_servers = 32
	max_servers = 32
	min_spare_servers = 3
	max_spare_servers = 32
	max_requests_per_server = 0
}
client radmfa {
	ipaddr = 127.0.0.1
	secret = $FSECRET
	require_message_authenticator = yes
}
modules {
	files {
		filename = $F/users
	}
	pap {
	}
}
server upstream {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = $FPORT
	}
	authorize {
		# Signed replies (FreeRADIUS 3.2.1 signs only when told to), as radmfa requires.
		update reply {
			&Message-Authenticator := 0x00
		}
		files
		pap
	}
	authenticate {
		Auth-Type PAP {
			pap
		}
	}
}
CONF
  freeradius -f -d "$F" >"$F/log/stdout" 2>&1 &
  FR=$!; PIDS+=($FR)
  # Lenient: FreeRADIUS 3.2.1 signs no Status-Server reply without an Autz-Type section for
  # it, and a strict probe would wait out every attempt and go on with no server checked.
  up=0
  for _ in $(seq 100); do
    RADMFA_SECRET=$FSECRET "$BIN" client status --server "127.0.0.1:$FPORT" --timeout 0.2 \
      --retries 0 --verify lenient >/dev/null 2>&1 && { up=1; break; }
    kill -0 "$FR" 2>/dev/null || { tail -20 "$F/log/stdout" "$F/log/radius.log" >&2; exit 1; }
    sleep 0.1
  done
  [ "$up" = 1 ] || { echo "FreeRADIUS did not answer a Status-Server probe" >&2; exit 1; }
  BASE=$W/upstream-base.toml
  { cat "$W/radmfa.toml"
    printf '\n[upstream]\nservers = ["127.0.0.1:%s"]\nsecret = "%s"\n' "$FPORT" "$FSECRET"
  } >"$BASE"
fi

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# All CPU time, and the idle part of it (idle + iowait), in clock ticks.
machine() { awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat; }
N=0
for _ in $(seq "$ROUNDS"); do
  for v in "${VARIANTS[@]}"; do
    python3 - "$BASE" "$W/variant.toml" "$v" "${SECTION:-ldap}" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
extra = [l.strip() for l in sys.argv[3].split(";") if l.strip()]
keys = {l.split("=")[0].strip() for l in extra}
name = sys.argv[4]
# "client": every [[client]] table; otherwise the one [name] section.
heads = [i for i, l in enumerate(lines) if l == ("[[client]]" if name == "client" else "[%s]" % name)]
if not heads:
    sys.exit("no %s section in %s" % (name, sys.argv[1]))
for start in reversed(heads):
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    body = [l for l in lines[start + 1:end] if l.split("=")[0].strip() not in keys]
    lines = lines[:start + 1] + extra + body + lines[end:]
open(sys.argv[2], "w").write("\n".join(lines))
PY
    "$BIN" --config "$W/variant.toml" serve 2>"$W/ldap-ab.log" &
    PID=$!; PIDS+=($PID)
    for _ in $(seq 50); do
      RADMFA_SECRET=$SECRET "$BIN" client status --server "127.0.0.1:$RPORT" --timeout 0.2 \
        --retries 0 >/dev/null 2>&1 && break
      kill -0 "$PID" 2>/dev/null || { tail -5 "$W/ldap-ab.log" >&2; exit 1; }
      sleep 0.1
    done
    RANGE="$((N * SHARE)):$(((N + 1) * SHARE))"
    # A second of wrong passwords first, so the pools are open when the clock starts.
    RADMFA_SECRET=$SECRET "$BIN" client load --users "$W/users.csv" -p 100 --flow reject -d 1 \
      --server "127.0.0.1:$RPORT" --range "$RANGE" --json >/dev/null
    ARGS=(--flow "$FLOW")
    [ "$FLOW" != inline ] || ARGS+=(--source 127.0.0.2 --totp-window 10)
    c0=$(ticks "$PID"); s0=$(ticks "$SLAPD"); read -r t0 i0 < <(machine)
    f0=0; [ -z "$FR" ] || f0=$(ticks "$FR")
    if [ -n "${PERF:-}" ]; then
      # A profile of radmfa from the run's second second, for PERF seconds.
      (sleep 1; perf record -q -F 999 -g -p "$PID" -o "$W/perf-$N.data" -- sleep "$PERF" \
        >/dev/null 2>&1; echo "perf data: $W/perf-$N.data ($v)" >&2) &
    fi
    out=$(RADMFA_SECRET=$SECRET "$BIN" client load --users "$W/users.csv" -p 100 --json \
      -d "$SECS" --server "127.0.0.1:$RPORT" --range "$RANGE" "${ARGS[@]}")
    c1=$(ticks "$PID"); s1=$(ticks "$SLAPD"); read -r t1 i1 < <(machine)
    f1=0; [ -z "$FR" ] || f1=$(ticks "$FR")
    kill "$PID"; wait "$PID" 2>/dev/null || true
    N=$((N + 1))
    python3 -c 'import json, sys
r = json.loads(sys.argv[1].strip().splitlines()[-1]); hz = int(sys.argv[7]); n = max(1, r["sent"] - r["timeouts"])
us = lambda t: int(t) * 1e6 / hz / n
fr = ", freeradius %3d us" % us(sys.argv[9]) if sys.argv[10] else ""
print("%-42s %6.0f/s ok %d/%d  CPU per reply: radmfa %3d us, slapd %3d us%s  machine busy %3.0f%%"
      % (sys.argv[2], r["ok_per_sec"], r["expected"], n, us(sys.argv[3]), us(sys.argv[4]),
         fr, 100 * int(sys.argv[8]) * (1 - float(sys.argv[6]) / float(sys.argv[5]))))' \
      "$out" "$v" "$((c1 - c0))" "$((s1 - s0))" "$((t1 - t0))" "$((i1 - i0))" "$(getconf CLK_TCK)" \
      "$(nproc)" "$((f1 - f0))" "$FR"
  done
done
