#!/usr/bin/env bash
# Real replies for the message_authenticator target, in fuzz/corpus/message_authenticator/:
# FreeRADIUS (Debian's `freeradius`) answering radclient with an Access-Accept, an
# Access-Reject and an Access-Challenge, shared secret "fuzz-secret", captured by a UDP
# relay between the two. Each once signed (a Message-Authenticator, which FreeRADIUS before
# 3.2.5 adds only when told to: `update reply { &Message-Authenticator := 0x00 }`, here
# before the other reply attributes) and once not; and an Access-Accept signed with the
# Message-Authenticator after the others (told to after `files`), which only the lenient
# reply check takes. The relay keeps a reply only if its Response Authenticator (and Message-Authenticator,
# if any) verify against the request it answers. Needs freeradius and radclient
# (scripts/install-deps.sh); run by make-seeds.sh, or alone.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=fuzz/corpus/message_authenticator
mkdir -p "$OUT"
DIR=$(mktemp -d)
FR=""
RELAY=""
trap '[ -z "$FR" ] || kill "$FR" 2>/dev/null; [ -z "$RELAY" ] || kill "$RELAY" 2>/dev/null; rm -rf "$DIR"' EXIT
mkdir -p "$DIR/log" "$DIR/run" "$DIR/out"

free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SIGNED=$(free_port)
UNSIGNED=$(free_port)
LATE=$(free_port)

cat >"$DIR/users" <<'EOF'
alice	Cleartext-Password := "correct horse"
	Reply-Message = "Welcome, alice", Session-Timeout = 3600, Class = 0x73746166662d76706e
carol	Cleartext-Password := "pw", Response-Packet-Type := Access-Challenge
	Reply-Message = "Enter the code from your app", State = 0x00112233445566778899aabbccddeeff
EOF

server() { # name port sign(first|last|no)
  local ma=$'\t\tupdate reply {\n\t\t\t&Message-Authenticator := 0x00\n\t\t}' first="" last=""
  [ "$3" = first ] && first=$ma
  [ "$3" = last ] && last=$ma
  cat <<EOF
server $1 {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = $2
		clients = seeds
	}
	authorize {
$first
		files
$last
		pap
	}
	authenticate {
		Auth-Type PAP {
			pap
		}
	}
}
EOF
}

cat >"$DIR/radiusd.conf" <<EOF
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = \${exec_prefix}/sbin
logdir = $DIR/log
raddbdir = $DIR
radacctdir = $DIR/log
name = freeradius
confdir = \${raddbdir}
modconfdir = \${confdir}/mods-config
run_dir = $DIR/run
db_dir = $DIR
libdir = /usr/lib/freeradius
pidfile = \${run_dir}/\${name}.pid
correct_escapes = true
max_request_time = 30
cleanup_delay = 0
max_requests = 1024
hostname_lookups = no
log {
	destination = stdout
}
security {
	max_attributes = 200
	reject_delay = 0
	status_server = yes
}
clients seeds {
	client local {
		ipaddr = 127.0.0.1
		secret = fuzz-secret
	}
}
modules {
	files {
		filename = $DIR/users
	}
	pap {
	}
}
$(server signed "$SIGNED" first)
$(server unsigned "$UNSIGNED" no)
$(server late "$LATE" last)
EOF

freeradius -X -d "$DIR" >"$DIR/log/stdout" 2>&1 &
FR=$!
for _ in $(seq 200); do
  grep -q "Ready to process requests" "$DIR/log/stdout" && break
  kill -0 "$FR" 2>/dev/null || { cat "$DIR/log/stdout" >&2; exit 1; }
  sleep 0.1
done
grep -q "Ready to process requests" "$DIR/log/stdout" || { cat "$DIR/log/stdout" >&2; exit 1; }

# The relay: one port in front of each FreeRADIUS port; every reply checked against its
# request and saved as <signed|unsigned|late>-<accept|reject|challenge>.
python3 - "$DIR" "$SIGNED" "$UNSIGNED" "$LATE" <<'PY' &
import hashlib, hmac, os, select, socket, sys
d = sys.argv[1]
ports = {"signed": int(sys.argv[2]), "unsigned": int(sys.argv[3]), "late": int(sys.argv[4])}
SECRET = b"fuzz-secret"
NAMES = {2: "accept", 3: "reject", 11: "challenge"}

def check(req, rep):
    rep = rep[: int.from_bytes(rep[2:4], "big")]
    work = bytearray(rep)
    work[4:20] = req[4:20]
    assert hashlib.md5(bytes(work) + SECRET).digest() == rep[4:20], "Response Authenticator"
    i, ma = 20, None
    while i < len(rep):
        if rep[i] == 80:
            ma = i + 2
        i += rep[i + 1]
    assert i == len(rep), "attribute lengths"
    if ma is not None:
        work[ma : ma + 16] = bytes(16)
        mac = hmac.new(SECRET, bytes(work), "md5").digest()
        assert mac == rep[ma : ma + 16], "Message-Authenticator"
    return rep, ma is not None

front = {}
for label in ports:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    front[s] = label
    open(os.path.join(d, "relay-" + label), "w").write(str(s.getsockname()[1]))
while True:
    ready, _, _ = select.select(list(front), [], [], 30)
    if not ready:
        break
    for s in ready:
        req, client = s.recvfrom(5000)
        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        up.settimeout(3)
        up.sendto(req, ("127.0.0.1", ports[front[s]]))
        rep = up.recv(5000)
        rep, signed = check(req, rep)
        assert signed == (front[s] != "unsigned"), "signed only where told to"
        name = "%s-%s" % (front[s], NAMES[rep[0]])
        open(os.path.join(d, "out", name), "wb").write(rep)
        s.sendto(rep, client)
PY
RELAY=$!
for label in signed unsigned late; do
  for _ in $(seq 100); do [ -s "$DIR/relay-$label" ] && break; sleep 0.05; done
done

for label in signed unsigned; do
  to=127.0.0.1:$(cat "$DIR/relay-$label")
  rc() { echo "$1" | radclient -r 1 -t 3 "$to" auth fuzz-secret >>"$DIR/log/radclient" 2>&1 || true; }
  rc 'User-Name = "alice", User-Password = "correct horse", Proxy-State = 0x6161, Message-Authenticator = 0x00'
  rc 'User-Name = "mallory", User-Password = "guess", Proxy-State = 0x6262, Message-Authenticator = 0x00'
  rc 'User-Name = "carol", User-Password = "pw", NAS-Identifier = "vpn-gw", Message-Authenticator = 0x00'
done
to=127.0.0.1:$(cat "$DIR/relay-late")
rc 'User-Name = "alice", User-Password = "correct horse", Message-Authenticator = 0x00'

n=0
for seed in signed-accept signed-reject signed-challenge unsigned-accept unsigned-reject \
  unsigned-challenge late-accept; do
  f=$DIR/out/$seed
  if [ ! -s "$f" ]; then
    echo "no $seed reply captured; radclient said:" >&2
    cat "$DIR/log/radclient" >&2
    exit 1
  fi
  cp "$f" "$OUT/seed-reply-$seed"
  n=$((n + 1))
done
echo "captured $n replies from $(freeradius -v | head -1 | sed 's/^radiusd: //')"
