#!/usr/bin/env bash
# radmfa demo: a throwaway OpenLDAP directory with demo users, a TOTP token enrolled for
# alice, radmfa listening on 127.0.0.1:11812, and a full login through the challenge with
# radclient and a code from oathtool. Leaves everything running until Ctrl-C
# (or exits after the walk-through with --no-wait).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WAIT=1
case "${1:-}" in
  "") ;;
  --no-wait) WAIT=0 ;;
  *) echo "usage: scripts/demo.sh [--no-wait]   (--no-wait: stop after the walk-through)" >&2
     exit 2 ;;
esac

scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin"
echo "==> building radmfa (release)"
cargo build --release --quiet
# Where cargo put it: CARGO_TARGET_DIR or a build.target-dir may move target/.
TARGET=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
RADMFA="$TARGET/release/radmfa"
CONF="$ROOT/conf/demo.toml"
DATA="$ROOT/demo-data"
SECRET=demo-shared-secret
INLINE_SECRET=demo-inline-secret
LDAP_PORT=3890
RAD_PORT=11812

# A demo killed outright (kill -9, a closed terminal) leaves its slapd and radmfa running
# on the demo's ports: stop them by their pid files before starting afresh. Only a process
# that is this demo's (its command line names the demo's files): after a reboot the pid may
# be another radmfa's or slapd's.
ours() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF "$DATA/"; }
for pidfile in "$DATA/radmfa.pid" "$DATA/slapd/slapd.pid"; do
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [ -n "$pid" ] && grep -qE 'radmfa|slapd' "/proc/$pid/comm" 2>/dev/null && ours "$pid"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
done

