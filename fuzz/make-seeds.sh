#!/usr/bin/env bash
# Regenerates the seed corpora in fuzz/corpus/<target>/seed-*: real Access-Requests and
# Status-Server probes captured off loopback from FreeRADIUS's radclient, pyrad and
# pam_radius_auth (shared secret "fuzz-secret", the one the fuzz bodies decode with), the
# RFC 2865 §7.1 example, and the project's sample configs; then FreeRADIUS's replies
# (fuzz/make-reply-seeds.sh). Needs scripts/install-deps.sh (radclient, freeradius, the pyrad
# venv, pamtester and libpam-radius-auth; root for /etc/pam.d).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${RADMFA_TEST_PYTHON:-$PWD/.venv/bin/python}
OUT=fuzz/corpus
mkdir -p $OUT/packet_roundtrip $OUT/message_authenticator $OUT/builder_roundtrip $OUT/config

# A UDP sink on a free port that saves every datagram it receives, without answering.
CAP=$(mktemp -d)
SVC=""
# Whatever stops the script (an error, Ctrl-C), the capture directory and the PAM service
# file written below go.
trap '[ -z "$SVC" ] || rm -f "/etc/pam.d/$SVC"; rm -rf "$CAP"' EXIT
python3 - "$CAP" <<'PY' &
import socket, sys, os
d = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
open(os.path.join(d, "port"), "w").write(str(s.getsockname()[1]))
s.settimeout(8)
n = 0
try:
    while True:
        data, _ = s.recvfrom(5000)
        open(os.path.join(d, "pkt-%03d" % n), "wb").write(data)
        n += 1
except socket.timeout:
    pass
PY
SINK=$!
while [ ! -s "$CAP/port" ]; do sleep 0.05; done
PORT=$(cat "$CAP/port")
rc() { echo "$1" | radclient -r 1 -t 0.2 -q "127.0.0.1:$PORT" "$2" fuzz-secret >/dev/null 2>&1 || true; }
rc 'User-Name = "alice", User-Password = "correct horse", Message-Authenticator = 0x00' auth
rc 'User-Name = "alice", User-Password = "123456", State = 0x00112233445566778899aabbccddeeff, Message-Authenticator = 0x00' auth
rc 'User-Name = "bob", User-Password = "pw", NAS-Identifier = "vpn-gw", NAS-IP-Address = 10.0.0.1, Calling-Station-Id = "192.0.2.7", NAS-Port-Type = Virtual, Proxy-State = 0x6161, Message-Authenticator = 0x00' auth
rc 'User-Name = "legacy", User-Password = "no-ma"' auth
rc 'User-Name = "chap", CHAP-Password = 0x01020304050607080910111213141516, Message-Authenticator = 0x00' auth
rc 'Message-Authenticator = 0x00' status
if [ -x "$PY" ]; then
  "$PY" - "$PORT" <<'PY' || true
import sys
from pyrad.client import Client, Timeout
from pyrad.dictionary import Dictionary
c = Client(server="127.0.0.1", authport=int(sys.argv[1]), secret=b"fuzz-secret",
           dict=Dictionary("tests/peers/dictionary"))
c.timeout = 0.2; c.retries = 1
req = c.CreateAuthPacket(User_Name="carol")
req["User-Password"] = req.PwCrypt("a password of more than sixteen octets")
req["NAS-Identifier"] = "pyrad"
try:
    c.SendPacket(req)
except Timeout:
    pass
PY
fi
# pam_radius_auth (libpam-radius-auth) through pamtester, as a Linux login over SSH sends
# it: NAS-IP-Address, NAS-Identifier, NAS-Port, NAS-Port-Type Virtual, Service-Type, and the
# remote host (PAM_RHOST) as Calling-Station-Id. PAM reads services from /etc/pam.d only,
# so this part needs root.
if command -v pamtester >/dev/null && [ -w /etc/pam.d ]; then
  SVC=radmfa-seeds-$$
  echo "127.0.0.1:$PORT fuzz-secret 1" >"$CAP/pam_radius.conf"
  echo "auth required pam_radius_auth.so conf=$CAP/pam_radius.conf" >"/etc/pam.d/$SVC"
  echo "a pam password" |
    timeout 10 pamtester -I rhost=192.0.2.9 "$SVC" dave authenticate >/dev/null 2>&1 || true
  rm -f "/etc/pam.d/$SVC" "$CAP/pam_radius.conf"
  SVC=""
fi
wait $SINK || true
i=0
for f in "$CAP"/pkt-*; do
  [ -e "$f" ] || continue
  for t in packet_roundtrip message_authenticator; do cp "$f" "$OUT/$t/seed-capture-$i"; done
  i=$((i + 1))
done
# RFC 2865 §7.1 (secret xyzzy5461: decodes only as framing, a useful near miss).
printf '010000380f403f9473978057bd83d5cb98f4227a01066e656d6f02120dbe708d93d413ce3196e43f782a0aee0406c0a80110050600000003' |
  xxd -r -p >"$OUT/packet_roundtrip/seed-rfc2865-7.1"
cp "$OUT/packet_roundtrip/seed-rfc2865-7.1" "$OUT/message_authenticator/"
printf '\x05\x07alice-and-a-password-of-some-length' >"$OUT/builder_roundtrip/seed-1"
for f in conf/*.toml conf/invalid/*.toml; do
  [ -e "$f" ] && cp "$f" "$OUT/config/seed-$(echo "$f" | tr '/' '-')"
done
echo "captured $i datagrams; seeds in $OUT"
fuzz/make-reply-seeds.sh
