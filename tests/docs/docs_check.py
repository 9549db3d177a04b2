#!/usr/bin/env python3
"""README.md and docs/*.md read as product documents and hold together.

- README.md is at most 250 lines, and its Quick start section has exactly the
  two commands, in one fenced block (the CI guard and fresh-machine runs
  parse that block).
- No document tells its own history: issue numbers, work sessions, dated or
  timed runs, "as before".
- Every relative link points to a file that exists and, with a #fragment into
  a Markdown file, to a heading there (GitHub's anchor rules).

usage: docs_check.py SOURCE_DIR
"""
import os
import re
import sys

README_MAX_LINES = 250
QUICK_START_COMMANDS = 2

# wording that tells how or when a document was written rather than what the
# product does
HISTORY = [
    (r"\bissue\s*#?\d+", "an issue number"),
    (r"#\d{1,5}\b(?![\dA-Fa-f])(?=[\s).,;:]|$)", "an issue reference"),
    (r"\b(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|"
     r"twelfth|\d+(?:st|nd|rd|th)|this|that|previous|next|last|earlier|later|one|a)"
     r"\s+(?:work\s+)?session\b", "a work session"),
    (r"\bsessions'\s+runs?\b", "a work session"),
    (r"\bas before\b", "\"as before\""),
    (r"\bused to (?:be|take|cost)\b", "what the product used to do"),
    (r"\bwe (?:measured|tried|changed|found)\b", "who did what"),
    (r"\b\d{1,2}:\d\d UTC\b", "the time of a run"),
    (r"\b(?:on|at|since|until|before|after) 20\d\d-\d\d-\d\d\b", "the date of a run"),
]


def docs(src):
    out = [os.path.join(src, "README.md")]
    d = os.path.join(src, "docs")
    out += sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".md"))
    return out


def anchor(title):
    """GitHub's anchor for a heading: lower case, markup and punctuation
    dropped (letters, digits, spaces, '-' and '_' kept), spaces to '-'."""
    t = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link's text
    t = t.strip().lower()
    t = re.sub(r"[^\w\- ]", "", t, flags=re.UNICODE)
    return t.replace(" ", "-")


def anchors(path):
    seen, out = {}, set()
    fence = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("```"):
                fence = not fence
                continue
            m = None if fence else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m:
                a = anchor(m.group(1))
                n = seen.get(a, 0)
                seen[a] = n + 1
                out.add(a if n == 0 else "%s-%d" % (a, n))
    return out


def prose(text):
    """The text outside fenced blocks and inline code, line by line, with
    their numbers (examples may show any date; prose may not tell one)."""
    fence = False
    for i, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            fence = not fence
            continue
        if not fence:
            yield i, re.sub(r"`[^`]*`", "``", line)


def check_readme(src, problems):
    path = os.path.join(src, "README.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    n = len(text.splitlines())
    if n > README_MAX_LINES:
        problems.append("README.md: %d lines, at most %d: move detail to docs/" %
                        (n, README_MAX_LINES))
    m = re.search(r"^(#+)\s*quick\s*start.*?$", text, re.I | re.M)
    if not m:
        problems.append("README.md: no 'Quick start' heading")
        return
    rest = text[m.end():]
    h = re.search(r"^#{1,%d}\s" % len(m.group(1)), rest, re.M)
    if h:
        rest = rest[:h.start()]
    blocks = re.findall(r"```[^\n]*\n(.*?)```", rest, re.S)
    cmds = [ln.strip() for b in blocks for ln in b.splitlines()
            if ln.strip() and not ln.strip().startswith("#")]
    if len(blocks) != 1 or len(cmds) != QUICK_START_COMMANDS:
        problems.append("README.md: the Quick start section must hold one fenced block with "
                        "exactly %d commands; it has %d block(s) and %d command(s): %s" %
                        (QUICK_START_COMMANDS, len(blocks), len(cmds), cmds))


def check_history(src, path, problems):
    rel = os.path.relpath(path, src)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for i, line in prose(text):
        for pat, what in HISTORY:
            m = re.search(pat, line, re.I)
            if m:
                problems.append("%s:%d: names %s (%r): say what the product does, not how or "
                                "when the text was written" % (rel, i, what, m.group(0)))


def check_links(src, path, problems):
    rel = os.path.relpath(path, src)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    base = os.path.dirname(path)
    for i, line in prose(text):
        for m in re.finditer(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", line):
            target = m.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                continue  # http:, https:, mailto:
            file_part, _, frag = target.partition("#")
            dest = os.path.normpath(os.path.join(base, file_part)) if file_part else path
            if not os.path.exists(dest):
                problems.append("%s:%d: link to %s: no such file" % (rel, i, target))
                continue
            if not os.path.realpath(dest).startswith(os.path.realpath(src) + os.sep):
                problems.append("%s:%d: link to %s leaves the repository" % (rel, i, target))
                continue
            if frag and dest.endswith(".md") and frag not in anchors(dest):
                problems.append("%s:%d: link to %s: %s has no heading with anchor #%s" %
                                (rel, i, target, os.path.relpath(dest, src), frag))


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SR_SOURCE_DIR", ".")
    problems = []
    check_readme(src, problems)
    files = docs(src)
    for p in files:
        check_history(src, p, problems)
        check_links(src, p, problems)
    if problems:
        print("docs_check: %d problem(s):" % len(problems))
        for p in problems:
            print("  - " + p)
        return 1
    print("docs_check: README.md and %d documents in docs/: length, Quick start, wording and "
          "links are fine" % (len(files) - 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
