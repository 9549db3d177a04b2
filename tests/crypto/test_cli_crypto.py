#!/usr/bin/python3
"""skyroute keygen / seal / open / sign / verify, driven as an operator would.

Exits 77 (skipped) if the skyroute binary has not been built.
"""
import base64
import hashlib
import os
import stat
import struct
import subprocess
import sys
import tempfile

BIN = os.path.join(os.environ.get("SR_BINARY_DIR", "build"), "gateway", "skyroute")
failures = []


def mp_decode(b, i=0):
    """A minimal msgpack decoder, independent of the C one, for checking the wire format."""
    c = b[i]
    i += 1
    if c <= 0x7F:
        return c, i
    if c >= 0xE0:
        return c - 0x100, i
    if 0x80 <= c <= 0x8F or c in (0xDE, 0xDF):
        w = {0xDE: 2, 0xDF: 4}.get(c, 0)
        n = c & 0x0F if not w else int.from_bytes(b[i:i + w], "big")
        i += w
        m = {}
        for _ in range(n):
            k, i = mp_decode(b, i)
            v, i = mp_decode(b, i)
            m[k] = v
        return m, i
    if 0x90 <= c <= 0x9F or c in (0xDC, 0xDD):
        w = {0xDC: 2, 0xDD: 4}.get(c, 0)
        n = c & 0x0F if not w else int.from_bytes(b[i:i + w], "big")
        i += w
        a = []
        for _ in range(n):
            v, i = mp_decode(b, i)
            a.append(v)
        return a, i
    if 0xA0 <= c <= 0xBF or c in (0xD9, 0xDA, 0xDB):
        w = {0xD9: 1, 0xDA: 2, 0xDB: 4}.get(c, 0)
        n = c & 0x1F if not w else int.from_bytes(b[i:i + w], "big")
        i += w
        return b[i:i + n].decode(), i + n
    if c in (0xC4, 0xC5, 0xC6):
        w = {0xC4: 1, 0xC5: 2, 0xC6: 4}[c]
        n = int.from_bytes(b[i:i + w], "big")
        i += w
        return bytes(b[i:i + n]), i + n
    if c == 0xCB:
        return struct.unpack(">d", b[i:i + 8])[0], i + 8
    if 0xCC <= c <= 0xCF:
        w = 1 << (c - 0xCC)
        return int.from_bytes(b[i:i + w], "big"), i + w
    if 0xD0 <= c <= 0xD3:
        w = 1 << (c - 0xD0)
        return int.from_bytes(b[i:i + w], "big", signed=True), i + w
    raise ValueError("unexpected msgpack byte 0x%02x" % c)


def check_independently(env, pub_path, key_path, payload):
    """Checks the envelope with Python's own msgpack reading and OpenSSL's Ed25519."""
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import (
            Ed25519PrivateKey, Ed25519PublicKey)
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    except ImportError:
        print("note: python3-cryptography missing, skipping the independent check")
        return
    with open(pub_path) as f:
        pk = base64.b64decode(f.read().strip().split(":", 1)[1], validate=True)
    with open(key_path) as f:
        seed = base64.b64decode(f.read().strip().split(":", 1)[1], validate=True)
    derived = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)
    check(derived == pk, "the .key seed derives the .pub key (OpenSSL)")
    outer, end = mp_decode(env)
    check(end == len(env) and isinstance(outer, list) and len(outer) == 4, "outer is a 4-array")
    magic, body, signer, sig = outer
    check(magic == "SR1", "magic SR1")
    check(signer == hashlib.blake2b(pk, digest_size=32).digest()[:8],
          "signer = BLAKE2b-256(pk)[:8]")
    try:
        Ed25519PublicKey.from_public_bytes(pk).verify(sig, b"skyroute/v1\0" + body)
    except Exception:
        check(False, "OpenSSL verifies Ed25519 over 'skyroute/v1\\0' || body")
    m, end = mp_decode(body)
    check(end == len(body), "body is one msgpack value")
    check(m.get("v") == 1 and m.get("kind") == "workload" and m.get("dst") == "gs-1" and
          m.get("src") == "cli" and m.get("handler") == "echo" and m.get("payload") == payload and
          len(m.get("id", b"")) == 16 and m["exp"] - m["iat"] == 60000 and
          m.get("hints") == {"work": 2.5, "result_bytes": 99}, "body fields as in DESIGN section 5")


