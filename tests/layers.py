#!/usr/bin/env python3
"""Checks that the source tree keeps the shape DESIGN section 3 gives it.

    layers.py [SOURCE_DIR [BINARY_DIR]]

From the sources:
  - a file includes headers of its own module and of the modules below it
    (LAYERS), and of another module only its one public header;
  - routing/ and linkmodels/ (and crypto/, common/) include no I/O library
    and never read the clock; net/ includes nothing of the product above it;
  - every header is guarded whole (#ifndef/#define first, #endif last);
  - no .c file declares a function or variable of another file by hand
    (a prototype that is neither static nor a definition);
  - no source file is longer than MAX_LINES.

From the object files of a build (nm), when BINARY_DIR is given:
  - a module calls (or takes the address of) only functions of its own
    module and of the modules below it;
  - inside a module, the files' calls form no circle: if a.c calls b.c,
    nothing b.c calls leads back to a.c.

Prints what is wrong, one line each, and exits 1; prints a summary and exits
0 when the tree is clean.
"""
import os
import re
import subprocess
import sys

MAX_LINES = 1500

# module -> the modules it may use, lowest first. A module is a folder of
# sources; its public header is named after it (routing/routing.h,
# gateway/net/net.h).
LAYERS = {
    "common": [],
    "linkmodels": ["common"],
    "crypto": ["common"],
    "routing": ["common", "linkmodels"],
    "gateway/net": ["common"],
    "gateway/store": ["common", "routing", "gateway/net"],
    "gateway/config": ["common", "crypto", "routing", "gateway/net"],
    "gateway/cluster": ["common", "crypto", "routing", "gateway/net"],
    "gateway/daemon": ["common", "linkmodels", "crypto", "routing", "gateway/net",
                       "gateway/store", "gateway/config", "gateway/cluster"],
    "gateway/node": ["common", "linkmodels", "crypto", "gateway/net"],
    "gateway/cli": ["common", "linkmodels", "crypto", "routing", "gateway/net",
                    "gateway/store", "gateway/config"],
}

# Library headers a module must not include (the I/O it must not do).
IO_HEADERS = re.compile(r"^(event2/|nghttp2/|sqlite3\.h|nats/|openssl/ssl\.h|sys/socket\.h|"
                        r"netinet/|arpa/)")
PURE = {"common", "linkmodels", "crypto", "routing"}
# Reading the clock: pure modules take time as a parameter.
CLOCK_CALL = re.compile(r"\b(time|clock_gettime|gettimeofday|clock)\s*\(")


def public_header(module):
    return "%s/%s.h" % (module, module.rsplit("/", 1)[-1])


