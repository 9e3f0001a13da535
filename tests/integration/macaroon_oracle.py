"""pymacaroons as an independent oracle for omnigate's macaroon codec.

Run by /usr/bin/python3 (Debian's python3-pymacaroons):

    macaroon_oracle.py mint --secret HEX --key-id K --tenant T --scope S[,S]
                            --expires UNIX [--route P] [--method M] [--v1]
                            [--caveat "raw predicate"]...
        prints a token minted by pymacaroons.
    macaroon_oracle.py verify --secret HEX --now UNIX [--tenant T]
                              [--scope S] [--path P] [--method M] TOKEN
        verifies with pymacaroons.Verifier and caveat checkers written from
        the documented semantics; prints a JSON line, exits 0 or 1.

The root key handed to pymacaroons is the raw secret (hex-decoded), exactly
as the root keys file holds it; pymacaroons derives the signing key itself.
"""
import argparse
import json
import sys

from pymacaroons import MACAROON_V1, MACAROON_V2, Macaroon, Verifier


def split(value):
    return [p.strip() for p in value.split(",")]


def mint(a):
    m = Macaroon(location="", identifier="%s:oracle" % a.key_id, key=bytes.fromhex(a.secret),
                 version=MACAROON_V1 if a.v1 else MACAROON_V2)
    m.add_first_party_caveat("tenant = %s" % a.tenant)
    m.add_first_party_caveat("scope = %s" % a.scope)
    m.add_first_party_caveat("expires = %d" % a.expires)
    if a.route:
        m.add_first_party_caveat("route = %s" % a.route)
    if a.method:
        m.add_first_party_caveat("method = %s" % a.method)
    for c in a.caveat or []:
        m.add_first_party_caveat(c)
    print(m.serialize())
    return 0


def verify(a):
    seen = {"tenant": None, "scopes": None, "expires": None}

    def check(pred):
        key, sep, value = pred.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            return False
        if key == "tenant":
            seen["tenant"] = value
            return a.tenant is None or value == a.tenant
        if key == "scope":
            s = set(split(value))
            seen["scopes"] = s if seen["scopes"] is None else seen["scopes"] & s
            return a.scope is None or a.scope in s
        if key == "expires":
            seen["expires"] = min(int(value), seen["expires"] or int(value))
            return a.now < int(value)
        if key == "route":
            return a.path is None or a.path.startswith(value)
        if key == "method":
            return a.method is None or a.method in split(value)
        return False

    v = Verifier()
    v.satisfy_general(check)
    try:
        m = Macaroon.deserialize(a.token)
        key_id = m.identifier_bytes.split(b":", 1)[0].decode()
        ok = v.verify(m, bytes.fromhex(a.secret))
    except Exception as e:  # pymacaroons raises for every refusal
        print(json.dumps({"ok": False, "error": type(e).__name__, "reason": str(e)[:200]}))
        return 1
    print(json.dumps({"ok": bool(ok), "key_id": key_id, "tenant": seen["tenant"],
                      "scopes": sorted(seen["scopes"] or []), "expires": seen["expires"]}))
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("mint")
    m.add_argument("--secret", required=True)
    m.add_argument("--key-id", required=True)
    m.add_argument("--tenant", required=True)
    m.add_argument("--scope", required=True)
    m.add_argument("--expires", type=int, required=True)
    m.add_argument("--route")
    m.add_argument("--method")
    m.add_argument("--v1", action="store_true")
    m.add_argument("--caveat", action="append")
    v = sub.add_parser("verify")
    v.add_argument("--secret", required=True)
    v.add_argument("--now", type=int, required=True)
    v.add_argument("--tenant")
    v.add_argument("--scope")
    v.add_argument("--path")
    v.add_argument("--method")
    v.add_argument("token")
    a = p.parse_args()
    return mint(a) if a.cmd == "mint" else verify(a)


if __name__ == "__main__":
    sys.exit(main())
