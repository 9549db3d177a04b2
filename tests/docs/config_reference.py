#!/usr/bin/env python3
"""The configuration reference matches the parsers, both ways.

Reads the keys skyrouted's parser accepts (gateway/config/config.c: the keys
its handler compares by name, the ext_keys table, and for a section whose
every key ext_keys lets through, the list its owner checks them against) and
the keys skyroute-node's --config parser accepts (gateway/node/config.c), and
compares them with the keys docs/configuration.md documents. A key accepted
but not documented, or documented but refused, fails the test, named with the
file to edit. The `key = value` lines of the ```ini examples in README.md and
docs/*.md (commented out or not) must be keys the parsers accept, too, and
each command-line option of skyroute-node and skyrouted must be documented.

usage: config_reference.py SOURCE_DIR [DOC]   (DOC: docs/configuration.md)
"""
import os
import re
import sys

GATEWAY_CONFIG = "gateway/config/config.c"
NODE_CONFIG = "gateway/node/config.c"
NODE_MAIN = "gateway/node/main.c"

# Sections ext_keys passes whole ({"S", "*"}) are checked by the part of the
# daemon that owns them. Where each lists its keys: ("array", FILE, NAME) is a
# string array in FILE; ("calls", FILE) is every call in FILE that names the
# section and then a literal key, e.g. sr_config_num(cfg, "policy", "margin_k",
# ...); ("arg", FILE, FUNC) is FUNC's literal second argument (a helper that
# reads one key of the section).
WILDCARD_OWNERS = {
    "spool": [("array", "gateway/daemon/spool.c", "keys")],
    "cluster": [("array", "gateway/daemon/federation.c", "cluster_keys")],
    "client.*": [("array", "gateway/daemon/auth.c", "known")],
}


class Shape(Exception):
    """The source no longer looks the way this test reads it."""


def read(src, rel):
    with open(os.path.join(src, rel), encoding="utf-8") as f:
        return f.read()


def strip_comments(c):
    c = re.sub(r"/\*.*?\*/", lambda m: " " * len(m.group(0)), c, flags=re.S)
    return re.sub(r"//[^\n]*", "", c)


def function_body(c, name, rel):
    m = re.search(r"\b%s\s*\([^)]*\)\s*\{" % re.escape(name), c)
    if not m:
        raise Shape("%s: no function %s()" % (rel, name))
    depth, i = 1, m.end()
    while depth and i < len(c):
        depth += {"{": 1, "}": -1}.get(c[i], 0)
        i += 1
    return c[m.end():i]


def name_keys(block, c=""):
    """Keys a handler compares the entry's name with: !strcmp(name, "K"), or
    !strcmp(name, TABLE[i].key) where TABLE is an array of the file (c) whose
    rows start with the key: {"K", ...}."""
    keys = set(re.findall(r'strcmp\(\s*name\s*,\s*"([^"]+)"\s*\)', block))
    for table in set(re.findall(r'strcmp\(\s*name\s*,\s*(\w+)\[\w+\]\.\w+\s*\)', block)):
        m = re.search(r"\b%s\[\]\s*=\s*\{(.*?)\n\};" % re.escape(table), c, re.S)
        if not m:
            raise Shape("the handler compares names with %s[], which is not an array of the "
                        "same file" % table)
        keys.update(re.findall(r'\{\s*"([^"]+)"', m.group(1)))
    return keys


def split_by_section(body, rel, c=""):
    """{section pattern: keys} from a handler that branches on the section:
    strcmp(section, "S") or strncmp(section, "S.", n) (a prefix: "S.*"),
    each branch's keys being the name comparisons up to the next branch."""
    marks = []
    for m in re.finditer(r'(strn?cmp)\(\s*section\s*,\s*"([^"]+)"', body):
        sec = m.group(2)
        if m.group(1) == "strncmp":
            sec = sec + "*" if sec.endswith(".") else sec + ".*"
        marks.append((m.start(), sec))
    if not marks:
        raise Shape("%s: the handler no longer compares the section by name" % rel)
    out = {}
    for i, (pos, sec) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else len(body)
        out.setdefault(sec, set()).update(name_keys(body[pos:end], c))
    return out


