#!/usr/bin/env python3
"""Writes a PSKC (RFC 6030) file with python-pskc, an implementation radmfa did not write.

Tokens come as JSON on stdin: a list of {serial, secret_hex, type (totp|hotp), digits,
hash (sha1|sha256|sha512), period or counter, time_drift?, user, manufacturer?, model?,
leave_out_parameters?}. With leave_out_parameters the file has no ResponseFormat, Suite or
TimeInterval (RFC 6030 makes each optional): the importer must fall back on its defaults.

--protection: plain | aes128-cbc | aes192-cbc | aes256-cbc | kw-aes128 | kw-aes256 | pbkdf2
  (pbkdf2 uses --cipher for the values, default aes128-cbc). --mac: hmac-sha1 | hmac-sha224 | hmac-sha256 | ….
--prf: the PBKDF2 PRF (python-pskc writes its URI as the PRF element's text).
--fields: the Key fields python-pskc encrypts, comma-separated (default secret; also
  counter, time_interval, time_drift).
"""
import argparse
import datetime
import binascii
import json
import sys

import pskc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--protection", default="plain")
    ap.add_argument("--key", help="pre-shared key, hex")
    ap.add_argument("--passphrase")
    ap.add_argument("--cipher", default="aes128-cbc")
    ap.add_argument("--mac", help="default hmac-sha1 for CBC and PBKDF2; for key wrap, "
                    "none unless given")
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--fields", default="secret")
    ap.add_argument("--prf", help="PBKDF2 PRF, e.g. hmac-sha256 (default: python-pskc's)")
    a = ap.parse_args()

    p = pskc.PSKC()
    for t in json.load(sys.stdin):
        kw = dict(
            id=t["serial"],
            serial=t["serial"],
            secret=binascii.a2b_hex(t["secret_hex"]),
            algorithm="urn:ietf:params:xml:ns:keyprov:pskc:" + t["type"],
        )
        bare = t.get("leave_out_parameters", False)
        if not bare:
            kw.update(response_length=t["digits"], response_encoding="DECIMAL")
        if t.get("hash", "sha1") != "sha1" and not bare:
            kw["algorithm_suite"] = "HMAC-" + t["hash"].upper()
        if t["type"] == "totp":
            if not bare:
                kw["time_interval"] = t["period"]
        else:
            kw["counter"] = t["counter"]
        if t.get("time_drift") is not None:
            kw["time_drift"] = t["time_drift"]
        if t.get("user"):
            kw["key_userid"] = t["user"]
        for f in ("manufacturer", "model"):
            if t.get(f):
                kw[f] = t[f]
        # Validity dates, as Unix seconds.
        for f in ("start_date", "expiry_date"):
            if t.get(f) is not None:
                kw[f] = datetime.datetime.fromtimestamp(t[f], datetime.timezone.utc)
        p.add_key(**kw)

    prot = a.protection
    fields = a.fields.split(",")
    # The MAC first: python-pskc then makes its key the hash's length (28 bytes for
    # HMAC-SHA224), as it does for a caller who names the MAC before the encryption; set up
    # after, the key is the 20 bytes of the default HMAC-SHA1 whatever the MAC.
    if prot == "pbkdf2" or prot.endswith("-cbc"):
        p.mac.setup(algorithm=a.mac or "hmac-sha1")
    elif a.mac and prot != "plain":
        # A key-wrapped file with a MAC all the same (its MACKey wrapped too).
        p.mac.setup(algorithm=a.mac)
    if prot == "pbkdf2":
        p.encryption.setup_pbkdf2(a.passphrase, iterations=a.iterations, algorithm=a.cipher,
                                  fields=fields, prf=a.prf)
    elif prot != "plain":
        p.encryption.setup_preshared_key(key=binascii.a2b_hex(a.key), algorithm=prot,
                                         fields=fields)
    p.write(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
