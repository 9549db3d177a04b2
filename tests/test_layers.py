#!/usr/bin/env python3
"""tests/layers.py on small trees made here, so the check that keeps the real
tree clean is known to catch what it is meant to: an include from a higher
layer, a private header of another module, I/O in a pure module, a clock read
in routing/, an unguarded header, a hand-written declaration, a file that is
too long, a call up the layers and a call circle between two files. A clean
tree passes."""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import layers  # noqa: E402

failures = 0


def check(cond, what):
    global failures
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures += 1


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


GUARD = "#ifndef X_{0}\n#define X_{0}\n{1}\n#endif\n"


def clean_tree(root):
    write(root, "common/common.h", GUARD.format("COMMON", "int sr_c(void);"))
    write(root, "common/c.c", '#include "common/common.h"\nint sr_c(void) { return 1; }\n')
    write(root, "routing/routing.h", GUARD.format("ROUTING", "int sr_r(void);"))
    write(root, "routing/routing_int.h", GUARD.format("RINT", "int sr__a(void);\nint sr__b(void);"))
    write(root, "routing/a.c", '#include "routing/routing_int.h"\n#include "common/common.h"\n'
          "int sr__a(void) { return sr_c(); }\n")
    write(root, "routing/b.c", '#include "routing/routing_int.h"\n'
          "int sr__b(void) { return sr__a(); }\nint sr_r(void) { return sr__b(); }\n")
    write(root, "gateway/net/net.h", GUARD.format("NET", "int sr_n(void);"))
    write(root, "gateway/net/n.c", '#include "gateway/net/net.h"\n#include "common/common.h"\n'
          "static int helper(void);\nstatic int helper(void) { return sr_c(); }\n"
          "int sr_n(void) { return helper(); }\n")


def build(root, build_dir):
    """Objects laid out as CMake lays them out, one per source."""
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            if not name.endswith(".c"):
                continue
            rel_dir = os.path.relpath(dirpath, root)
            out = os.path.join(build_dir, rel_dir, "CMakeFiles", "t.dir", name + ".o")
            os.makedirs(os.path.dirname(out), exist_ok=True)
            subprocess.run(["cc", "-c", "-I", root, os.path.join(dirpath, name), "-o", out],
                           check=True)


def run(root, build_dir):
    problems = []
    layers.check_sources(root, problems)
    if build_dir:
        layers.check_calls(root, build_dir, problems)
    return problems


def has(problems, *words):
    return any(all(w in p for w in words) for p in problems)


def main():
    base = tempfile.mkdtemp(prefix="sr-layers-")
    try:
        root, bdir = os.path.join(base, "src"), os.path.join(base, "build")
        clean_tree(root)
        build(root, bdir)
        p = run(root, bdir)
        check(p == [], "a clean tree passes: %r" % p)

        # includes
        write(root, "common/up.c", '#include "routing/routing.h"\nint sr_up(void) { return 0; }\n')
        write(root, "gateway/net/priv.c",
              '#include "routing/routing_int.h"\nint sr_priv(void) { return 0; }\n')
        write(root, "routing/io.c", "#include <sys/socket.h>\nint sr_io(void) { return 0; }\n")
        write(root, "routing/clock.c",
              "#include <time.h>\nlong sr_clock(void) { return (long)time(0); }\n")
        p = run(root, None)
        check(has(p, "common/up.c", "routing/routing.h", "may not use"), "an upward include")
        check(has(p, "gateway/net/priv.c", "may not use"), "net including routing")
        check(has(p, "routing/io.c", "sys/socket.h", "no I/O"), "I/O in a pure module")
        check(has(p, "routing/clock.c", "reads the clock"), "a clock read in routing/")
        for f in ("common/up.c", "gateway/net/priv.c", "routing/io.c", "routing/clock.c"):
            os.remove(os.path.join(root, f))
        write(root, "gateway/net/peek.c", '#include "common/common.h"\nint sr_peek(void);\n'
              "int sr_peek(void) { return 0; }\n")
        write(root, "gateway/net/net2.h", "int sr_unguarded(void);\n")
        write(root, "routing/long.c", "/* long */\n" + "\n" * (layers.MAX_LINES + 1))
        p = run(root, None)
        check(has(p, "gateway/net/peek.c", "declares by hand", "sr_peek"), "a hand declaration")
        check(has(p, "gateway/net/net2.h", "not guarded whole"), "an unguarded header")
        check(has(p, "routing/long.c", "more than"), "a file over the limit")
        for f in ("gateway/net/peek.c", "gateway/net/net2.h", "routing/long.c"):
            os.remove(os.path.join(root, f))

        # private header of another module, through an allowed module
        write(root, "gateway/net/lm.c", '#include "common/common_int.h"\nint sr_lm(void) { return 0; }\n')
        write(root, "common/common_int.h", GUARD.format("CINT", ""))
        p = run(root, None)
        check(has(p, "gateway/net/lm.c", "private to common"), "another module's private header")
        os.remove(os.path.join(root, "gateway/net/lm.c"))
        os.remove(os.path.join(root, "common/common_int.h"))

        # calls: up the layers, and a circle inside routing/
        write(root, "common/callup.c", "int sr_n(void);\nint sr_callup(void) { return sr_n(); }\n")
        write(root, "routing/a.c", '#include "routing/routing_int.h"\n#include "common/common.h"\n'
              "int sr__a(void) { return sr_c() + sr__b(); }\n")
        shutil.rmtree(bdir)
        build(root, bdir)
        p = run(root, bdir)
        check(has(p, "common/callup.c", "calls sr_n", "above it"), "a call up the layers")
        check(has(p, "call circle inside routing", "routing/a.c", "routing/b.c"),
              "a circle between two files")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print("test_layers: %d failures" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