def strip_comments(text):
    """The text with comments and string literals blanked (newlines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + re.sub(r"[^\n]", " ", text[i + 1:j]) + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def sources(src):
    """module -> [relative paths of its .c and .h files]"""
    found = {}
    for module in LAYERS:
        d = os.path.join(src, module)
        if not os.path.isdir(d):
            continue
        found[module] = sorted(os.path.join(module, f) for f in os.listdir(d)
                               if f.endswith((".c", ".h")))
    return found


def module_of_include(path):
    """The module an include like "gateway/net/net.h" belongs to, or None."""
    best = None
    for module in LAYERS:
        if path.startswith(module + "/") and (best is None or len(module) > len(best)):
            best = module
    return best


def check_sources(src, problems):
    files = sources(src)
    nfiles = 0
    for module, paths in files.items():
        allowed = set(LAYERS[module])
        for rel in paths:
            nfiles += 1
            text = open(os.path.join(src, rel), encoding="utf-8").read()
            lines = text.count("\n")
            if lines > MAX_LINES:
                problems.append("%s: %d lines, more than %d" % (rel, lines, MAX_LINES))
            code = strip_comments(text)
            for m in re.finditer(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', text, re.M):
                line = text.count("\n", 0, m.start()) + 1
                inc = m.group(2)
                if m.group(1) == "<":
                    if module in PURE and IO_HEADERS.match(inc):
                        problems.append("%s:%d: %s includes <%s>: it does no I/O"
                                        % (rel, line, module, inc))
                    continue
                owner = module_of_include(inc)
                if owner is None:
                    problems.append("%s:%d: includes \"%s\", which is in no module"
                                    % (rel, line, inc))
                elif owner == module:
                    continue
                elif owner not in allowed:
                    problems.append("%s:%d: %s includes \"%s\" from %s, which it may not use "
                                    "(it may use: %s)" % (rel, line, module, inc, owner,
                                                          ", ".join(LAYERS[module]) or "nothing"))
                elif inc != public_header(owner):
                    problems.append("%s:%d: includes \"%s\", private to %s (use %s)"
                                    % (rel, line, inc, owner, public_header(owner)))
            if module in ("routing", "linkmodels"):
                for m in CLOCK_CALL.finditer(code):
                    line = code.count("\n", 0, m.start()) + 1
                    problems.append("%s:%d: %s reads the clock (%s): time is a parameter"
                                    % (rel, line, module, m.group(1)))
            if rel.endswith(".h"):
                check_guard(rel, code, problems)
            else:
                check_hand_declarations(rel, code, problems)
    return nfiles


def check_guard(rel, code, problems):
    lines = [l.strip() for l in code.splitlines() if l.strip()]
    ok = (len(lines) >= 3 and re.match(r"#\s*ifndef\s+(\w+)$", lines[0]) and
          re.match(r"#\s*define\s+%s$" % re.escape(lines[0].split()[-1]), lines[1]) and
          re.match(r"#\s*endif$", lines[-1]))
    if not ok:
        problems.append("%s: not guarded whole (#ifndef X / #define X first, #endif last)" % rel)


# A declaration at file scope that is not static and has no body: a prototype
# (or an extern variable) for something another file defines.
HAND_DECL = re.compile(r"^(?!static\b|typedef\b|struct\b[^(]*\{|enum\b|union\b|#)"
                       r"(extern\s+)?[A-Za-z_][\w \t\*]*?\b(\w+)\s*\([^;{}]*\)\s*"
                       r"(__attribute__\s*\(\(.*?\)\)\s*|SR_\w+(\([^)]*\))?\s*)*;", re.M | re.S)
EXTERN_VAR = re.compile(r"^extern\s+[^(;]*;", re.M)


def check_hand_declarations(rel, code, problems):
    for m in list(HAND_DECL.finditer(code)) + list(EXTERN_VAR.finditer(code)):
        line = code.count("\n", 0, m.start()) + 1
        problems.append("%s:%d: declares by hand what a header should: %s"
                        % (rel, line, " ".join(m.group(0).split())[:80]))


def nm(path, flags):
    r = subprocess.run(["nm", "-P"] + flags + [path], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    return r.stdout.splitlines() if r.returncode == 0 else []


def objects(src, build):
    """source path (relative) -> object file, for every module source built."""
    found = {}
    for root, _dirs, names in os.walk(build):
        if not root.endswith(".dir") and ".dir/" not in root:
            continue
        for name in names:
            if not name.endswith(".c.o"):
                continue
            # BUILD/<module>/CMakeFiles/<target>.dir/<file>.c.o
            rel_root = os.path.relpath(root, build)
            parts = rel_root.split(os.sep)
            if "CMakeFiles" not in parts:
                continue
            module = "/".join(parts[:parts.index("CMakeFiles")])
            if module not in LAYERS:
                continue
            found["%s/%s" % (module, name[:-2])] = os.path.join(root, name)
    return found


def check_calls(src, build, problems):
    objs = objects(src, build)
    defined, used = {}, {}
    for rel, obj in objs.items():
        defined[rel] = {l.split()[0] for l in nm(obj, ["-g", "--defined-only"])
                        if len(l.split()) > 1 and l.split()[1] in "TDBRCVW"}
        used[rel] = {l.split()[0] for l in nm(obj, ["-u"])}
    owner = {}
    for rel, syms in defined.items():
        for s in syms:
            owner.setdefault(s, rel)
    edges = {rel: set() for rel in objs}
    for rel, syms in used.items():
        module = rel.rsplit("/", 1)[0]
        for s in sorted(syms):
            o = owner.get(s)
            if o is None or o == rel:
                continue
            omod = o.rsplit("/", 1)[0]
            if omod == module:
                edges[rel].add(o)
            elif omod not in LAYERS[module]:
                problems.append("%s calls %s (%s), above it or beside it" % (rel, s, o))
    # circles inside a module: strongly connected components of the file graph
    for cycle, comp in circles(edges):
        others = sorted(set(comp) - set(cycle))
        problems.append("call circle inside %s: %s%s" % (
            cycle[0].rsplit("/", 1)[0], " -> ".join(cycle + [cycle[0]]),
            " (also caught up in it: %s)" % ", ".join(others) if others else ""))
    return len(objs), sum(len(v) for v in edges.values())


def circles(edges):
    """One representative circle per strongly connected component (Tarjan)."""
    index, low, stack, on, comps = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    out = []
    for comp in comps:
        members = set(comp)
        # a shortest path back to the start, inside the component
        start = min(comp)
        prev, frontier, seen = {}, [start], {start}
        found = None
        while frontier and not found:
            nxt = []
            for v in frontier:
                for w in sorted(edges[v] & members):
                    if w == start:
                        found = v
                        break
                    if w not in seen:
                        seen.add(w)
                        prev[w] = v
                        nxt.append(w)
                if found:
                    break
            frontier = nxt
        path = [found]
        while path[-1] != start:
            path.append(prev[path[-1]])
        out.append((list(reversed(path)), comp))
    return out


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
        "SR_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    build = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("SR_BINARY_DIR")
    problems = []
    nfiles = check_sources(src, problems)
    summary = "layers: %d source files in %d modules" % (nfiles, len(LAYERS))
    if build:
        nobj, nedges = check_calls(src, build, problems)
        if nobj == 0:
            problems.append("no object files of the modules under %s: build first" % build)
        summary += "; calls between %d object files (%d inside their modules)" % (nobj, nedges)
    for p in problems:
        print(p)
    if problems:
        print("layers: %d problems" % len(problems))
        return 1
    print(summary + ": clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
