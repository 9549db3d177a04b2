"""The Debian package: built with CPack from this build tree, installed with
dpkg -i, its example configuration passes --check-config, and systemd rates
the unit's exposure at 2.0 or lower. Needs root (CI runs as root); the
package is purged again at the end."""

import glob
import os
import re
import subprocess

import srtest
from srtest import check, run


def test_deb_installs_and_is_hardened():
    if os.geteuid() != 0:
        print("skipped: installing a package needs root")
        return
    r = subprocess.run(["cpack", "-G", "DEB", "--config", os.path.join(srtest.BIN, "CPackConfig.cmake")],
                       cwd=srtest.BIN, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    check(r.returncode == 0, "cpack: %s" % r.stderr.decode()[-2000:])
    debs = sorted(glob.glob(os.path.join(srtest.BIN, "skyroute_*.deb")), key=os.path.getmtime)
    check(debs, "a .deb was built")
    deb = debs[-1]
    r = run(["dpkg-deb", "-I", deb])
    check(b"Package: skyroute" in r.stdout, "package metadata")
    r = run(["dpkg", "-i", deb], timeout=300)
    check(r.returncode == 0, "dpkg -i: %s %s" % (r.stdout.decode()[-1500:], r.stderr.decode()[-1500:]))
    try:
        for path in ("/usr/sbin/skyrouted", "/usr/sbin/skyroute-node", "/usr/bin/skyroute",
                     "/etc/skyroute/skyroute.conf", "/usr/lib/systemd/system/skyroute.service",
                     "/usr/share/man/man8/skyrouted.8", "/usr/share/man/man1/skyroute.1"):
            check(os.path.exists(path), "installed %s" % path)
        st = os.stat("/etc/skyroute/gateway.key")
        check(st.st_mode & 0o777 == 0o600, "gateway key is 0600")
        r = run(["getent", "passwd", "skyroute"])
        check(r.returncode == 0, "dedicated user skyroute exists")
        r = run(["/usr/sbin/skyrouted", "-c", "/etc/skyroute/skyroute.conf", "--check-config"])
        check(r.returncode == 0 and b"OK" in r.stdout,
              "--check-config on the installed example: %s" % r.stderr.decode())
        r = run(["systemd-analyze", "security", "--offline=true",
                 "/usr/lib/systemd/system/skyroute.service"], timeout=120)
        out = r.stdout.decode() + r.stderr.decode()
        m = re.search(r"Overall exposure level for skyroute\.service: ([0-9.]+)", out)
        check(m, "systemd-analyze printed an exposure level: %s" % out[-500:])
        level = float(m.group(1))
        print("systemd-analyze exposure: %.1f" % level)
        check(level <= 2.0, "exposure %.1f must be <= 2.0" % level)
        r = run(["man", "-l", "/usr/share/man/man8/skyrouted.8"], timeout=60)
        check(b"skyrouted" in r.stdout, "man page renders")
    finally:
        run(["dpkg", "--purge", "skyroute"], timeout=300)


if __name__ == "__main__":
    srtest.run_tests([test_deb_installs_and_is_hardened])
