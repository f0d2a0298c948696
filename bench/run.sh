#!/usr/bin/env bash
# radmfa vs FreeRADIUS 3.2 (rlm_ldap + rlm_totp), same directory, same load generator, same
# machine, one run. Usage:
#
#   bench/run.sh                  # full run, ~15 minutes on 2 cores
#   BENCH_SECONDS=3 bench/run.sh  # quicker, noisier
#
# Knobs (environment):
#   BENCH_USERS         directory size and radmfa enrollments (default 100000)
#   BENCH_CONCURRENCY   requests in flight (default 100)
#   BENCH_SECONDS       per workload (default 10)
#   BENCH_PENDING       pending-challenge levels (default "0 10000 100000")
#   BENCH_FILL_SECONDS  time limit for filling each pending level (default 120)
#   BENCH_SKIP_FREERADIUS=1, BENCH_NO_STATUS=1 (skip the Status-Server flood)
#   BENCH_STORE=postgres  radmfa on a private PostgreSQL cluster (scripts/pg-test-cluster.sh)
#   BENCH_STORE_TOML    the body of radmfa's [store] section, verbatim (\n for new lines);
#                       default SQLite in the work directory
#   BENCH_LDAP_TOML     lines added to radmfa's [ldap] section, verbatim (\n for new lines),
#                       e.g. "entry_cache_seconds = 300"
#   BENCH_KEEP=1        keep the work directory
#   BENCH_RADSEC=1      also run radmfa's Status-Server, inline and two-round workloads over
#                       RadSec (TLS, a throwaway PKI made with openssl), beside the UDP ones;
#                       each code-sending run then gets a quarter of the users
#
# Everything runs from a temp directory on loopback ports picked at run time: a throwaway
# slapd, radmfa, and FreeRADIUS as a foreground process with its own config. The system's
# freeradius and slapd services are neither used nor touched. Results: a table on stdout and
# JSON lines in target/bench/results-<date>.jsonl.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin"

USERS=${BENCH_USERS:-100000}
C=${BENCH_CONCURRENCY:-100}
SECS=${BENCH_SECONDS:-10}
PENDING=${BENCH_PENDING:-"0 10000 100000"}
FILL_SECS=${BENCH_FILL_SECONDS:-120}
SECRET=bench-secret-$RANDOM$RANDOM

# ---- install what the run needs --------------------------------------------------------
scripts/install-deps.sh >/dev/null
if [ -z "${BENCH_SKIP_FREERADIUS:-}" ]; then
  for p in freeradius freeradius-ldap; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
      $SUDO apt-get update -q
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        freeradius freeradius-ldap
      break
    fi
  done
fi
echo "==> building radmfa (release)" >&2
cargo build --release --quiet
BIN=$ROOT/target/release/radmfa

W=$(mktemp -d /tmp/radmfa-bench.XXXXXX)
PIDS=()
PG_STOP=""
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -z "$PG_STOP" ] || { $PG_STOP >/dev/null 2>&1 || true; rm -rf "$PGD"; }
  [ -n "${BENCH_KEEP:-}" ] && echo "work directory kept: $W" >&2 || rm -rf "$W"
}
trap cleanup EXIT
# Anything else that fails stops the run (set -e): say where, the results so far are kept.
trap 'echo "bench/run.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
# Written where they are kept from the first line: a failure late in a 15-minute run (the
# EXIT trap deletes $W) no longer loses what was measured before it.
mkdir -p target/bench
RESULTS=$ROOT/target/bench/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl
: >"$RESULTS"
FAILED=()

free_port() { # $1 = tcp|udp
  python3 -c "import socket,sys
t=socket.SOCK_STREAM if sys.argv[1]=='tcp' else socket.SOCK_DGRAM
s=socket.socket(socket.AF_INET,t); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])" "$1"
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# The resident high-water mark since the process started (VmRSS after the last workload
# would miss a peak the allocator has given back since).
rss_peak_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
# CPU time (user + system) a process has used, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
note() { # label server key value: a single measurement that is not a load phase
  printf '{"label":"%s","server":"%s","phase":"%s","value":%s}\n' "$1" "$2" "$3" "$4" >>"$RESULTS"
}
# Which [ldap] additions this run had, kept with its numbers.
[ -z "${BENCH_LDAP_TOML:-}" ] ||
  note ldap-toml radmfa setting "$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$BENCH_LDAP_TOML")"
