#!/usr/bin/env python3
"""Runs a program on a pseudo-terminal and answers its prompts as a person at a terminal
would, printing what the terminal showed as JSON: {"status": exit code, "screen": text}.

Usage: pty_answer.py ANSWER... -- PROGRAM ARG...

Each ANSWER is typed (with Enter) once the program has shown a prompt (output ending in
": ") and set the terminal as it wants it for that prompt: libpam_misc turns echo off for a
hidden prompt and flushes pending input as it does, so typing sooner could be lost. What
the terminal echoes back is in "screen": a code typed at a prompt the program asked to hide
is not.
"""
import json
import os
import pty
import select
import sys
import termios
import time


def main():
    split = sys.argv.index("--")
    answers, program = sys.argv[1:split], sys.argv[split + 1:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(program[0], program)
    screen = b""
    since = 0  # where the output after the last answer starts
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break  # the program closed the terminal
            if not chunk:
                break
            screen += chunk
        if answers and screen[since:].rstrip(b" ").endswith(b":") and screen.endswith(b" "):
            # Settled: echo turned off, or a second on, as libpam_misc leaves it.
            until = time.monotonic() + 1
            while time.monotonic() < until and termios.tcgetattr(fd)[3] & termios.ECHO:
                time.sleep(0.02)
            os.write(fd, answers.pop(0).encode() + b"\n")
            since = len(screen)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({
        "status": os.waitstatus_to_exitcode(status),
        "screen": screen.decode(errors="replace"),
    }))


if __name__ == "__main__":
    main()
