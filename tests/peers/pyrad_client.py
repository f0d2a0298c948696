#!/usr/bin/env python3
"""One RADIUS request with pyrad (a client nobody on radmfa wrote), result as JSON.

enforce_ma=True: pyrad drops a reply without a valid Message-Authenticator (or one signed
with another secret) and goes on waiting, so such a reply shows up here as "timeout", as
silence does. A test that expects silence should wait past the server's deadline and check
the server's log for why it did not answer.
"""
import argparse
import json
import os
import sys

import pyrad.packet
from pyrad.client import Client, Timeout
from pyrad.dictionary import Dictionary

CODES = {
    pyrad.packet.AccessAccept: "Access-Accept",
    pyrad.packet.AccessReject: "Access-Reject",
    pyrad.packet.AccessChallenge: "Access-Challenge",
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--state", help="hex")
    ap.add_argument("--proxy-state", action="append", default=[], help="hex, repeatable")
    ap.add_argument("--calling-station-id")
    ap.add_argument("--called-station-id")
    ap.add_argument("--nas-port-type", type=int)
    ap.add_argument("--nas-ipv6-address")
    ap.add_argument("--nas-ip-address")
    ap.add_argument("--nas-identifier")
    ap.add_argument("--bind", help="source address, to act as another NAS")
    ap.add_argument("--status", action="store_true", help="send Status-Server")
    # Past radmfa's default request deadline (4 s): on a loaded machine a reply can come
    # after 3 s, and a client that gave up sooner reads a slow answer as none at all.
    ap.add_argument("--timeout", type=float, default=5)
    a = ap.parse_args()

    here = os.path.dirname(os.path.abspath(__file__))
    c = Client(server=a.host, authport=a.port, secret=a.secret.encode(),
               dict=Dictionary(os.path.join(here, "dictionary")), enforce_ma=True)
    c.timeout = a.timeout
    c.retries = 1
    if a.bind:
        c.bind((a.bind, 0))
    if a.status:
        req = c.CreateAuthPacket(code=pyrad.packet.StatusServer)
    else:
        req = c.CreateAuthPacket(code=pyrad.packet.AccessRequest, User_Name=a.user)
        if a.password is not None:
            req["User-Password"] = req.PwCrypt(a.password)
        if a.state:
            req["State"] = bytes.fromhex(a.state)
        if a.calling_station_id:
            req["Calling-Station-Id"] = a.calling_station_id
        if a.called_station_id:
            req["Called-Station-Id"] = a.called_station_id
        if a.nas_port_type is not None:
            req["NAS-Port-Type"] = a.nas_port_type
        if a.nas_ipv6_address:
            req["NAS-IPv6-Address"] = a.nas_ipv6_address
        if a.nas_ip_address:
            req["NAS-IP-Address"] = a.nas_ip_address
        if a.nas_identifier:
            req["NAS-Identifier"] = a.nas_identifier
        for ps in a.proxy_state:
            req.AddAttribute("Proxy-State", bytes.fromhex(ps))
    try:
        reply = c.SendPacket(req)
    except Timeout:
        print(json.dumps({"code": "timeout"}))
        return 0
    out = {
        "code": CODES.get(reply.code, str(reply.code)),
        "state": reply["State"][0].hex() if "State" in reply else None,
        "messages": list(reply["Reply-Message"]) if "Reply-Message" in reply else [],
        "proxy_states": [p.hex() for p in reply["Proxy-State"]] if "Proxy-State" in reply else [],
        "first_attribute": reply.raw_packet[20] if reply.raw_packet and len(reply.raw_packet) > 20 else None,
        # Every attribute as pyrad decodes it with the dictionary beside this script:
        # octets as hex, the rest as text.
        "attributes": {
            str(k): [v.hex() if isinstance(v, bytes) else str(v) for v in reply[k]]
            for k in reply.keys()
        },
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