# load SERVER LABEL HOSTPORT ARGS...: one load run, JSON lines tagged and appended.
load() {
  local server=$1 label=$2 target=$3; shift 3
  local extra=() pid c0 replies0
  # FreeRADIUS 3.2.1 puts Message-Authenticator anywhere, but is told to sign every reply.
  [ "$server" = freeradius ] && extra=(--verify signed --no-replay-guard)
  # The server's CPU per reply over this run: steadier than the rate on a shared machine.
  # slapd's too: what each login costs the directory under either server.
  local s0
  pid=$RADMFA_PID; [ "$server" = freeradius ] && pid=$FR_PID
  c0=$(cpu_ticks "$pid"); s0=$(cpu_ticks "$SLAPD_PID"); replies0=$(replies_so_far)
  # A phase the client calls failed (exit 1: a forged reply, no expected reply, or more
  # errors than --max-error-ratio) is named and the run goes on; the script exits 1 at the
  # end. Before, set -e ended the run here and took every result with it.
  if ! RADMFA_SECRET=$SECRET "$BIN" client load --server "$target" --users "$W/users.csv" \
    -p "$C" --json "${extra[@]}" "$@" |
    while read -r line; do
      echo "{\"label\":\"$label\",\"server\":\"$server\",${line#\{}" >>"$RESULTS"
      echo "   $server $label: $(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); ms=lambda v: "-" if v is None else "%.2f" % v; print("%s %.0f req/s, %d expected of %d, p50 %s ms, p99 %s ms" % (r["phase"], r["replies_per_sec"], r["expected"], r["sent"], ms(r["p50_ms"]), ms(r["p99_ms"])))' "$line")" >&2
    done; then
    echo "   FAILED: $server $label (radmfa client load exited non-zero; its lines above)" >&2
    FAILED+=("$server $label")
  fi
  local replies=$(( $(replies_so_far) - replies0 ))
  [ "$replies" -gt 0 ] || return 0
  note "cpu-$label" "$server" cpu_us_per_reply \
    "$(( ($(cpu_ticks "$pid") - c0) * 1000000 / $(getconf CLK_TCK) / replies ))"
  note "slapd-cpu-$label" "$server" cpu_us_per_reply \
    "$(( ($(cpu_ticks "$SLAPD_PID") - s0) * 1000000 / $(getconf CLK_TCK) / replies ))"
}
# Verified replies of every load run so far: CPU is per reply (BENCHMARKS.md), and a request
# that timed out cost the server nothing it answered ("sent" counted those too).
replies_so_far() {
  python3 -c 'import json,sys; print(sum(json.loads(l).get("replies", 0) for l in open(sys.argv[1]) if l.strip()))' "$RESULTS"
}
wait_udp() { # HOSTPORT: wait until the server answers Status-Server
  for _ in $(seq 100); do
    RADMFA_SECRET=$SECRET "$BIN" client status --server "$1" --timeout 0.2 --retries 0 \
      --verify lenient >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "server on $1 did not come up" >&2; return 1
}

# ---- users, directory --------------------------------------------------------------------
RPORT=$(free_port udp); LPORT=$(free_port tcp)
if [ "${BENCH_STORE:-sqlite}" = postgres ]; then
  # A private cluster (scripts/pg-test-cluster.sh, fsync on) in a directory of its own that
  # the postgres user can reach; the work directory stays private to us.
  PGD=$(mktemp -d /tmp/radmfa-bench-pg.XXXXXX); chmod 755 "$PGD"
  PG_URL=$(scripts/pg-test-cluster.sh start "$PGD/cluster" | tail -1)
  PG_STOP="scripts/pg-test-cluster.sh stop $PGD/cluster"
  BENCH_STORE_TOML="type = \"postgres\"\nurl = \"$PG_URL\"\nkey_file = \"$W/radmfa.key\""
