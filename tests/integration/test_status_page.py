"""The admin status page, rendered by headless Chromium: it must draw the pass
timeline of the next hours and list where recent workloads went; a
screenshot is kept in the build directory for people to look at."""

import datetime
import os
import shutil
import subprocess
import time

import srtest
from srtest import check, run

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def chromium(args, timeout=90):
    prof = os.path.join(os.environ.get("TMPDIR", "/tmp"), "sr-chromium-%d" % os.getpid())
    try:
        return subprocess.run(["chromium"] + CHROMIUM_FLAGS + ["--user-data-dir=" + prof] + args,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    finally:
        shutil.rmtree(prof, ignore_errors=True)


def test_status_page_renders_timeline_and_recent_workloads():
    if not shutil.which("chromium"):
        raise AssertionError("chromium is not installed (deploy/install-deps.sh --test)")
    env = srtest.Env("status")
    gkey, gpub = env.keygen("gs-test")
    a = env.start_node("alpha", [gpub])
    b = env.start_node("beta", [gpub])
    g = env.start_gateway("gs-test", [a, b])
    p = env.path("p.txt")
    with open(p, "wb") as f:
        f.write(b"status page")
    for i in range(6):
        st, h, body = srtest.curl_post(g["url"] + "/v1/workloads", p,
                                       ["skyroute-handler: %s" % ("digest" if i % 2 else "echo")])
        check(st == 200, "workload %d: %s" % (i, st))
    url = "http://127.0.0.1:%d/status" % g["admin"]
    r = chromium(["--dump-dom", url])
    dom = r.stdout.decode(errors="replace")
    check('id="timeline"' in dom, "the pass timeline is in the DOM")
    check('id="recent"' in dom, "the recent-workloads table is in the DOM")
    check(dom.count('class="workload"') == 6, "six recent workloads listed")
    check("alpha" in dom and "beta" in dom, "targets named")
    shot = os.path.join(srtest.BIN, "status-page.png")
    r = chromium(["--screenshot=" + shot, "--window-size=1000,700", url])
    check(os.path.exists(shot) and os.path.getsize(shot) > 5000,
          "screenshot taken: %s" % r.stderr.decode()[-400:])
    with open(shot, "rb") as f:
        check(f.read(8) == b"\x89PNG\r\n\x1a\n", "a PNG")
    print("  screenshot: %s (%d bytes)" % (shot, os.path.getsize(shot)))
    bad = env.close()
    check(not bad, "clean exits: %r" % [(x.sr_name, x.returncode) for x in bad])


if __name__ == "__main__":
    srtest.run_tests([test_status_page_renders_timeline_and_recent_workloads])
