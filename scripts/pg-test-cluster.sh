#!/usr/bin/env bash
# A private PostgreSQL cluster for trying radmfa's shared store by hand or benchmarking it:
# initdb in a directory of its own, listening on 127.0.0.1 only, no system service involved.
#
#   scripts/pg-test-cluster.sh start [DIR] [PORT]   # prints the URL for [store] url = "..."
#   scripts/pg-test-cluster.sh url   [DIR]
#   scripts/pg-test-cluster.sh stop  [DIR]          # stops and deletes the cluster
#
# DIR defaults to /tmp/radmfa-pg-cluster (outside the clone: as root, the server runs as the
# `postgres` user, who cannot enter a clone under /root), PORT to a free one. Durability settings are PostgreSQL's
# defaults (fsync on), so throughput measured against it is comparable to a real server on the
# same disk; pass FAST=1 to turn fsync off for functional runs. Needs the `postgresql` package
# (scripts/install-deps.sh). As root, the server runs as the `postgres` user (initdb refuses
# root).
set -euo pipefail
cd "$(dirname "$0")/.."

cmd=${1:-}
given=${2:-/tmp/radmfa-pg-cluster}
# Root chowns, writes into and (on stop) deletes this directory, so one that another local
# account made or pointed elsewhere (a symlink planted in /tmp) is refused, not followed.
if [ -L "$given" ]; then
  echo "$given is a symbolic link; give the cluster a directory of its own" >&2
  exit 1
fi
dir=$(realpath -m "$given")
if [ -e "$dir" ]; then
  owner=$(stat -c %U "$dir")
  if [ ! -d "$dir" ] || { [ "$owner" != "$(id -un)" ] && [ "$owner" != postgres ]; }; then
    echo "$dir exists and is not a directory of ours (owner $owner); give another DIR" >&2
    exit 1
  fi
fi
# `|| true`: without PostgreSQL, ls fails, and under pipefail the script would stop here
# without the message below.
bin=$({ ls -d /usr/lib/postgresql/*/bin 2>/dev/null || true; } | sort -V | tail -n1)
[ -x "$bin/initdb" ] || { echo "PostgreSQL is not installed: run scripts/install-deps.sh" >&2; exit 1; }

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
# The superuser's password, made at initdb: with `trust` on 127.0.0.1 any account on the
# machine could connect as superuser and run programs as the server's user (COPY … TO
# PROGRAM). The local socket sits in the cluster's own directory, for its owner only.
url() { echo "postgres://postgres:$(cat "$dir/password")@127.0.0.1:$(cat "$dir/port")/radmfa?sslmode=disable"; }
running() { [ -f "$dir/data/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; }

case "$cmd" in
start)
  # A postmaster.pid left by a crash is not a running server: pg_ctl asks the process.
  if running; then url; exit 0; fi
  port=${3:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
  mkdir -p -m 700 "$dir"
  chmod 700 "$dir"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$dir"
  if [ ! -d "$dir/data" ]; then
    (umask 077; python3 -c 'import secrets; print(secrets.token_hex(16), end="")' >"$dir/password")
    [ "$(id -u)" -ne 0 ] || chown postgres: "$dir/password"
    as_pg "$bin/initdb" -D "$dir/data" --auth-local=peer --auth-host=scram-sha-256 \
      --pwfile="$dir/password" -U postgres -E UTF8 --locale=C >/dev/null
  fi
  echo "$port" >"$dir/port"
  extra=""
  [ "${FAST:-0}" = 1 ] && extra="-c fsync=off -c synchronous_commit=off"
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o \
    "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 $extra" start >/dev/null
  PGPASSWORD=$(cat "$dir/password") "$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres \
    -d postgres -c "CREATE DATABASE radmfa" 2>/dev/null || true
  url
  ;;
url)
  url
  ;;
stop)
  if running; then
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  fi
  rm -rf "$dir"
  ;;
*)
  sed -n '2,13p' "$0" >&2
  exit 2
  ;;
esac