fi
RADSEC_TOML=""
CLIENT_TRANSPORT=""
if [ -n "${BENCH_RADSEC:-}" ]; then
  # Each client entry takes both UDP and RadSec (its certificate: DNS:bench-nas).
  CLIENT_TRANSPORT='transport = "both"
radsec_name = "bench-nas"'
  SPORT=$(free_port tcp)
  P=$W/pki; mkdir -p "$P"
  ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -keyout "$P/ca.key" -out "$P/ca.pem" -days 2 \
    -subj "/CN=bench CA" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  for who in server client; do
    case $who in
      server) ext="subjectAltName=IP:127.0.0.1"$'\n'"extendedKeyUsage=serverAuth" ;;
      client) ext="subjectAltName=DNS:bench-nas"$'\n'"extendedKeyUsage=clientAuth" ;;
    esac
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n%s\n' "$ext" >"$P/$who.ext"
    openssl req "${ec[@]}" -keyout "$P/$who.key" -out "$P/$who.csr" -subj "/CN=bench $who" 2>/dev/null
    openssl x509 -req -in "$P/$who.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial \
      -out "$P/$who.pem" -days 2 -extfile "$P/$who.ext" 2>/dev/null
  done
  RADSEC_TOML="
[radsec]
listen = [\"127.0.0.1:$SPORT\"]
cert_file = \"$P/server.pem\"
key_file = \"$P/server.key\"
ca_file = \"$P/ca.pem\"
"
  RADSEC_ARGS=(--secret radsec --radsec-cert "$P/client.pem" --radsec-key "$P/client.key"
    --radsec-ca "$P/ca.pem")
fi
case "${BENCH_STORE_TOML:-}" in
  "") STORE="path = \"$W/radmfa.db\"
key_file = \"$W/radmfa.key\"" ;;
  *) STORE=$(printf '%b' "$BENCH_STORE_TOML") ;;
esac
cat >"$W/radmfa.toml" <<EOF
# Benchmark configuration: production defaults except where noted.
[server]
name = "bench"
listen = ["127.0.0.1:$RPORT"]
# Not the default (info, a line per request): FreeRADIUS's template logs none either.
log_level = "warn"

[store]
$STORE

[ldap]
urls = ["ldap://127.0.0.1:$LPORT"]
bind_dn = "cn=admin,dc=example,dc=org"
bind_password = "adminpw"
base_dn = "ou=people,dc=example,dc=org"
user_filter = "(uid={user})"
# As many connections as FreeRADIUS gets below (rlm_ldap pool, max 64): 32 for searches,
# 32 for user binds (the default). radmfa's default pool_size is 16.
pool_size = 32
$(printf '%b' "${BENCH_LDAP_TOML:-}")

# The widest window radmfa allows, so that each user may log in 19 times at once and then
# once per step without reusing a code (radmfa refuses a used step); see BENCHMARKS.md.
[totp]
window = 10

# Long enough that the pending-challenge levels are not expired away mid-run.
[challenge]
timeout_secs = 3600

# Round-1 and inline runs re-use users; a high threshold keeps stray failures from locking.
[lockout]
threshold = 1000000
$RADSEC_TOML
[[client]]
name = "challenge-nas"
address = "127.0.0.1"
secret = "$SECRET"
otp_mode = "challenge"
$CLIENT_TRANSPORT

[[client]]
name = "inline-nas"
address = "127.0.0.2"
secret = "$SECRET"
otp_mode = "inline"
inline_delimiter = ","
$CLIENT_TRANSPORT
EOF

echo "==> $USERS users (directory LDIF, users.csv, radmfa enrollments)" >&2
"$BIN" --config "$W/radmfa.toml" client bench-users --count "$USERS" --out "$W" --enroll

