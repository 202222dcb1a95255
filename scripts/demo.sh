#!/usr/bin/env bash
# demo.sh (`make demo`) — requests against the stack `make run` started: an allowed request (the
# upstream's echo shows the injected credential and identity headers, and no proof header), a
# 401 without a proof, a 403 for dave, who is in no group, a POST whose proof binds its body, and
# HTTP Basic with a directory password on the legacy API, and AWS credentials for the aws CLI
# from the gateway (credential_process). Against Envoy or nginx, whichever `make run` started
# (run/gateway; `make run GATEWAY=nginx`, `make run GATEWAY=envoy-ext-authz`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${CARGO_TARGET_DIR:-target}/release
GW=https://127.0.0.1:8443
CLIENT=(--public-key run/keys/gw-1.pub.pem --cacert run/tls/ca.pem)
ADMIN=(--unix-socket run/envoy-admin.sock)
GATEWAY=$(cat run/gateway 2>/dev/null || echo envoy)

if [ "$GATEWAY" = nginx ]; then
	# nginx answers a path no API serves with 403: any answer means it runs.
	running() { curl -sS -o /dev/null --max-time 2 --cacert run/tls/ca.pem "$GW/" 2>/dev/null; }
else
	running() { curl -fsS -o /dev/null --max-time 2 "${ADMIN[@]}" http://localhost/ready 2>/dev/null; }
fi
if ! running; then
	echo "demo.sh: the gateway is not running; start it with \`make run\` (in another terminal)" >&2
	exit 1
fi
echo "The gateway: $GATEWAY (run/gateway)"

show() { # the command, then its output; JSON bodies pretty-printed
	printf '\n\033[1m$ %s\033[0m\n' "$*"
	"$@" 2>&1 | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        doc = json.loads(line)
    except ValueError:
        print(line, end="")
        continue
    if isinstance(doc, dict) and doc.get("upstream") == "autoid-demo-upstream":
        print("upstream received: %s %s" % (doc["method"], doc["path"]))
        for name, values in doc["headers"].items():
            for value in values:
                print("  %s: %s" % (name, value))
    else:
        print(json.dumps(doc))
' || true
}

echo "1. alice (group payments) calls the payments API through the gateway, with a proof made from"
echo "   her entropy file. She also sends her own x-autoid-subject: the gateway replaces it."
show "$BIN/autoid" request "${CLIENT[@]}" --entropy run/clients/alice.entropy --subject alice \
	-H 'x-autoid-subject: admin' "$GW/payments/charges?limit=2"
echo "   The upstream saw the injected authorization (the agent read it from Secrets Manager) and"
echo "   x-api-tenant, x-autoid-subject=alice and x-autoid-groups, and no x-autoid-proof."

echo
echo "2. No proof: 401."
show curl -sS -i --cacert run/tls/ca.pem "$GW/payments/charges"

echo
echo "3. dave proves who he is, but he is in no group: 403."
show "$BIN/autoid" request "${CLIENT[@]}" --entropy run/clients/dave.entropy --subject dave \
	"$GW/payments/charges"

echo
echo "4. alice POSTs a charge with a proof that also binds the body's SHA-256: the gateway waits for"
echo "   the whole body and checks it before the request goes on. The same proof with another body: 401."
if [ "$GATEWAY" = nginx ]; then
	echo "   Behind nginx both are 401: auth_request cannot show the agent the body, so a proof that"
	echo "   binds one is refused (docs/GATEWAYS.md); send such requests through Envoy."
fi
show "$BIN/autoid" request "${CLIENT[@]}" --entropy run/clients/alice.entropy --subject alice \
	-X POST -H 'content-type: application/json' -d '{"amount":5,"to":"acct-1"}' --bind-body \
	"$GW/payments/charges"
PROOF=$("$BIN/autoid" prove --public-key run/keys/gw-1.pub.pem --entropy run/clients/alice.entropy \
	--subject alice -X POST --url "$GW/payments/charges" --body-file <(printf '{"amount":5,"to":"acct-1"}'))
show curl -sS --cacert run/tls/ca.pem -H "x-autoid-proof: $PROOF" -H 'content-type: application/json' \
	--data-binary '{"amount":5000,"to":"acct-666"}' "$GW/payments/charges"

echo
echo "5. A legacy tool with only a directory password: the legacy API takes HTTP Basic, which the agent"
echo "   checks by binding to OpenLDAP as the user (test / test123, in testgroup). Plain HTTP is accepted"
echo "   here only because the client is on this host (auth.basic.plain_http: \"loopback\")."
show curl -sS -u test:test123 http://127.0.0.1:8080/legacy/status
echo "   The upstream saw the injected x-api-key and x-autoid-subject=test, and no authorization header."
echo "   A wrong password: 401, with the Basic challenge."
show curl -sS -i -u test:wrong http://127.0.0.1:8080/legacy/status

echo
echo "6. The aws CLI with no AWS keys of its own: its profile autoid-alice (run/aws/config) runs"
echo "   \`autoid aws credential-process\`, which proves alice's entropy to the gateway's /aws/ API; the"
echo "   agent assumes the role autoid-demo for her (moto, IAM authentication on) for 15 minutes."
show env AWS_CONFIG_FILE=run/aws/config AWS_SHARED_CREDENTIALS_FILE=/dev/null \
	.venv/bin/aws --profile autoid-alice sts get-caller-identity
echo "   dave proves who he is too, but he is not in payments: no credentials (403)."
show "$BIN/autoid" aws credential-process "${CLIENT[@]}" --entropy run/clients/dave.entropy --subject dave \
	"$GW/aws/"

check_counters() {
	echo
	echo "8. The agent's check counters (the gateway asks the agent: its /metrics on its unix socket, mode 0600, in run/):"
	show bash -c "curl -sS --unix-socket run/agent.sock http://localhost/metrics | grep -E '^autoid_check_(requests_allowed|requests_denied|denied_missing|denied_not_in_groups|denied_body|denied_basic_rejected) '"
}
if [ "$GATEWAY" = nginx ]; then
	echo
	echo "7. (Envoy only: Secrets Manager signed by the gateway. nginx cannot sign requests with SigV4;"
	echo "   the nginx render leaves /secrets/ out, so it is 403 like any path no API serves.)"
	check_counters
	exit 0
fi

echo
echo "7. Secrets Manager through the gateway: alice sends a plain GetSecretValue with her proof and no AWS"
echo "   signature; Envoy signs it (SigV4) with short-lived credentials of the role autoid-demo, which the"
echo "   agent renews in run/aws-signing/. Envoy's configuration names that file, never a key."
show "$BIN/autoid" request "${CLIENT[@]}" --entropy run/clients/alice.entropy --subject alice -X POST \
	-H 'x-amz-target: secretsmanager.GetSecretValue' -H 'content-type: application/x-amz-json-1.1' \
	-d '{"SecretId":"autoid/demo/greeting"}' "$GW/secrets/"

if [ "$GATEWAY" = envoy-ext-authz ]; then
	check_counters
	exit 0
fi
echo
echo "8. The filter's counters (Envoy's admin interface is a unix socket, mode 0600, in run/):"
# The filter adds its per-request counters to Envoy's on its one-second tick: wait for alice's two.
for _ in $(seq 30); do
	curl -sS "${ADMIN[@]}" "http://localhost/stats?filter=autoid_requests_allowed" 2>/dev/null |
		grep -q 'autoid_requests_allowed: [2-9]' && break
	sleep 0.1
done
show curl -sS "${ADMIN[@]}" "http://localhost/stats?filter=autoid_(requests|denied_missing|denied_not_in_groups|denied_body|denied_basic|basic|agent_session)"