def gateway_keys(src):
    """{section pattern: set of keys} that skyrouted's configuration accepts."""
    c = strip_comments(read(src, GATEWAY_CONFIG))
    handler = function_body(c, "on_entry", GATEWAY_CONFIG)
    branches = split_by_section(handler, GATEWAY_CONFIG, c)
    keys = {}
    # the target branch (idc. and satellite.) shares its keys
    prefixes = [s for s in branches if s.endswith(".*")]
    for sec, ks in branches.items():
        keys.setdefault(sec, set()).update(ks)
    tail = set()
    for s in prefixes:
        tail |= branches[s]
    for s in prefixes:
        keys[s] = set(tail)
    table = re.search(r"ext_keys\[\]\s*=\s*\{(.*?)\n\};", c, re.S)
    if not table:
        raise Shape("%s: no ext_keys table" % GATEWAY_CONFIG)
    rows = re.findall(r'\{\s*"([^"]+)"\s*,\s*"([^"]+)"\s*\}', table.group(1))
    if not rows:
        raise Shape("%s: ext_keys has no rows" % GATEWAY_CONFIG)
    for sec, key in rows:
        if key != "*":
            keys.setdefault(sec, set()).add(key)
            continue
        owners = WILDCARD_OWNERS.get(sec)
        if not owners:
            raise Shape("%s: ext_keys accepts every key of [%s]; add where its owner lists "
                        "them to WILDCARD_OWNERS in %s" % (GATEWAY_CONFIG, sec,
                                                           os.path.relpath(__file__, src)))
        found = set()
        for o in owners:
            found |= owner_keys(src, sec, o)
        if not found:
            raise Shape("found no keys of [%s] where WILDCARD_OWNERS says (%s)" % (sec, owners))
        keys.setdefault(sec, set()).update(found)
    return keys


def owner_keys(src, sec, owner):
    kind, rel = owner[0], owner[1]
    c = strip_comments(read(src, rel))
    if kind == "array":
        m = re.search(r"\b%s\[\]\s*=\s*\{(.*?)\};" % re.escape(owner[2]), c, re.S)
        if not m:
            raise Shape("%s: no array %s[] (the keys of [%s])" % (rel, owner[2], sec))
        return set(re.findall(r'"([^"]+)"', m.group(1)))
    if kind == "calls":
        return set(re.findall(r'\w+\([^;()]*?"%s"\s*,\s*"([^"]+)"' % re.escape(sec), c))
    if kind == "arg":
        return set(re.findall(r'\b%s\(\s*\w+\s*,\s*"([^"]+)"' % re.escape(owner[2]), c))
    raise Shape("unknown owner kind %r" % kind)


def literal_reads(src):
    """(file, section, key) of every sr_config_get/sr_config_num call in the
    gateway's sources that names both section and key literally."""
    out = []
    for root, _dirs, files in os.walk(os.path.join(src, "gateway")):
        for f in sorted(files):
            if not f.endswith(".c"):
                continue
            rel = os.path.relpath(os.path.join(root, f), src)
            c = strip_comments(read(src, rel))
            for m in re.finditer(r'sr_config_(?:get|num)\(\s*[\w>-]+\s*,\s*"([^"]+)"\s*,\s*'
                                 r'"([^"]+)"', c):
                out.append((rel, m.group(1), m.group(2)))
    return out


def node_keys(src):
    """The node's keys: those cfg_entry compares by name, and in [node] every
    command-line option that takes an argument, but --config, under its name
    with '_' for '-' (node_config_args reads them)."""
    c = strip_comments(read(src, NODE_CONFIG))
    handler = function_body(c, "cfg_entry", NODE_CONFIG)
    keys = {s: k for s, k in split_by_section(handler, NODE_CONFIG, c).items() if k}
    if "node_config_args" in c:
        m = strip_comments(read(src, NODE_MAIN))
        opts = re.findall(r'\{\s*"([a-z][a-z0-9-]*)"\s*,\s*required_argument', m)
        if not opts:
            raise Shape("%s: found no long options taking an argument" % NODE_MAIN)
        keys.setdefault("node", set()).update(o.replace("-", "_") for o in opts
                                              if o != "config")
    return keys


def doc_keys(path):
    """{("skyrouted"|"skyroute-node", section pattern): set of keys}: under a
    level-2 heading naming the program, a heading with `[section]` (a NAME or
    ID suffix in capitals stands for any: [idc.ID] is idc.*), then table rows
    whose first cell holds the key in backquotes."""
    out = {}
    prog = sec = None
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    fence = False
    for line in lines:
        if line.startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        h = re.match(r"^(#+)\s+(.*)$", line)
        if h:
            if len(h.group(1)) <= 2:
                t = h.group(2)
                prog = ("skyroute-node" if "skyroute-node" in t else
                        "skyrouted" if "skyrouted" in t else None)
                sec = None
            s = re.search(r"`\[([\w.-]+?)(?:\.[A-Z]+)?\]`", h.group(2))
            if s:
                base = s.group(1)
                sec = base + ".*" if re.search(r"`\[[\w.-]+\.[A-Z]+\]`", h.group(2)) else base
            elif len(h.group(1)) > 2:
                sec = None
            continue
        row = re.match(r"^\|\s*((?:`[\w.-]+`[ ,/]*)+)\|", line)
        if row and prog and sec:
            for k in re.findall(r"`([\w.-]+)`", row.group(1)):
                out.setdefault((prog, sec), set()).add(k)
    return out