mkdir -p "$W/slapd/db"
cat >"$W/slapd/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile $W/slapd/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
loglevel 0
database mdb
maxsize 4294967296
suffix "dc=example,dc=org"
rootdn "cn=admin,dc=example,dc=org"
rootpw $(slappasswd -s adminpw)
directory $W/slapd/db
index objectClass,uid eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
EOF
slapadd -q -f "$W/slapd/slapd.conf" -l "$W/users.ldif"
slapd -f "$W/slapd/slapd.conf" -h "ldap://127.0.0.1:$LPORT/" -d 0 >"$W/slapd/log" 2>&1 &
PIDS+=($!); SLAPD_PID=$!
for _ in $(seq 100); do
  ldapwhoami -x -H "ldap://127.0.0.1:$LPORT" -D cn=admin,dc=example,dc=org -w adminpw \
    >/dev/null 2>&1 && break
  sleep 0.1
done

echo "==> raw slapd bind rate, $C connections" >&2
for mode in bind connect-bind; do
  "$BIN" client ldap-binds --url "ldap://127.0.0.1:$LPORT" --users "$USERS" -p "$C" \
    -d "$SECS" --mode "$mode" --json |
    sed "s/^{/{\"label\":\"ldap-$mode\",\"server\":\"slapd\",/" >>"$RESULTS"
done
tail -2 "$RESULTS" >&2

# The same workloads against each server. Inline runs from 127.0.0.2, radmfa's inline NAS.
workloads() { # SERVER HOSTPORT
  load "$1" warmup "$2" --flow reject -d 2
  [ -n "${BENCH_NO_STATUS:-}" ] || load "$1" status "$2" --flow status -d "$SECS"
  # Disjoint shares of the users (halves; quarters with RadSec runs): a run cannot know
  # which steps another used.
  local share=$((USERS / 2))
  [ -z "${BENCH_RADSEC:-}" ] || share=$((USERS / 4))
  load "$1" inline "$2" --flow inline -d "$SECS" --source 127.0.0.2 --totp-window 10 \
    --range "0:$share"
  load "$1" two-round "$2" --flow two-round -d "$SECS" --totp-window 10 \
    --range "$share:$((2 * share))"
  load "$1" reject "$2" --flow reject -d "$SECS"
  if [ -n "${BENCH_RADSEC:-}" ] && [ "$1" = radmfa ]; then
    # The same over RadSec: one TLS connection per worker, opened before the clock starts
    # and kept for both rounds (the inline NAS again from 127.0.0.2).
    local s="127.0.0.1:$SPORT"
    [ -n "${BENCH_NO_STATUS:-}" ] || load "$1" radsec-status "$s" --flow status -d "$SECS" \
      "${RADSEC_ARGS[@]}"
    load "$1" radsec-inline "$s" --flow inline -d "$SECS" --source 127.0.0.2 --totp-window 10 \
      --range "$((2 * share)):$((3 * share))" "${RADSEC_ARGS[@]}"
    load "$1" radsec-two-round "$s" --flow two-round -d "$SECS" --totp-window 10 \
      --range "$((3 * share)):$((4 * share))" "${RADSEC_ARGS[@]}"
  fi
}
# Round-1 throughput as unanswered challenges pile up: fill to each level (bounded by
# BENCH_FILL_SECONDS: a server that slows down may not get there), then measure. The level
# actually reached is recorded as pending-at-LEVEL. A server that times out under the pile
# is what is measured here, not a failed phase (--max-error-ratio 1).
pending() { # SERVER HOSTPORT PID
  local have=0 level n
  for level in $PENDING; do
    n=$((level - have))
    if [ "$n" -gt 0 ]; then
      load "$1" "fill-to-$level" "$2" --flow round1 -n "$n" -d "$FILL_SECS" --max-error-ratio 1
      have=$((have + $(last_expected "$1" "fill-to-$level")))
    fi
    note "pending-at-$level" "$1" pending "$have"
    note "rss-pending-$level" "$1" rss_kib "$(rss_kib "$3")"
    load "$1" "pending-$level" "$2" --flow round1 -d "$SECS" --max-error-ratio 1
    have=$((have + $(last_expected "$1" "pending-$level")))
  done
}
last_expected() { # SERVER LABEL: "expected" of that load run; 0 if it wrote no line (failed)
  python3 -c 'import json,sys
rs = [r for r in map(json.loads, open(sys.argv[1])) if r.get("server") == sys.argv[2] and r.get("label") == sys.argv[3] and "expected" in r]
print(rs[-1]["expected"] if rs else 0)' "$RESULTS" "$1" "$2"
}

