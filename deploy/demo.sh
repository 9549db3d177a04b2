#!/bin/bash
# The skyroute demo: a ground-station gateway, two IDC nodes and one LEO
# satellite node (its RF link emulated from orbital elements) on loopback.
# Real HTTP/2 clients (curl, nghttp) submit workloads; for each, the demo
# prints where it ran, the predicted and elapsed time, and who signed the
# verified result. Everything it starts, it stops (by PID).
#   deploy/demo.sh [BUILD_DIR]
set -eu
cd "$(dirname "$0")/.."
B=$(cd "${1:-build}" && pwd)/gateway
for p in skyroute skyrouted skyroute-node; do
    [ -x "$B/$p" ] || { echo "demo: $B/$p not built (run deploy/quickstart.sh demo)" >&2; exit 1; }
done
command -v curl >/dev/null && command -v nghttp >/dev/null ||
    { echo "demo: needs curl and nghttp (deploy/install-deps.sh)" >&2; exit 1; }

work=$(mktemp -d /tmp/skyroute-demo.XXXXXX)
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    i=0
    until (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; do
        i=$((i + 1))
        [ $i -gt 100 ] && { echo "demo: nothing listening on port $1" >&2; exit 1; }
        sleep 0.05
    done
}

echo "[1/4] keys: gateway gs-demo, nodes alpha, beta and sat-1"
for k in gs-demo alpha beta sat-1 ops; do "$B/skyroute" keygen --out "$work/$k" >/dev/null; done

echo "[2/4] starting IDC nodes alpha (50 Gop/s) and beta (20 Gop/s)"
pa=$(free_port); pb=$(free_port); pg=$(free_port); padm=$(free_port); ps=$(free_port)
"$B/skyroute-node" --id alpha --listen 127.0.0.1:$pa --key "$work/alpha.key" \
    --trust "$work/gs-demo.pub" --gops 50 2>"$work/alpha.log" &
pids="$pids $!"
"$B/skyroute-node" --id beta --listen 127.0.0.1:$pb --key "$work/beta.key" \
    --trust "$work/gs-demo.pub" --gops 20 2>"$work/beta.log" &
pids="$pids $!"
station=48.85,2.35,35
echo "      satellite sat-1: synthetic 550 km orbit passing over the station ($station) now"
"$B/skyroute" elements synth --overhead $station --at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --alt-km 550 >"$work/sat-1.tle"
"$B/skyroute-node" --id sat-1 --listen 127.0.0.1:$ps --key "$work/sat-1.key" \
    --trust "$work/gs-demo.pub" --gops 20 --emulate-link "$work/sat-1.tle" --station $station \
    --min-el 10 2>"$work/sat-1.log" &
pids="$pids $!"
cat >"$work/gateway.conf" <<CONF
[gateway]
id = gs-demo
listen = 127.0.0.1:$pg
admin = 127.0.0.1:$padm
key = gs-demo.key
state_dir = state
station = $station
min_el_deg = 10

[operator.demo-ops]
pubkey = ops.pub
satellites = sat-1

[idc.alpha]
url = http://127.0.0.1:$pa
pubkey = alpha.pub
gops = 50

[idc.beta]
url = http://127.0.0.1:$pb
pubkey = beta.pub
gops = 20

[satellite.sat-1]
url = http://127.0.0.1:$ps
pubkey = sat-1.pub
gops = 20
rtt_ms = 10
catnum = 90000
CONF
echo "[3/4] starting skyrouted on 127.0.0.1:$pg (admin 127.0.0.1:$padm)"
"$B/skyrouted" -c "$work/gateway.conf" >"$work/access.log" 2>"$work/gateway.log" &
pids="$pids $!"
wait_port $pa; wait_port $pb; wait_port $ps; wait_port $pg; wait_port $padm
echo "      the satellite operator uploads sat-1's elements (signed); the gateway predicts its passes"
sig=$("$B/skyroute" sign --key "$work/ops.key" --url "http://127.0.0.1:$pg/v1/elements" \
    --station gs-demo --content-type text/plain <"$work/sat-1.tle")
curl -sS --http2-prior-knowledge -X PUT -H "skyroute-signature: $sig" -H "content-type: text/plain" \
    --data-binary @"$work/sat-1.tle" "http://127.0.0.1:$pg/v1/elements" | sed 's/^/      /'
"$B/skyroute" passes --elements "$work/sat-1.tle" --station $station \
    --from "$(date -u -d '-15 minutes' +%Y-%m-%dT%H:%M:%SZ)" --to "$(date -u -d '+15 minutes' +%Y-%m-%dT%H:%M:%SZ)" \
    --min-el 10 | sed 's/^/      /'


