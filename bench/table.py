#!/usr/bin/env python3
"""Prints the side-by-side table from bench/run.sh's JSON lines (argv[1]).

Each load line has label, server, phase, replies_per_sec, ok_per_sec, expected, sent,
skipped, step_waits, timeouts, p50_ms, p90_ms, p99_ms, max_ms; single measurements (RSS, pending counts) have
phase and value. Rates and ratios count only replies of the expected code (ok_per_sec): a
Reject where an Accept was due is not throughput.
"""
import json
import sys


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    load = {(r["server"], r["label"], r["phase"]): r for r in rows if "replies_per_sec" in r}
    notes = {(r["server"], r["label"]): r["value"] for r in rows if "value" in r}

    def ok(r):
        # Older result files have no ok_per_sec.
        return r.get("ok_per_sec", r["replies_per_sec"])

    def cell(server, label, phase):
        r = load.get((server, label, phase))
        if not r:
            return "-", None
        # A code repeating one the same user sent moments before is rightly refused by a
        # server that keeps used steps (src/client/load.rs, repeats_earlier): said apart.
        repeated = r.get("repeated_codes", 0)
        bad = r["sent"] - r["expected"] - repeated
        flag = f" ({bad} not as expected, not counted)" if bad else ""
        if repeated:
            flag += f" ({repeated} repeated codes, rightly refused, not counted)"
        # Requests never sent (no TOTP step left, or round 2 out of time) are not in "sent".
        if r.get("skipped"):
            flag += f" ({r['skipped']} skipped)"
        # The users had used every TOTP step the server would take: the rate is the
        # generator's users', not the server's (the time includes the idle wait).
        if r.get("step_waits"):
            flag += f" ({r['step_waits']} waited for a TOTP step: too few users)"
        if r.get("timeouts"):
            # Percentiles leave timeouts out, so they would look better than they were.
            lat = f"{r['timeouts']} timeouts"
        elif r.get("p50_ms") is None:
            # No expected reply: no latency (the JSON says null rather than 0.0).
            lat = "no expected reply"
        else:
            lat = f"p50 {r['p50_ms']:.1f} p99 {r['p99_ms']:.1f} ms"
        return f"{ok(r):,.0f}/s  {lat}{flag}", ok(r)

    raw = load.get(("slapd", "ldap-bind", "ldap-bind"))
    raw_rate = ok(raw) if raw else None
    workloads = [
        ("Status-Server", "status", "status", None),
        ("inline (password,code)", "inline", "inline", 1.5),
        ("two-round: round 1", "two-round", "round1", 1.5),
        ("two-round: round 2", "two-round", "round2", 2.0),
        ("reject (wrong password)", "reject", "reject", None),
    ]
    pending = sorted({int(l.split("-")[1]) for (_, l, _) in load if l.startswith("pending-")})
    for p in pending:
        workloads.append((f"round 1, {p:,} pending", f"pending-{p}", "round1", None))

    print(f"| workload | radmfa | FreeRADIUS 3.2 | ratio | target |")
    print(f"|---|---|---|---|---|")
    for title, label, phase, target in workloads:
        a, ra = cell("radmfa", label, phase)
        b, rb = cell("freeradius", label, phase)
        ratio = f"{ra / rb:.2f}x" if ra and rb else "-"
        tgt = f">= {target}x" if target else ""
        if label.startswith("pending-"):
            reached = [notes.get((s, f"pending-at-{label[8:]}")) for s in ("radmfa", "freeradius")]
            title += " (reached: " + " / ".join("-" if x is None else f"{x:,}" for x in reached) + ")"
        print(f"| {title} | {a} | {b} | {ratio} | {tgt} |")

    if raw_rate:
        print()
        p50 = "-" if raw.get("p50_ms") is None else f"{raw['p50_ms']:.1f}"
        print(f"raw slapd simple binds, same concurrency: {raw_rate:,.0f}/s (p50 {p50} ms)")
        # The phase was named "ldap-bind" in both modes before the connect-bind mode had a
        # name of its own: older results files have that.
        cb = load.get(("slapd", "ldap-connect-bind", "ldap-connect-bind")) or load.get(
            ("slapd", "ldap-connect-bind", "ldap-bind")
        )
        if cb:
            # Successful binds only, as every other rate here (failed binds are no ceiling).
            print(f"raw slapd connect + bind + unbind per login: {ok(cb):,.0f}/s")
        for title, label, phase in [("inline", "inline", "inline"), ("round 1", "two-round", "round1")]:
            for server in ("radmfa", "freeradius"):
                r = load.get((server, label, phase))
                if r:
                    print(f"  {server} {title}: {100 * ok(r) / raw_rate:.0f}% of it"
                          + (" (target >= 70%)" if server == "radmfa" else ""))
    flat = [load.get(("radmfa", f"pending-{p}", "round1")) for p in pending]
    if len(flat) > 1 and flat[0] and flat[-1]:
        print(f"radmfa round 1 at {pending[-1]:,} pending vs {pending[0]:,}: "
              f"{100 * ok(flat[-1]) / ok(flat[0]):.0f}% (target >= 90%)")
    radsec = [(t, l, p) for t, l, p in [("Status-Server", "status", "status"),
                                         ("inline (password,code)", "inline", "inline"),
                                         ("two-round: round 1", "two-round", "round1"),
                                         ("two-round: round 2", "two-round", "round2")]
              if ("radmfa", f"radsec-{l}", p) in load]
    if radsec:
        print()
        print("| radmfa workload | UDP | RadSec (TLS) | RadSec / UDP |")
        print("|---|---|---|---|")
        for title, label, phase in radsec:
            a, ra = cell("radmfa", label, phase)
            b, rb = cell("radmfa", f"radsec-{label}", phase)
            ratio = f"{rb / ra:.2f}x" if ra and rb else "-"
            print(f"| {title} | {a} | {b} | {ratio} |")
    cpu = [(t, l) for t, l in [("Status-Server", "status"), ("inline", "inline"),
                               ("two-round (both rounds)", "two-round"), ("reject", "reject"),
                               ("RadSec Status-Server", "radsec-status"),
                               ("RadSec inline", "radsec-inline"),
                               ("RadSec two-round (both rounds)", "radsec-two-round")]
           + [(f"round 1, {p:,} pending", f"pending-{p}") for p in pending]
           if any((s, f"cpu-{l}") in notes for s in ("radmfa", "freeradius"))]
    if cpu:
        print()
        print("| CPU per reply (us, user + system) | radmfa | slapd under radmfa | FreeRADIUS | slapd under FreeRADIUS |")
        print("|---|---|---|---|---|")
        for title, label in cpu:
            vals = [notes.get((s, f"{p}cpu-{label}")) for s in ("radmfa", "freeradius")
                    for p in ("", "slapd-")]
            print(f"| {title} | " + " | ".join("-" if v is None else f"{v}" for v in vals) + " |")
    print()
    print("(start: users enrolled, nothing served; after-workloads: the high-water mark of the")
    print("runs above; pending-N: a restarted server with N challenges outstanding)")
    print()
    print("| resident memory (MiB) | radmfa | FreeRADIUS |")
    print("|---|---|---|")
    labels = ["rss-start", "rss-after-workloads"] + [f"rss-pending-{p}" for p in pending]
    for label in labels:
        vals = [notes.get((s, label)) for s in ("radmfa", "freeradius")]
        print(f"| {label[4:]} | " + " | ".join("-" if v is None else f"{v / 1024:.1f}" for v in vals) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