def example_keys(src):
    """(file, line, section, key) of every `key = value` line, live or
    commented out, in the ```ini blocks of README.md and docs/*.md."""
    files = [os.path.join(src, "README.md")]
    d = os.path.join(src, "docs")
    files += sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".md"))
    out = []
    for path in files:
        rel = os.path.relpath(path, src)
        sec, ini = None, False
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if line.startswith("```"):
                    ini = line.strip() == "```ini" if not ini else False
                    sec = None
                    continue
                if not ini:
                    continue
                m = re.match(r"^\s*\[([^\]]+)\]", line)
                if m:
                    sec = m.group(1)
                    continue
                m = re.match(r"^\s*[;#]?\s*([A-Za-z_][\w]*)\s*=", line)
                if m and sec:
                    out.append((rel, i, sec, m.group(1)))
    return out


# Command-line options: each long option of a program appears as --NAME in
# the document that lists them.
OPTION_DOCS = [("gateway/node/main.c", "skyroute-node", "docs/node.md"),
               ("gateway/daemon/main.c", "skyrouted", "README.md")]


def option_problems(src):
    out = []
    for rel, prog, doc in OPTION_DOCS:
        c = strip_comments(read(src, rel))
        opts = re.findall(r'\{\s*"([a-z][a-z0-9-]*)"\s*,\s*(?:required|no|optional)_argument', c)
        if not opts:
            out.append("%s: found no long options (struct option) of %s" % (rel, prog))
            continue
        text = read(src, doc)
        missing = sorted(o for o in set(opts) if not re.search(r"--%s\b" % re.escape(o), text))
        if missing:
            out.append("%s takes %s, which %s does not mention (%s)" %
                       (prog, ", ".join("--" + o for o in missing), doc, rel))
    return out


def accepts(parsed, prog, sec, key):
    if key in parsed.get((prog, sec), ()):
        return True
    for (p, s), ks in parsed.items():
        if p == prog and s.endswith(".*") and sec.startswith(s[:-1]) and len(sec) > len(s) - 1:
            if key in ks:
                return True
    return False


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SR_SOURCE_DIR", ".")
    doc = sys.argv[2] if len(sys.argv) > 2 else os.path.join(src, "docs", "configuration.md")
    doc_rel = os.path.relpath(doc, src) if doc.startswith(src) else doc
    try:
        parsed = {("skyrouted", s): k for s, k in gateway_keys(src).items()}
        parsed.update({("skyroute-node", s): k for s, k in node_keys(src).items()})
    except Shape as e:
        print("config_reference: cannot read the parser: %s" % e)
        return 1
    documented = doc_keys(doc)
    problems = []
    for (prog, sec), keys in sorted(parsed.items()):
        missing = sorted(keys - documented.get((prog, sec), set()))
        if missing:
            problems.append("%s accepts in [%s] but %s does not document: %s (add a row to the "
                            "`[%s]` table under the %s heading of %s)" %
                            (prog, sec, doc_rel, ", ".join(missing), sec, prog, doc_rel))
    for (prog, sec), keys in sorted(documented.items()):
        extra = sorted(keys - parsed.get((prog, sec), set()))
        if extra:
            where = GATEWAY_CONFIG if prog == "skyrouted" else NODE_CONFIG
            problems.append("%s documents in [%s] of %s keys its parser (%s) refuses: %s" %
                            (doc_rel, sec, prog, where, ", ".join(extra)))
    accepted = {(s, k) for (p, s), ks in parsed.items() if p == "skyrouted" for k in ks}
    for rel, sec, key in literal_reads(src):
        pat = re.sub(r"\.[^.]+$", ".*", sec) if "." in sec else sec
        if (sec, key) not in accepted and (pat, key) not in accepted:
            problems.append("%s reads [%s] %s, which %s refuses (add it to ext_keys)" %
                            (rel, sec, key, GATEWAY_CONFIG))
    node_sections = {s for (p, s) in parsed if p == "skyroute-node"}
    for rel, line, sec, key in example_keys(src):
        prog = "skyroute-node" if any(sec == s or (s.endswith(".*") and sec.startswith(s[:-1]))
                                      for s in node_sections) else "skyrouted"
        if not accepts(parsed, prog, sec, key):
            problems.append("%s:%d: the example's [%s] %s is not a key %s accepts" %
                            (rel, line, sec, key, prog))
    problems += option_problems(src)
    if problems:
        print("config_reference: the configuration reference and the parsers disagree:")
        for p in problems:
            print("  - " + p)
        return 1
    n = sum(len(k) for k in parsed.values())
    print("config_reference: %d keys in %d sections, all documented in %s" %
          (n, len(parsed), doc_rel))
    return 0


if __name__ == "__main__":
    sys.exit(main())