echo "[4/4] submitting workloads over HTTP/2"
printf 'hello from the ground segment\n' >"$work/hello.txt"
head -c 1048576 /dev/urandom >"$work/image.bin"
head -c 65536 /dev/urandom >"$work/frame.bin"
url=http://127.0.0.1:$pg/v1/workloads
printf '\n%-8s %-10s %-9s %-8s %-9s %-9s %-26s %s\n' client handler payload target predicted elapsed "verified signer" result
n=0
ok=0
submit() { # client handler file [extra headers...]
    client=$1 handler=$2 file=$3
    shift 3
    n=$((n + 1))
    hdrs="$work/h$n"
    body="$work/b$n"
    if [ "$client" = curl ]; then
        set -- -H "skyroute-handler: $handler" "$@"
        curl -sS --http2-prior-knowledge --data-binary @"$file" -D "$hdrs" -o "$body" "$@" "$url"
    else
        set -- -H "skyroute-handler: $handler" "$@"
        nghttp --har="$hdrs.har" -d "$file" "$@" "$url" >"$body" 2>/dev/null || true
        python3 - "$hdrs.har" >"$hdrs" 2>/dev/null <<'PY' || true
import json, sys
r = json.load(open(sys.argv[1]))["log"]["entries"][0]["response"]
print("HTTP/2 %d" % r["status"])
for h in r["headers"]:
    print("%s: %s" % (h["name"], h["value"]))
PY
    fi
    status=$(awk 'NR==1{print $2}' "$hdrs")
    get() { grep -i "^$1:" "$hdrs" | head -1 | cut -d' ' -f2- | tr -d '\r'; }
    size=$(wc -c <"$file" | tr -d ' ')
    if [ "$status" = 200 ]; then
        ok=$((ok + 1))
        res=$(head -c 40 "$body" | tr -c '[:print:]' '.')
        printf '%-8s %-10s %-9s %-8s %-9s %-9s %-26s %s\n' "$client" "$handler" "${size}B" \
            "$(get skyroute-target)" "$(get skyroute-predicted-ms)ms" "$(get skyroute-elapsed-ms)ms" \
            "$(get skyroute-signer)" "$res"
    else
        printf '%-8s %-10s %-9s HTTP %s: %s\n' "$client" "$handler" "${size}B" "$status" "$(head -c 160 "$body")"
    fi
}
submit curl echo "$work/hello.txt"
submit nghttp digest "$work/image.bin"
submit curl compute "$work/frame.bin" -H "skyroute-work: 10"
submit nghttp compute "$work/frame.bin" -H "skyroute-work: 25"
submit curl digest "$work/frame.bin" -H "skyroute-place: target:beta"
submit curl digest "$work/frame.bin" -H "skyroute-place: orbit"
submit nghttp compute "$work/frame.bin" -H "skyroute-place: orbit" -H "skyroute-work: 4"
submit curl echo "$work/hello.txt" -H "skyroute-deadline-ms: 2000"
submit curl compute "$work/hello.txt" -H "skyroute-work: 500" -H "skyroute-deadline-ms: 1000"

echo
echo "store and forward: prefer: respond-async is answered 202 once the workload is on disk;"
echo "the client leaves and fetches the result later"
curl -sS --http2-prior-knowledge -D "$work/ah" -o "$work/ab" -H "prefer: respond-async" \
    -H "skyroute-handler: digest" --data-binary @"$work/image.bin" "$url"
loc=$(grep -i '^location:' "$work/ah" | cut -d' ' -f2 | tr -d '\r')
echo "  POST: $(head -1 "$work/ah" | awk '{print $1, $2}'), location: $loc, $(grep -o '"state":"[a-z]*"' "$work/ab")"
code=000
i=0
while [ $i -lt 100 ]; do
    code=$(curl -sS --http2-prior-knowledge -D "$work/arh" -o "$work/ar" -w '%{http_code}' \
        "http://127.0.0.1:$pg$loc")
    [ "$code" = 200 ] && break
    sleep 0.1
    i=$((i + 1))
done
echo "  GET $loc: $code, ran on $(grep -i '^skyroute-target:' "$work/arh" | cut -d' ' -f2 | tr -d '\r'), result $(head -c 40 "$work/ar")"

echo
echo "b2sum of image.bin (the digest handler's answers above must match): $(b2sum -l 256 "$work/image.bin" | cut -c1-40)"
echo
echo "gateway metrics:"
curl -sS "http://127.0.0.1:$padm/metrics" | grep -E '^skyroute_(requests|dispatch)_total' | sed 's/^/  /'
echo
echo "demo summary: $ok of $n workloads completed with verified signed results; the"
echo "'orbit' ones ran on sat-1 through its emulated link (light time each way), and the"
echo "last asks for 500 Gop in 1 s, which no target can do: 503 naming each candidate."
echo "stopping gateway and nodes"
