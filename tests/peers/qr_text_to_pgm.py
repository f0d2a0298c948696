#!/usr/bin/env python3
"""Turn the QR code radmfa draws in a terminal back into an image, for zbarimg to decode.

Usage: qr_text_to_pgm.py ENROLL_OUTPUT.txt OUT.pgm

The text may be a terminal's (colour escapes, CR LF line ends): the escapes are dropped,
and the modules read as radmfa draws them, a block for a dark module (ink on paper).
"""
import re
import sys

text = [re.sub(r"\x1b\[[0-9;]*m", "", l).rstrip("\r\n") for l in open(sys.argv[1], encoding="utf-8")]
drawn = [i for i, l in enumerate(text) if any(c in l for c in "█▀▄")]
lines = text[drawn[0]:drawn[-1] + 1]
# Rebuild the module grid from Dense1x2 half-block text (each char = 2 vertical modules).
top = {' ': 0, '▀': 1, '▄': 0, '█': 1}
bot = {' ': 0, '▀': 0, '▄': 1, '█': 1}
rows = []
for l in lines:
    rows.append([top[c] for c in l])
    rows.append([bot[c] for c in l])
# A quiet zone of light modules all round, whatever the text kept of its own.
Q = 4
w = max(len(r) for r in rows) + 2 * Q
rows = [[0] * w] * Q + [[0] * Q + r + [0] * (w - Q - len(r)) for r in rows] + [[0] * w] * Q
S = 8
h = len(rows)
out = bytearray()
for r in rows:
    line = bytearray()
    for v in r:
        line += bytes([0 if v else 255]) * S
    out += bytes(line) * S
open(sys.argv[2], 'wb').write(b"P5 %d %d 255\n" % (w * S, h * S) + bytes(out))
