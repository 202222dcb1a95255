#!/usr/bin/env bash
# demo-fleet.sh (`make demo-fleet`) — against the two replicas `make run-fleet` started: one proof
# sent to replica 1 (200) and then to replica 2 (401, a replay: replica 2 never saw the proof, but
# the fleet's Redis did), and the same for a proof sent to both at once (exactly one 200).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${CARGO_TARGET_DIR:-target}/release
URL=http://127.0.0.1:8080/payments/charges
# Replica 2 listens one port up; the proof binds the authority clients use (127.0.0.1:8080, as
# behind one load balancer), so requests to replica 2 keep it and only connect elsewhere.
TO_2=(--connect-to 127.0.0.1:8080:127.0.0.1:8081)

for n in 1 2; do
	if ! curl -fsS -o /dev/null --max-time 2 --unix-socket "run/replica-$n/envoy-admin.sock" http://localhost/ready 2>/dev/null; then
		echo "demo-fleet.sh: replica $n is not running; start the fleet with \`make run-fleet\` (in another terminal)" >&2
		exit 1
	fi
done

prove() {
	"$BIN/autoid" prove --public-key run/keys/gw-1.pub.pem --entropy run/clients/alice.entropy \
		--subject alice --url "$URL"
}
status() { # status PROOF [curl options]: the HTTP status
	curl -sS -o /dev/null -w '%{http_code}' -H "x-autoid-proof: $1" "${@:2}" "$URL"
}

echo "1. One proof, sent to replica 1, then to replica 2:"
PROOF=$(prove)
echo "   replica 1: $(status "$PROOF")"
echo "   replica 2: $(status "$PROOF" "${TO_2[@]}")   (a replay: claimed in Redis by replica 1's agent)"

echo
echo "2. Another proof, sent to both replicas at the same time:"
PROOF=$(prove)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
status "$PROOF" >"$OUT/1" &
status "$PROOF" "${TO_2[@]}" >"$OUT/2" &
wait
echo "   replica 1: $(cat "$OUT/1")   replica 2: $(cat "$OUT/2")   (exactly one 200)"

echo
echo "3. Each replica's counters (a replay refused through the fleet counts in autoid_replays_rejected):"
# The filter hands its per-request counters to Envoy on its one-second tick: wait for both 200s.
allowed() {
	curl -sS --unix-socket "run/replica-$1/envoy-admin.sock" 'http://localhost/stats?filter=autoid_requests_allowed' |
		awk -F': ' '{ n += $2 } END { print n + 0 }'
}
for _ in $(seq 30); do
	[ $(($(allowed 1) + $(allowed 2))) -ge 2 ] && break
	sleep 0.1
done
for n in 1 2; do
	echo "   replica $n: $(curl -sS --unix-socket "run/replica-$n/envoy-admin.sock" \
		'http://localhost/stats?filter=autoid_(requests_allowed|replays_rejected|replay_fleet)' | tr '\n' ' ')"
done
