#!/usr/bin/env python3
"""Builds and runs the test binaries of `cargo test --all-targets`, several at a time.

cargo runs test binaries one after another, and most of the suite's time is spent waiting
(for a server to start, a timeout to pass, a prompt to expire), not computing: on a
2-core machine two binaries at a time take about half the wall time of one at a time.
Each binary still runs its own tests as cargo would (in parallel threads, one process);
only the binaries overlap.

Binaries named in ALONE run afterwards, one at a time, with nothing beside them:
tests/timing.rs compares latency distributions, which another binary's load would blur,
and tests/robustness.rs makes the load its fault tests need (kill -9 under load, datagram
storms, a full disk against the request deadline), which would also slow the binary beside
it.

Usage: scripts/run-tests.py [-- ARGS FOR EACH TEST BINARY]
Environment: RADMFA_TEST_JOBS (binaries at a time, default 2), CARGO_TARGET_DIR.
Writes every binary's output, in cargo's order (by name), to standard output and to
$TARGET/test-output.txt; exits non-zero if a binary failed or an integration test file
ran no test (a renamed module, a cfg gate: a broken harness, not a pass).
"""

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALONE = ["tests/robustness.rs", "tests/timing.rs"]


def build():
    """Builds every test target; returns [(label, executable)] in cargo's order."""
    cmd = ["cargo", "test", "--all-targets", "--no-run",
           "--message-format=json-render-diagnostics"]
    out = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, check=False, text=True)
    if out.returncode != 0:
        sys.exit(f"the build failed: {' '.join(cmd)} exited {out.returncode}")
    found = []
    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        if not msg["profile"]["test"]:
            continue
        src = os.path.relpath(msg["target"]["src_path"], ROOT)
        kind = msg["target"]["kind"]
        label = src if "test" in kind else f"unittests {src}"
        found.append((label, msg["executable"]))
    return found


def source_size(label):
    """The test file and its folder of modules: a rough guess at its run time."""
    path = ROOT / label.split()[-1]
    size = path.stat().st_size if path.is_file() else 0
    folder = path.with_suffix("")
    if folder.is_dir():
        size += sum(p.stat().st_size for p in folder.rglob("*.rs"))
    return size


def run_one(label, exe, args, logs):
    log = logs / (label.replace("/", "_").replace(" ", "_") + ".txt")
    started = time.monotonic()
    with open(log, "w") as f:
        code = subprocess.run([exe, *args], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, check=False).returncode
    return label, exe, code, time.monotonic() - started, log


def summary(text):
    """libtest's last "test result:" line, shortened; "" if it printed none."""
    lines = [l for l in text.splitlines() if l.startswith("test result:")]
    return lines[-1][len("test result: "):] if lines else ""


def main():
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    target = Path(os.environ.get("CARGO_TARGET_DIR", "target"))
    if not target.is_absolute():
        target = ROOT / target
    logs = target / "test-logs"
    logs.mkdir(parents=True, exist_ok=True)
    jobs = max(1, int(os.environ.get("RADMFA_TEST_JOBS", "2")))
    durations_file = target / "test-durations.json"
    try:
        durations = json.loads(durations_file.read_text())
    except (OSError, ValueError):
        durations = {}

    binaries = build()
    together = [b for b in binaries if b[0] not in ALONE]
    alone = sorted((b for b in binaries if b[0] in ALONE), key=lambda b: ALONE.index(b[0]))
    # Longest first, so that the last to finish is a short one: last run's times where
    # known, else the size of the test's source.
    together.sort(key=lambda b: (durations.get(b[0], 0.0), source_size(b[0])), reverse=True)

    print(f"==> {len(binaries)} test binaries, {jobs} at a time "
          f"({', '.join(l for l, _ in alone)} alone afterwards)", flush=True)
    results = []
    wall = time.monotonic()

    def done(result):
        label, _, code, secs, log = result
        state = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"    {label}: {state}, {secs:.1f} s; {summary(log.read_text())}", flush=True)
        results.append(result)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run_one, label, exe, args, logs) for label, exe in together]
        for f in as_completed(futures):
            done(f.result())
    for label, exe in alone:
        done(run_one(label, exe, args, logs))
    wall = time.monotonic() - wall

    # Shown as cargo lists them: the unit tests, then the test files by name.
    results.sort(key=lambda r: (not r[0].startswith("unittests"), r[0]))
    failed, empty = [], []
    with open(target / "test-output.txt", "w") as out:
        for label, exe, code, secs, log in results:
            text = log.read_text()
            block = f"     Running {label} ({os.path.relpath(exe, ROOT)})\n{text}"
            out.write(block)
            sys.stdout.write(block)
            if code != 0:
                failed.append(label)
            elif label.startswith("tests/") and "\nrunning 0 tests\n" in "\n" + text:
                empty.append(label)
            durations[label] = round(secs, 1)
    sys.stdout.flush()
    # Kept only when every binary ran to its end: a filtered or failed run's times are
    # no guide to the next.
    if not failed and not args:
        durations_file.write_text(json.dumps(durations, indent=1, sort_keys=True) + "\n")
    busy = sum(r[3] for r in results)
    print(f"==> test binaries: {busy:.0f} s of runs in {wall:.0f} s of wall time")
    for label in empty:
        print(f"no tests ran in {label}")
    for label in failed:
        print(f"FAILED: {label} (its output above; also {logs})")
    return 1 if failed or empty else 0


if __name__ == "__main__":
    sys.exit(main())
