#!/usr/bin/env python3
"""Turn the QR code radmfa draws in a terminal back into an image, for zbarimg to decode.

Usage: qr_text_to_pgm.py ENROLL_OUTPUT.txt OUT.pgm
"""
import sys

# Rebuild the QR module grid from Dense1x2 half-block text (each char = 2 vertical modules).
lines=[l.rstrip("\n") for l in open(sys.argv[1]) if any(c in l for c in "█▀▄")]
top={' ':0,'▀':1,'▄':0,'█':1}; bot={' ':0,'▀':0,'▄':1,'█':1}
rows=[]
for l in lines:
    rows.append([top[c] for c in l]); rows.append([bot[c] for c in l])
# printed blocks are light modules (for dark terminals): block = white
S=8; h=len(rows); w=max(len(r) for r in rows)
out=bytearray()
for r in rows:
    line=bytearray()
    for x in range(w):
        v=255 if (x<len(r) and r[x]) else 0
        line+=bytes([v])*S
    out+=bytes(line)*S
open(sys.argv[2],'wb').write(b"P5 %d %d 255\n"%(w*S,h*S)+bytes(out))
