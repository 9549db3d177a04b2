#!/bin/sh
# Installs the Debian 12 packages skyroute needs. Idempotent: it asks apt only
# for what is missing and says nothing when everything is present.
#   deploy/install-deps.sh          build + demo (what the demo command needs, no more)
#   deploy/install-deps.sh --test   also the test tools (clang/libFuzzer, cmocka,
#                                   Python's h2/sgp4/skyfield, nghttpx/nghttpd,
#                                   nats-server for the federation tests;
#                                   promtool and PyYAML for the monitoring test;
#                                   file, systemd, man-db and adduser for the
#                                   package test; debootstrap for the
#                                   fresh-machine demo)
set -eu

# build: the compiler, CMake and the libraries' -dev packages (libsystemd-dev:
# sd_notify for Type=notify units); demo: curl and nghttp as clients, python3
# for its free-port helper, coreutils' b2sum
BASE="build-essential cmake pkg-config
      libevent-dev libnghttp2-dev libsodium-dev libmsgpack-dev libjansson-dev
      libinih-dev libsqlite3-dev libssl-dev libnats-dev libsystemd-dev
      curl nghttp2-client coreutils python3"
# dpkg-shlibdeps (CPack's Depends) needs file; the package test needs
# systemd-analyze (systemd), man, adduser (the package's postinst) and sqlite3
# (the documented backup of state_dir)
TEST="libcmocka-dev clang libclang-rt-14-dev python3-h2 python3-sgp4
      python3-skyfield nghttp2-proxy nghttp2-server nodejs npm valgrind openssl chromium
      nats-server git ca-certificates procps file dpkg-dev systemd man-db adduser sqlite3 debootstrap
      prometheus python3-yaml python3-cryptography"

want="$BASE"
[ "${1:-}" = "--test" ] && want="$BASE $TEST"

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# nodejs from another source may already provide node and npm
case " $missing " in *" nodejs "*|*" npm "*)
    if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
        missing=$(echo "$missing" | tr ' ' '\n' | grep -vxE 'nodejs|npm' | tr '\n' ' ')
    fi;;
esac
missing=$(echo $missing)
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages: $missing" >&2
    echo "install-deps: run as root (or with sudo) to install them" >&2
    exit 1
fi
echo "install-deps: installing $missing"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "install-deps: apt-get failed (see above)" >&2
    exit 1
fi
rm -f "$log"
