#!/usr/bin/env python3
"""config_reference.py and docs_check.py catch what they are for: each runs
on a copy of the tree, unchanged (it passes) and with one fault put in (it
fails, naming the fault)."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SR_SOURCE_DIR",
                                                           os.path.join(HERE, "..", ".."))
failures = []


def copy_tree(dst):
    for d in ("gateway", "deploy"):
        shutil.copytree(os.path.join(SRC, d), os.path.join(dst, d),
                        ignore=shutil.ignore_patterns("*.o", "*.a"))
    shutil.copytree(os.path.join(SRC, "docs"), os.path.join(dst, "docs"))
    shutil.copy(os.path.join(SRC, "README.md"), os.path.join(dst, "README.md"))


def edit(root, rel, fn):
    p = os.path.join(root, rel)
    with open(p, encoding="utf-8") as f:
        t = f.read()
    u = fn(t)
    if u == t:
        raise SystemExit("test_docs_checks: the edit of %s changed nothing; update this test" % rel)
    with open(p, "w", encoding="utf-8") as f:
        f.write(u)


def run(script, root):
    r = subprocess.run([sys.executable, os.path.join(HERE, script), root],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    return r.returncode, r.stdout


def case(name, script, fault, expect):
    """|fault|(root) breaks a fresh copy; the script must fail and print every
    string of |expect|. fault None: the copy as is must pass."""
    with tempfile.TemporaryDirectory(prefix="sr-docs-") as root:
        copy_tree(root)
        if fault:
            fault(root)
        rc, out = run(script, root)
    if fault is None:
        ok = rc == 0
    else:
        ok = rc != 0 and all(e in out for e in expect)
    print("%s %s" % ("ok  " if ok else "FAIL", name))
    if not ok:
        failures.append(name)
        print("    exit %d, output:\n%s" % (rc, re.sub(r"(?m)^", "      ", out)))


def add_ext_key(root):
    edit(root, "gateway/config/config.c",
         lambda t: t.replace('{"gateway", "station"},', '{"gateway", "frobnicate"},\n'
                             '    {"gateway", "station"},', 1))


def add_handler_key(root):
    edit(root, "gateway/config/config.c",
         lambda t: t.replace('if (!strcmp(name, "listen")) {',
                             'if (!strcmp(name, "listen_backlog")) {\n            return 1;\n'
                             '        }\n        if (!strcmp(name, "listen")) {', 1))


def add_node_key(root):
    edit(root, "gateway/node/config.c",
         lambda t: t.replace('if (!strcmp(name, "exec_user")', 'if (!strcmp(name, "run_as_group")) {\n'
                             '            return 1;\n        }\n'
                             '        if (!strcmp(name, "exec_user")', 1))


def add_owner_key(root):
    edit(root, "gateway/daemon/spool.c",
         lambda t: t.replace('"concurrency"}', '"concurrency", "fsync_every"}', 1))


def add_wildcard(root):
    edit(root, "gateway/config/config.c",
         lambda t: t.replace('{"spool", "*"},', '{"spool", "*"},\n    {"audit", "*"},', 1))


def drop_doc_row(root):
    edit(root, "docs/configuration.md",
         lambda t: re.sub(r"(?m)^\| `margin_k` \|.*\n", "", t, count=1))


def add_doc_row(root):
    edit(root, "docs/configuration.md",
         lambda t: t.replace("| `max_windows` |", "| `max_windowz` | 1 | 1 | a typo |\n"
                             "| `max_windows` |", 1))


def example_typo(root):
    edit(root, "README.md", lambda t: t.replace("pubkey = alpha.pub", "pubkee = alpha.pub", 1))


def add_option(root):
    edit(root, "gateway/node/main.c", lambda t: t.replace(
        '{"gops", required_argument',
        '{"frob-level", required_argument, 0, 0},\n        {"gops", required_argument', 1))


def long_readme(root):
    edit(root, "README.md", lambda t: t + "\n" * 300)


def three_commands(root):
    edit(root, "README.md", lambda t: t.replace("deploy/quickstart.sh test\n",
                                                "deploy/quickstart.sh test\nmake install\n", 1))


def history(root):
    edit(root, "docs/routing.md", lambda t: t + "\nThis came with issue 12.\n")


def session(root):
    edit(root, "docs/node.md", lambda t: t + "\nMeasured in the ninth session.\n")


def bad_anchor(root):
    edit(root, "docs/node.md", lambda t: t + "\nSee [the keys](configuration.md#no-such).\n")


def bad_file(root):
    edit(root, "docs/node.md", lambda t: t + "\nSee [the guide](guide.md).\n")


def main():
    doc = "docs/configuration.md"
    case("config_reference passes on the tree", "config_reference.py", None, [])
    case("config_reference: an ext_keys key without a row", "config_reference.py", add_ext_key,
         ["frobnicate", doc])
    case("config_reference: a key of the handler without a row", "config_reference.py",
         add_handler_key, ["listen_backlog", doc])
    case("config_reference: a node key without a row", "config_reference.py", add_node_key,
         ["run_as_group", "skyroute-node", doc])
    case("config_reference: a key an owner accepts without a row", "config_reference.py",
         add_owner_key, ["fsync_every", "[spool]"])
    case("config_reference: a section open to any key, owner unknown", "config_reference.py",
         add_wildcard, ["[audit]", "WILDCARD_OWNERS"])
    case("config_reference: a row removed", "config_reference.py", drop_doc_row,
         ["margin_k", "[policy]", doc])
    case("config_reference: a row for a key the parser refuses", "config_reference.py",
         add_doc_row, ["max_windowz", "gateway/config/config.c"])
    case("config_reference: a misspelt key in an example", "config_reference.py", example_typo,
         ["README.md", "pubkee"])
    case("config_reference: an undocumented node option", "config_reference.py", add_option,
         ["--frob-level", "docs/node.md"])
    case("docs_check passes on the tree", "docs_check.py", None, [])
    case("docs_check: README too long", "docs_check.py", long_readme, ["at most 250"])
    case("docs_check: three Quick start commands", "docs_check.py", three_commands,
         ["exactly 2 commands", "make install"])
    case("docs_check: an issue number", "docs_check.py", history, ["docs/routing.md", "issue 12"])
    case("docs_check: a work session", "docs_check.py", session, ["docs/node.md", "ninth session"])
    case("docs_check: a link to a missing anchor", "docs_check.py", bad_anchor,
         ["configuration.md#no-such"])
    case("docs_check: a link to a missing file", "docs_check.py", bad_file, ["guide.md"])
    if failures:
        print("test_docs_checks: %d case(s) failed" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
