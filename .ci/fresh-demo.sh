#!/bin/bash
# The guard against a package missing from deploy/install-deps.sh: runs the
# README's demo command (deploy/quickstart.sh demo) in a Debian 12 minbase
# chroot made for this run by debootstrap from the mirror this machine uses,
# with nothing cached from an earlier run, and removes it afterwards.
#   .ci/fresh-demo.sh [SECONDS]      (default 1200: the whole run is bounded)
# Exit 0: the demo ran and completed its workloads. Exit 1: it failed (the log
# says where). Exit 77: it cannot run here (not root, or no debootstrap, or
# mounts are not allowed) -- except under CI=true, where that is a failure.
set -u
limit=${1:-1200}
src=$(cd "$(dirname "$0")/.." && pwd)

cannot() {
    if [ "${CI:-}" = true ]; then
        echo "fresh-demo: FAILED: cannot run in CI: $*"
        exit 1
    fi
    echo "fresh-demo: SKIPPED: $*"
    exit 77
}

[ "$(id -u)" -eq 0 ] || cannot "needs root (debootstrap, chroot and mounts)"
command -v debootstrap >/dev/null || cannot "debootstrap is not installed (deploy/install-deps.sh --test installs it)"
mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || cannot "no Debian mirror configured in /etc/apt"

work=$(mktemp -d "${SR_FRESH_DIR:-/var/tmp}/skyroute-fresh-demo.XXXXXX") || cannot "no scratch directory"
R=$work/root
# Mounts made private to the chroot: unmounting them must never reach the
# machine's own /dev (an rbind of a shared /dev is otherwise its peer).
unmount_all() {
    for m in "$R/dev" "$R/proc"; do
        if mountpoint -q "$m" 2>/dev/null; then
            umount -R "$m" 2>/dev/null || umount -R -l "$m" 2>/dev/null
        fi
    done
}
cleanup() {
    unmount_all
    if grep -q " $work/" /proc/self/mounts 2>/dev/null; then
        echo "fresh-demo: something is still mounted under $work; left in place"
    else
        rm -rf --one-file-system "$work"
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# A probe: can this process mount at all (a container may forbid it)?
mkdir -p "$work/probe"
mount -t tmpfs tmpfs "$work/probe" 2>/dev/null || cannot "mounts are not permitted here (no CAP_SYS_ADMIN)"
umount "$work/probe"
rmdir "$work/probe"

start=$SECONDS
deadline=$((SECONDS + limit))
left() { echo $((deadline - SECONDS)); }

echo "fresh-demo: debootstrap --variant=minbase bookworm from $mirror"
if ! timeout "$(left)" debootstrap --variant=minbase bookworm "$R" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -20 "$work/debootstrap.log"
    echo "fresh-demo: FAILED: debootstrap (after $((SECONDS - start)) s)"
    exit 1
fi
cp /etc/apt/sources.list.d/debian.sources "$R/etc/apt/sources.list.d/" 2>/dev/null &&
    rm -f "$R/etc/apt/sources.list"
cp /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null
# no package's maintainer script starts a daemon in the chroot (it would
# outlive the run and hold the mounts)
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
chmod 0755 "$R/usr/sbin/policy-rc.d"

# The tree as it is checked out (tracked and new files, not build trees).
mkdir -p "$R/root/skyroute"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$src" ls-files -z --cached --others --exclude-standard |
        (cd "$src" && xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) |
        tar -C "$src" --null -T - -cf - | tar -C "$R/root/skyroute" -xf -
else
    tar -C "$src" --exclude='./build*' -cf - . | tar -C "$R/root/skyroute" -xf -
fi

mount -t proc proc "$R/proc" || cannot "cannot mount /proc in the chroot"
mount --rbind /dev "$R/dev" && mount --make-rslave "$R/dev" || cannot "cannot bind /dev into the chroot"

echo "fresh-demo: deploy/quickstart.sh demo in the chroot (as root, empty environment)"
timeout "$(left)" chroot "$R" /usr/bin/env -i HOME=/root TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    ${http_proxy:+http_proxy=$http_proxy} ${https_proxy:+https_proxy=$https_proxy} \
    nice -n 10 bash -c 'cd /root/skyroute && deploy/quickstart.sh demo' >"$work/demo.log" 2>&1 </dev/null
rc=$?
summary=$(grep -m1 '^demo summary:' "$work/demo.log")
took=$((SECONDS - start))
if [ $rc -eq 124 ]; then
    tail -30 "$work/demo.log"
    echo "fresh-demo: FAILED: the demo did not finish within ${limit} s"
    exit 1
fi
if [ $rc -ne 0 ] || [ -z "$summary" ]; then
    tail -40 "$work/demo.log"
    echo "fresh-demo: FAILED: deploy/quickstart.sh demo exit $rc in a fresh chroot (after $took s)"
    exit 1
fi
# every workload but the one meant to be refused (500 Gop in 1 s) completed
ok=$(echo "$summary" | awk '{print $3}')
n=$(echo "$summary" | awk '{print $5}')
if [ -z "$ok" ] || [ -z "$n" ] || [ "$ok" -ne $((n - 1)) ]; then
    tail -40 "$work/demo.log"
    echo "fresh-demo: FAILED: $summary"
    exit 1
fi
echo "fresh-demo: passed in $took s: $summary"
exit 0