start_radmfa() {
  "$BIN" --config "$W/radmfa.toml" serve 2>>"$W/radmfa.log" &
  RADMFA_PID=$!; PIDS+=($RADMFA_PID)
  wait_udp "127.0.0.1:$RPORT"
}
start_freeradius() {
  freeradius -f -d "$F" >>"$F/stdout" 2>&1 &
  FR_PID=$!; PIDS+=($FR_PID)
  wait_udp "127.0.0.1:$FPORT"
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

# FreeRADIUS's configuration on a port free now, checked.
freeradius_conf() {
  FPORT=$(free_port udp)
  F=$W/freeradius; mkdir -p "$F/log" "$F/run" "$F/radacct"
  : >"$F/dictionary"
  sed -e "s|@DIR@|$F|g" -e "s|@PORT@|$FPORT|g" -e "s|@LDAP_PORT@|$LPORT|g" \
      -e "s|@SECRET@|$SECRET|g" bench/freeradius/radiusd.conf.in >"$F/radiusd.conf"
  freeradius -C -d "$F" >/dev/null 2>&1 || { freeradius -XC -d "$F" | tail -20; exit 1; }
}
# Checked first, so a broken install stops the run now, not after radmfa's half; written
# again before FreeRADIUS starts (a port picked minutes earlier may be taken by then).
[ -n "${BENCH_SKIP_FREERADIUS:-}" ] || freeradius_conf

# Each server: the workloads, then a restart (so resident memory at each pending level is
# not the high-water mark of the Status-Server flood), then the pending-challenge levels.
echo "==> radmfa on 127.0.0.1:$RPORT" >&2
start_radmfa
note rss-start radmfa rss_kib "$(rss_kib $RADMFA_PID)"
workloads radmfa "127.0.0.1:$RPORT"
note rss-after-workloads radmfa rss_kib "$(rss_peak_kib $RADMFA_PID)"
stop $RADMFA_PID
start_radmfa
pending radmfa "127.0.0.1:$RPORT" $RADMFA_PID
stop $RADMFA_PID

if [ -z "${BENCH_SKIP_FREERADIUS:-}" ]; then
  freeradius_conf
  # awk reads all of `freeradius -v`: with `head -1` it died of SIGPIPE, and pipefail made
  # the ERR trap print "failed at line …" for a run that went on fine.
  echo "==> FreeRADIUS $(freeradius -v 2>/dev/null | awk 'NR == 1 && match($0, /Version [0-9.]+/) { print substr($0, RSTART, RLENGTH) }') on 127.0.0.1:$FPORT" >&2
  start_freeradius
  note rss-start freeradius rss_kib "$(rss_kib $FR_PID)"
  workloads freeradius "127.0.0.1:$FPORT"
  note rss-after-workloads freeradius rss_kib "$(rss_peak_kib $FR_PID)"
  stop $FR_PID
  start_freeradius
  pending freeradius "127.0.0.1:$FPORT" $FR_PID
  stop $FR_PID
fi

# ---- report ------------------------------------------------------------------------------
OUT=$RESULTS
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%F)"
echo "users: $USERS, in flight: $C, seconds per workload: $SECS"
python3 bench/table.py "$OUT"
echo "raw results: $OUT"
if [ "${#FAILED[@]}" -gt 0 ]; then
  echo "failed phases: ${FAILED[*]}" >&2
  exit 1
fi
