#!/usr/bin/env python3
"""Timing of wrong-password refusals, by group of user names, against a running server.

Each round sends one Access-Request with a wrong password for a name of every group, in a
shuffled order, from one socket, and times the reply. Prints each group's quantiles and how
often one of its replies is slower than one of the first group's (0.50: not told apart).

  .venv/bin/python bench/enumeration.py --port 1812 --secret S --rounds 1500 \\
      --group unknown='ghost{i}' --group no-token=eve --group token=carol

`{i}` in a name is the round number (a new unknown name each time). Signed with
Message-Authenticator, as radmfa requires; --bind sends from another address (another NAS).
"""
import argparse
import bisect
import os
import random
import time

import pyrad.packet
from pyrad.client import Client
from pyrad.dictionary import Dictionary


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1812)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--bind")
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--password", default="wrong-password")
    ap.add_argument("--group", action="append", required=True, help="LABEL=NAME[,NAME...]")
    a = ap.parse_args()
    groups = []
    for g in a.group:
        label, names = g.split("=", 1)
        groups.append((label, names.split(",")))
    here = os.path.dirname(os.path.abspath(__file__))
    dictionary = Dictionary(os.path.join(here, "..", "tests", "peers", "dictionary"))
    c = Client(server=a.host, authport=a.port, secret=a.secret.encode(), dict=dictionary,
               enforce_ma=True)
    c.timeout, c.retries = 3, 1
    if a.bind:
        c.bind((a.bind, 0))
    times = {label: [] for label, _ in groups}
    for i in range(a.rounds):
        order = list(groups)
        random.shuffle(order)
        for label, names in order:
            name = random.choice(names).replace("{i}", str(i))
            req = c.CreateAuthPacket(code=pyrad.packet.AccessRequest, User_Name=name)
            req["User-Password"] = req.PwCrypt(a.password)
            req.add_message_authenticator()
            t = time.perf_counter()
            reply = c.SendPacket(req)
            took = (time.perf_counter() - t) * 1000
            if reply.code != pyrad.packet.AccessReject:
                raise SystemExit(f"{name}: not an Access-Reject (code {reply.code})")
            times[label].append(took)
    first = sorted(times[groups[0][0]])
    for label, _ in groups:
        v = sorted(times[label])
        q = lambda f: v[int(f * (len(v) - 1))]
        slower = sum(bisect.bisect_left(first, x) for x in v) / (len(v) * len(first))
        print(f"{label:12s} p10 {q(.1):.3f}  p25 {q(.25):.3f}  median {q(.5):.3f}  "
              f"p75 {q(.75):.3f} ms  slower than {groups[0][0]}: {slower:.2f}")


if __name__ == "__main__":
    main()
