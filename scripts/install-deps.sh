#!/usr/bin/env bash
# Installs what radmfa's tests and demo need on Debian 12: a Rust toolchain (rustup's
# stable, if there is no cargo or it is older than Cargo.toml's rust-version), the
# peers nobody on this project wrote (OpenLDAP slapd, FreeRADIUS and its radclient,
# oathtool, pam_radius_auth + pamtester) and a Python venv with pyrad, python-pskc and
# prometheus-client. Safe to run again; installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(slapd ldap-utils freeradius-utils oathtool libpam-radius-auth pamtester
      zbar-tools python3-venv ca-certificates openssl postgresql
      systemd radsecproxy tinyproxy freeradius curl build-essential pkg-config iproute2
      procps e2fsprogs util-linux mount)
# iproute2: `ss`, with which the demo checks its ports are free; systemd-analyze checks
# conf/radmfa.service; radsecproxy: the RadSec peer; tinyproxy: the
# egress proxy between radmfa and the SMS/call provider stand-in; freeradius: the upstream
# RADIUS server of primary = "upstream" clients; procps: `kill`, with which the tests send
# radmfa SIGTERM and SIGHUP (minimal images leave it out); e2fsprogs, util-linux and
# mount: mkfs.ext4, fsfreeze and a loop mount, with which a test freezes the store's file
# system under a running server.
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "==> installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  # slapd's debconf would ask for a domain; the tests run their own slapd from a temp dir.
  # Through env: sudo's env_reset would drop a DEBIAN_FRONTEND set before it.
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The packaged slapd service is not used; stop it so it does not hold port 389 or CPU.
# The same for radsecproxy's, tinyproxy's and FreeRADIUS's packaged services (FreeRADIUS's
# would hold port 1812): the tests run their own. Only the services of packages installed
# just now: one that was there before may be someone's real directory or RADIUS server.
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
# Disabled too, so a reboot does not bring them back listening on every interface. Where
# systemd is not PID 1 (containers), the packages' init scripts started them: stop those
# with `service`.
for svc in slapd radsecproxy tinyproxy freeradius; do
  [[ " ${missing[*]} " == *" $svc "* ]] || continue
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || $SUDO systemctl stop "$svc" || true
  elif command -v service >/dev/null && [ -x "/etc/init.d/$svc" ]; then
    $SUDO service "$svc" stop >/dev/null 2>&1 || true
  fi
done

# Rust: Debian 12's rustc (1.63) is older than the crate needs (rust-version in
# Cargo.toml), so a machine without cargo gets rustup's stable toolchain, for this user.
export PATH="$HOME/.cargo/bin:$PATH"
need_rust=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
# (Under pipefail a missing rustc would fail the assignment, and set -e end the script.)
have_rust=$( { rustc --version 2>/dev/null || true; } | awk '{print $2}')
if ! command -v cargo >/dev/null || [ -z "$have_rust" ] ||
   [ "$(printf '%s\n%s\n' "$need_rust" "$have_rust" | sort -V | head -1)" != "$need_rust" ]; then
  # No cargo, or an older one (Debian's) than rust-version: rustup's goes first in PATH.
  echo "==> installing the Rust toolchain (rustup, stable, with rustfmt and clippy; found rustc ${have_rust:-none}, need $need_rust)"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
    | sh -s -- -y --profile minimal --default-toolchain stable -c rustfmt -c clippy
  echo "==> Rust installed in ~/.cargo/bin; for cargo in this shell: . \"\$HOME/.cargo/env\""
fi
command -v cargo >/dev/null || { echo "missing after install: cargo" >&2; exit 1; }
# A toolchain already there may lack the checkers the test command runs (rustup's minimal
# profile has neither); `cargo fmt` and `cargo clippy` come with rustup's components.
if command -v rustup >/dev/null &&
   ! { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1; then
  echo "==> adding rustfmt and clippy to the Rust toolchain"
  rustup component add rustfmt clippy
fi
have_rust=$(rustc --version | awk '{print $2}')
[ "$(printf '%s\n%s\n' "$need_rust" "$have_rust" | sort -V | head -1)" = "$need_rust" ] ||
  { echo "rustc $have_rust is older than rust-version $need_rust (rustup update stable?)" >&2; exit 1; }

# The tests need pyrad's enforce_ma (Message-Authenticator checks on replies, pyrad 2.5+):
# an older .venv is rebuilt, not kept.
venv_ok='import inspect, pskc, prometheus_client, pyrad.client
assert "enforce_ma" in inspect.signature(pyrad.client.Client.__init__).parameters'
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "$venv_ok" 2>/dev/null; then
  echo "==> creating .venv with pyrad, python-pskc and prometheus-client"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  # Note: the PSKC library is "python-pskc" (imported as pskc); "pskc" on PyPI is unrelated.
  # prometheus-client: Prometheus's own parser reads radmfa's /metrics in tests/metrics.rs.
  # The versions the suite was last run with.
  .venv/bin/pip install -q 'pyrad==2.6.0' 'python-pskc==1.4' 'prometheus-client==0.26.0'
  .venv/bin/python -c "$venv_ok" || { echo ".venv: pyrad without enforce_ma" >&2; exit 1; }
fi
# PostgreSQL's packaged service is not needed: the tests initdb a private cluster on a free
# port in a temp dir (tests/common/postgres.rs), so it may stay stopped or run, either way.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "missing after install: initdb" >&2; exit 1; }
for c in slapd slapadd slappasswd ldapwhoami radclient oathtool pamtester systemd-analyze radsecproxy tinyproxy freeradius kill; do
  # type -P: the program on PATH, not a shell builtin (bash has its own kill).
  type -P "$c" >/dev/null || [ -x "/usr/sbin/$c" ] || { echo "missing after install: $c" >&2; exit 1; }
done
echo "==> dependencies ready"
