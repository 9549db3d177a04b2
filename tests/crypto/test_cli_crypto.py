#!/usr/bin/python3
"""skyroute keygen / seal / open / sign / verify, driven as an operator would.

Exits 77 (skipped) if the skyroute binary has not been built.
"""
import os
import stat
import subprocess
import sys
import tempfile

BIN = os.path.join(os.environ.get("SR_BINARY_DIR", "build"), "gateway", "skyroute")
failures = []


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
        rc, sig, err = run(["sign", "--key", a + ".key"], body)
        sig = sig.decode().strip()
        check(rc == 0 and sig.startswith(keyid + ":") and len(sig) == 105, "sign prints KEYID:SIG")
        rc, _, err = run(["verify", "--trust", a + ".pub", "--signature", sig], body)
        check(rc == 0, "verify accepts")
        rc, _, err = run(["verify", "--trust", a + ".pub", "--signature", sig], body + b" ")
        check(rc == 1 and "does not verify" in err, "verify refuses a changed body")
        rc, _, err = run(["verify", "--trust", b + ".pub", "--signature", sig], body)
        check(rc == 1 and "not trusted" in err, "verify refuses an unknown key")

        os.chmod(a + ".key", 0o644)
        rc, _, err = run(["sign", "--key", a + ".key"], body)
        check(rc == 1 and "mode 0644" in err, "a 0644 key file is refused, naming the mode")

        for sub in ["keygen", "seal", "open", "sign", "verify"]:
            rc, out, _ = run([sub, "--help"])
            check(rc == 0 and out.startswith(b"usage: skyroute " + sub.encode()), sub + " --help")
            rc, _, err = run([sub, "--no-such-option"])
            check(rc == 2 and "unknown option" in err and "usage:" in err, sub + " unknown option")
        check(run(["seal", "--key", a + ".key", "--to", "x"])[0] == 2, "seal without --handler")
        check(run(["open"])[0] == 2, "open without --trust")
        check(run(["verify", "--trust", a + ".pub"])[0] == 2, "verify without --signature")
        check(run(["keygen"])[0] == 2, "keygen without --out")
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