# Ports another service holds would make the demo fail halfway, with a less clear message.
for p in "$LDAP_PORT/tcp" "$RAD_PORT/udp"; do
  proto=${p#*/}; port=${p%/*}
  if ss -Hln --"$proto" "sport = :$port" 2>/dev/null | grep -q .; then
    echo "port $port/$proto is in use (by: $(ss -Hlnp --"$proto" "sport = :$port" 2>/dev/null | grep -o 'users:(("[^"]*' | head -1 | cut -d'"' -f2)); stop that first" >&2
    exit 1
  fi
done

# Everything the demo writes is for this account only: enroll.txt holds alice's seed.
umask 077
rm -rf "$DATA"; mkdir -p "$DATA/slapd/db"

# The config runs from a copy next to the data that only this account may read: it holds
# the demo's shared secrets, and radmfa warns about secrets in a file every account can
# read. Its relative paths (../demo-data/... from conf/) are made plain names there, so
# that what radmfa prints of them ("created a new seed key in …") reads as the file's
# path and not demo-data/../demo-data/.
# Step 3 speaks to radmfa over IPv6 loopback. A machine (or container) without ::1 runs the
# demo on IPv4 alone: the same config less the [::1] listener.
IPV6=1
if ! grep -q '^00000000000000000000000000000001 ' /proc/net/if_inet6 2>/dev/null; then
  IPV6=0
  echo "==> no IPv6 loopback here: radmfa listens on 127.0.0.1 only, and the inline step is skipped"
fi
(umask 077
 if [ "$IPV6" = 1 ]; then cat "$CONF"; else sed 's/, "\[::1\]:11812"//' "$CONF"; fi \
   | sed 's#"\.\./demo-data/#"#' > "$DATA/demo.toml")
CONF="$DATA/demo.toml"
cleanup() {
  local pids=()
  for f in "$DATA/radmfa.pid" "$DATA/slapd/slapd.pid"; do
    [ -f "$f" ] && pids+=("$(cat "$f")")
  done
  ((${#pids[@]})) || return 0
  kill "${pids[@]}" 2>/dev/null || true
  # Gone before the script ends, so a demo started right after finds its ports free.
  for _ in $(seq 50); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 1 ] || break
    sleep 0.1
  done
  rm -f "$DATA/radmfa.pid" "$DATA/slapd/slapd.pid"
}
trap cleanup EXIT

echo "==> starting a throwaway OpenLDAP directory on 127.0.0.1:$LDAP_PORT"
cat > "$DATA/slapd/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile $DATA/slapd/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 104857600
suffix "dc=example,dc=org"
rootdn "cn=admin,dc=example,dc=org"
rootpw $(slappasswd -s adminpw)
directory $DATA/slapd/db
index objectClass,uid eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
CONF
user() { # uid given sn password mobile
  cat <<LDIF
dn: uid=$1,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: $1
cn: $2 $3
givenName: $2
sn: $3
displayName: $2 $3
mail: $1@example.org
mobile: $5
userPassword: $(slappasswd -s "$4")

LDIF
}
{
  printf 'dn: dc=example,dc=org\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n'
  printf 'dn: ou=people,dc=example,dc=org\nobjectClass: organizationalUnit\nou: people\n\n'
  user alice Alice Example alice-password "+15550100001"
  user bob Bob Example bob-password "+15550100002"
} > "$DATA/slapd/users.ldif"
slapadd -q -f "$DATA/slapd/slapd.conf" -l "$DATA/slapd/users.ldif"
slapd -f "$DATA/slapd/slapd.conf" -h "ldap://127.0.0.1:$LDAP_PORT/"
up=0
for _ in $(seq 50); do
  ldapwhoami -x -H "ldap://127.0.0.1:$LDAP_PORT/" -D uid=alice,ou=people,dc=example,dc=org \
    -w alice-password >/dev/null 2>&1 && { up=1; break; }
  sleep 0.1
done
[ "$up" = 1 ] || { echo "slapd did not answer on 127.0.0.1:$LDAP_PORT within 5 s" >&2; exit 1; }
echo "    users: alice / alice-password (TOTP enrolled below), bob / bob-password (no token)"

echo "==> enrolling a TOTP token for alice"
"$RADMFA" --config "$CONF" user enroll-totp alice | tee "$DATA/enroll.txt"
# The demo plays the phone's part with oathtool, so it keeps the seed printed above.
SEED=$(sed -nE 's/^Secret: ([A-Z2-7]+)$/\1/p' "$DATA/enroll.txt")

echo "==> starting radmfa on 127.0.0.1:$RAD_PORT"
"$RADMFA" --config "$CONF" serve > "$DATA/radmfa.log" 2>&1 &
echo $! > "$DATA/radmfa.pid"
up=0
for _ in $(seq 50); do grep -q "listening" "$DATA/radmfa.log" && { up=1; break; }; sleep 0.1; done
[ "$up" = 1 ] || { echo "radmfa did not start within 5 s; its log:" >&2; tail -20 "$DATA/radmfa.log" >&2; exit 1; }

# Bold headings on a terminal only (plain text when the output is piped or logged).
if [ -t 1 ]; then say() { printf '\n\033[1m%s\033[0m\n' "$*"; }; else say() { printf '\n%s\n' "$*"; }; fi
say "1. Password (round 1): radmfa checks it against LDAP and answers Access-Challenge"
echo "   \$ echo 'User-Name = alice, User-Password = alice-password, Message-Authenticator = 0x00' | radclient -x 127.0.0.1:$RAD_PORT auth $SECRET"
OUT=$(echo 'User-Name = "alice", User-Password = "alice-password", Message-Authenticator = 0x00' \
  | radclient -x -r 1 -t 3 "127.0.0.1:$RAD_PORT" auth "$SECRET" 2>&1 || true)
echo "$OUT" | sed 's/^/   /'
STATE=$(echo "$OUT" | sed -nE 's/.*State = (0x[0-9a-f]+).*/\1/p' | head -1)
[ -n "$STATE" ] || { echo "no Access-Challenge; see $DATA/radmfa.log" >&2; exit 1; }

T_CODE=$(date +%s)
CODE=$(oathtool --totp -b "$SEED" -N "@$T_CODE")
# The last time step the walk-through uses; a code of that step or an earlier one is
# refused as a replay, so the reader's own first login works from the step after it.
LAST_STEP=$(( T_CODE / 30 ))
say "2. Code (round 2): the code from the app (here oathtool --totp -b $SEED → $CODE) with the State"
echo "   \$ echo 'User-Name = alice, User-Password = $CODE, State = $STATE, Message-Authenticator = 0x00' | radclient -x 127.0.0.1:$RAD_PORT auth $SECRET"
OUT=$(echo "User-Name = \"alice\", User-Password = \"$CODE\", State = $STATE, Message-Authenticator = 0x00" \
  | radclient -x -r 1 -t 3 "127.0.0.1:$RAD_PORT" auth "$SECRET" 2>&1 || true)
echo "$OUT" | sed 's/^/   /'
echo "$OUT" | grep -q "Access-Accept" || { echo "login failed; see $DATA/radmfa.log" >&2; exit 1; }

T_NEXT=$(( $(date +%s) + 30 ))
NEXT=$(oathtool --totp -b "$SEED" -N "@$T_NEXT")
if [ "$IPV6" = 1 ]; then
LAST_STEP=$(( T_NEXT / 30 ))
say "3. Inline (one round): password,code in one field, for NAS boxes that cannot prompt"
echo "   (the demo config treats requests over IPv6 loopback as such a NAS; the code is the"
echo "   next step's, $NEXT, because the code from step 2 has been used)"
echo "   \$ echo 'User-Name = alice, User-Password = \"alice-password,$NEXT\", Message-Authenticator = 0x00' | radclient -x [::1]:$RAD_PORT auth $INLINE_SECRET"
OUT=$(echo "User-Name = \"alice\", User-Password = \"alice-password,$NEXT\", Message-Authenticator = 0x00" \
  | radclient -x -r 1 -t 3 "[::1]:$RAD_PORT" auth "$INLINE_SECRET" 2>&1 || true)
echo "$OUT" | grep -E "Received|Reply-Message" | sed 's/^/   /'
echo "$OUT" | grep -q "Access-Accept" || { echo "inline login failed; see $DATA/radmfa.log" >&2; exit 1; }
else
say "3. Inline (one round): skipped, it needs IPv6 loopback (::1)"
fi

say "4. The audit log"
"$RADMFA" --config "$CONF" audit --limit 5

if [ "$WAIT" = 0 ]; then
  say "Walk-through done (--no-wait): radmfa and slapd stop now."
  exit 0
fi
say "Demo is up."
cat <<TXT
  radmfa:  127.0.0.1:$RAD_PORT (shared secret "$SECRET"), log in $DATA/radmfa.log
  LDAP:    ldap://127.0.0.1:$LDAP_PORT (alice / alice-password, bob / bob-password)
  Config:  ${CONF#$ROOT/} (a private copy of conf/demo.toml, made at each start)

  Try it yourself: scan alice's QR code above with an authenticator app (or use
  oathtool --totp -b $SEED), then repeat steps 1 and 2.
  Each code is accepted once, and the walk-through used the codes shown until
  $(date -d "@$(( LAST_STEP * 30 + 29 ))" +%H:%M:%S): use one shown from $(date -d "@$(( (LAST_STEP + 1) * 30 ))" +%H:%M:%S) on.
TXT
if [ "$IPV6" = 1 ]; then
cat <<TXT
  Inline mode (password,code in one field) is configured for requests over IPv6 loopback:
    echo "User-Name = alice, User-Password = \"alice-password,\$(oathtool --totp -b $SEED)\", Message-Authenticator = 0x00" | radclient -x [::1]:$RAD_PORT auth $INLINE_SECRET
TXT
fi
cat <<TXT
  (Between logins, wait for the next 30-second code: a used one gets Access-Reject.)
  Admin: $RADMFA --config $CONF user list      (also: user show alice, audit)
TXT
say "Press Ctrl-C to stop radmfa and slapd."
wait "$(cat "$DATA/radmfa.pid")"