def run(args, stdin=b"", cwd=None):
    p = subprocess.run([BIN] + args, input=stdin, capture_output=True, cwd=cwd, timeout=60)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def main():
    if not os.access(BIN, os.X_OK):
        print("skip: %s not built" % BIN)
        return 77
    with tempfile.TemporaryDirectory() as d:
        a, b = os.path.join(d, "alpha"), os.path.join(d, "beta")
        rc, out, err = run(["keygen", "--out", a])
        check(rc == 0, "keygen succeeds")
        keyid = out.decode().strip()
        check(len(keyid) == 16 and all(c in "0123456789abcdef" for c in keyid), "keygen prints id")
        check(stat.S_IMODE(os.stat(a + ".key").st_mode) == 0o600, "key file is 0600")
        with open(a + ".key") as f:
            line = f.read()
        check(line.startswith("ed25519-secret:") and line.endswith("\n"), "secret key format")
        with open(a + ".pub") as f:
            check(f.read().startswith("ed25519:"), "public key format")
        rc, _, err = run(["keygen", "--out", a])
        check(rc == 1 and "already exists" in err, "keygen never overwrites")
        run(["keygen", "--out", b])

        payload = bytes(range(256)) * 40
        rc, env, err = run(["seal", "--key", a + ".key", "--to", "gs-1", "--handler", "echo",
                            "--work", "2.5", "--result-bytes", "99"], payload)
        check(rc == 0 and env[:8] == b"\xdc\x00\x04\xa3SR1\xc6", "seal writes an envelope")
        check_independently(env, a + ".pub", a + ".key", payload)
        rc, out, err = run(["open", "--trust", b + ".pub", "--trust", a + ".pub", "--to", "gs-1"],
                           env)
        check(rc == 0 and out == payload and err == "", "open returns the payload, quietly")
        rc, out, err = run(["open", "--trust", a + ".pub", "--verbose"], env)
        check(rc == 0 and "handler 'echo'" in err and keyid in err, "open --verbose")

        def refused(args, data, reason):
            rc, out, err = run(["open"] + args, data)
            lines = err.strip().splitlines()
            ok = (rc == 1 and out == b"" and len(lines) == 1 and
                  lines[0].startswith("skyroute open: refused: " + reason + ": "))
            check(ok, "open refuses (%s): rc=%d %r" % (reason, rc, err))

        refused(["--trust", b + ".pub"], env, "envelope signer is not trusted")
        refused(["--trust", a + ".pub", "--to", "gs-2"], env,
                "envelope is addressed to another receiver")
        refused(["--trust", a + ".pub"], env[:-1], "envelope is truncated")
        refused(["--trust", a + ".pub"], env + b"\x00", "bytes follow the envelope")
        refused(["--trust", a + ".pub", "--max-bytes", "100"], env,
                "envelope declares a length over the limit")
        flipped = bytearray(env)
        flipped[40] ^= 1
        refused(["--trust", a + ".pub"], bytes(flipped), "envelope signature does not verify")
        rc, old, _ = run(["seal", "--key", a + ".key", "--to", "gs-1", "--handler", "x",
                          "--deadline-ms", "1"], b"late")
        refused(["--trust", a + ".pub"], old, "envelope has expired")

        body = b'{"station": "gs-1", "passes": []}'
        req = ["--url", "http://127.0.0.1:1/v1/passes?format=json", "--station", "gs-1",
               "--content-type", "application/json"]
        rc, sig, err = run(["sign", "--key", a + ".key", "--time", "1780000000", "--nonce",
                            "n0123456789abcdef"] + req, body)
        sig = sig.decode().strip()
        check(rc == 0 and sig.startswith("v2 key=%s ts=1780000000 nonce=n0123456789abcdef "
                                         "station=gs-1 sig=" % keyid), "sign prints a v2 header")
        rc, out, err = run(["verify", "--trust", a + ".pub", "--signature", sig] + req, body)
        check(rc == 0 and out == b"ts=1780000000 nonce=n0123456789abcdef\n", "verify accepts")
        try:
            import hashlib
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
            with open(a + ".pub") as f:
                pk = base64.b64decode(f.read().strip().split(":", 1)[1])
            # the canonical string of crypto.h, written out independently
            canon = ("skyroute-signature v2\nPUT\n/v1/passes\nformat=json\napplication/json\n"
                     "gs-1\n1780000000\nn0123456789abcdef\n%s\n" %
                     hashlib.sha256(body).hexdigest()).encode()
            Ed25519PublicKey.from_public_bytes(pk).verify(
                base64.b64decode(sig.split("sig=")[1]), canon)
        except ImportError:
            pass
        except Exception:
            check(False, "OpenSSL verifies the header over the documented canonical string")
        rc, _, err = run(["verify", "--trust", a + ".pub", "--signature", sig] + req, body + b" ")
        check(rc == 1 and "does not verify" in err, "verify refuses a changed body")
        moved = [x.replace("format=json", "format=ion") for x in req]
        rc, _, err = run(["verify", "--trust", a + ".pub", "--signature", sig] + moved, body)
        check(rc == 1 and "does not verify" in err, "verify refuses a changed query")
        other = [x.replace("gs-1", "gs-2") for x in req]
        rc, _, err = run(["verify", "--trust", a + ".pub", "--signature", sig] + other, body)
        check(rc == 1 and "signed for station 'gs-1'" in err, "verify refuses another station")
        rc, _, err = run(["verify", "--trust", b + ".pub", "--signature", sig] + req, body)
        check(rc == 1 and "not trusted" in err, "verify refuses an unknown key")
        v1 = keyid + ":" + "A" * 86 + "=="
        rc, _, err = run(["verify", "--trust", a + ".pub", "--signature", v1] + req, body)
        check(rc == 1 and "upgrade" in err, "a v1 header is refused, saying to upgrade")
        check(run(["sign", "--key", a + ".key"], body)[0] == 2, "sign without --url")
        check(run(["sign", "--key", a + ".key", "--url", "/v1/passes"], body)[0] == 2,
              "sign without --station")

        os.chmod(a + ".key", 0o644)
        rc, _, err = run(["sign", "--key", a + ".key"] + req, body)
        check(rc == 1 and "mode 0644" in err, "a 0644 key file is refused, naming the mode")

        for sub in ["keygen", "seal", "open", "sign", "verify"]:
            rc, out, _ = run([sub, "--help"])
            check(rc == 0 and out.startswith(b"usage: skyroute " + sub.encode()), sub + " --help")
            rc, _, err = run([sub, "--no-such-option"])
            check(rc == 2 and "unknown option" in err and "usage:" in err, sub + " unknown option")
        check(run(["seal", "--key", a + ".key", "--to", "x"])[0] == 2, "seal without --handler")
        check(run(["open"])[0] == 2, "open without --trust")
        check(run(["verify", "--trust", a + ".pub"] + req)[0] == 2, "verify without --signature")
        check(run(["keygen"])[0] == 2, "keygen without --out")
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
