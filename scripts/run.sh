#!/usr/bin/env bash
# run.sh (`make run`) — the whole autoid demo on this machine, in the foreground:
#   OpenLDAP (openldap/run_ldap.sh), AWS IAM, STS and Secrets Manager (moto, local, IAM
#   authentication on) → autoid agent → Envoy + the autoid filter → the demo upstream.
# Generates what it needs into run/ (kept between runs; delete run/ to start over), prints what
# runs where and the commands to try, and stops everything on Ctrl-C.
#
# Environment: AUTOID_SKIP_BUILD=1 skips `make build`, `make deps-envoy` and `make deps-moto` (the
# Makefile target already ran them); ENVOY (default .venv/bin/envoy); ENVOY_LOG_LEVEL (default info).
# GATEWAY=nginx (`make run GATEWAY=nginx`): Debian's nginx instead of Envoy on the same ports,
# rendered with `autoid gateway render --target nginx`: every API location asks the agent's
# /v1/check (auth_request); the agent decides with the filter configuration render writes
# (run/filter.json). NGINX (default /usr/sbin/nginx). nginx's logs: run/nginx/{error,access}.log.
# GATEWAY=envoy-ext-authz (`make run GATEWAY=envoy-ext-authz`): Envoy without the wasm filter,
# rendered with `autoid gateway render --target envoy-ext-authz`: ext_authz asks the agent's
# /v1/check, which decides with run/filter.json.
# FLEET=1 (`make run-fleet`): two gateway replicas, each an Envoy (--concurrency 2) with its own
# agent, claiming nonces in one Redis (docs/FLEET.md); replica 1 on the usual ports, replica 2 one
# above them (8444, 8081), each replica's files in run/replica-<n>/.
# Secrets: each process gets only its own. Every process started here runs with a clean
# environment (KEEP_ENV: where programs are, the locale); the agent alone also gets its secrets,
# from 0600 files (run/aws/agent.env: its AWS key; run/secrets/agent.env: the injected API keys
# its `env` sources read). Nothing here prints a password: run_ldap.sh names the files.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
RUN=$REPO/run
LOGS=$RUN/logs
BIN=${CARGO_TARGET_DIR:-$REPO/target}/release
ENVOY=${ENVOY:-$REPO/.venv/bin/envoy}
MOTO=$REPO/.venv-moto/bin
HTTPS_PORT=8443 HTTP_PORT=8080 UPSTREAM_PORT=9000 MOTO_PORT=4566 REDIS_PORT=6380
FLEET=${FLEET:-0}
GATEWAY=${GATEWAY:-envoy}
NGINX=${NGINX:-/usr/sbin/nginx}
# moto checks signatures (IAM authentication on): the agent signs with the keys the seed creates
# for it (run/aws/agent.env), which only the agent's process reads (start --env-file).
PAYMENTS_SECRET=autoid/demo/payments-upstream
# Envoy's admin: a unix socket (mode 0600) that `autoid gateway render` puts beside run/envoy.json.
ADMIN_SOCKET=run/envoy-admin.sock
# The agent: a unix socket (mode 0600, no token) that Envoy reaches with a `pipe` cluster
# (gateway-config/gateway.json: "address": "unix:../run/agent.sock").
AGENT_SOCKET=run/agent.sock

say() { printf '\033[1m== %s\033[0m\n' "$*"; }
die() {
	echo "run.sh: error: $*" >&2
	exit 1
}

case "$GATEWAY" in
envoy | envoy-ext-authz | nginx) ;;
*) die "GATEWAY=$GATEWAY: envoy (the default), envoy-ext-authz or nginx" ;;
esac
if [ "$GATEWAY" != envoy ] && [ "$FLEET" = 1 ]; then
	die "the fleet demo runs Envoy replicas with the wasm filter only; use \`make run GATEWAY=$GATEWAY\` alone"
fi

if [ "${AUTOID_SKIP_BUILD:-0}" != 1 ]; then
	say "building (make build), installing Envoy, moto and the aws CLI (make deps-envoy deps-moto deps-aws)"
	make --no-print-directory build deps-envoy deps-moto deps-aws
fi
[ -x "$BIN/autoid" ] || die "$BIN/autoid is missing: run \`make build\`"
if [ "$GATEWAY" = nginx ]; then
	[ -x "$NGINX" ] || die "$NGINX is missing: run \`sudo apt-get install -y nginx\` (or \`make deps-nginx\` as root)"
else
	[ -x "$ENVOY" ] || die "$ENVOY is missing: run \`make deps-envoy\`"
fi
[ -x "$MOTO/moto_server" ] || die "$MOTO/moto_server is missing: run \`make deps-moto\`"
command -v openssl >/dev/null || die "openssl is missing (apt-get install -y openssl)"

PORTS=("$HTTPS_PORT" "$HTTP_PORT" "$UPSTREAM_PORT" "$MOTO_PORT")
if [ "$FLEET" = 1 ]; then
	[ -x /usr/bin/redis-server ] || die "redis-server is missing: run \`sudo apt-get install -y redis-server\` (or \`make deps-redis\` as root)"
	PORTS+=("$((HTTPS_PORT + 1))" "$((HTTP_PORT + 1))" "$REDIS_PORT")
fi
for port in "${PORTS[@]}"; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		die "127.0.0.1:$port is already in use (another \`make run\`?); stop it first"
	fi
done

mkdir -p "$RUN" "$LOGS"
chmod 700 "$RUN"
autoid() { "$BIN/autoid" "$@"; }

say "secrets in run/ (generated once; delete run/ to start over)"
# 2048-bit RSA for the demo: generated in well under a second, and the gateway's one RSA
# decryption per client session costs ~10-15 ms in wasm instead of ~30-45 ms at 3072 bits.
# Production keys use the default (3072): `autoid keygen --out keys`.
[ -f "$RUN/keys/gw-1.key.pem" ] || autoid keygen --out "$RUN/keys" --kid gw-1 --bits 2048
[ -f "$RUN/epochs/ep-1.epoch.json" ] || { mkdir -p "$RUN/epochs" && autoid epoch new --out "$RUN/epochs/ep-1.epoch.json" --id ep-1; }
mkdir -p "$RUN/clients"
for who in alice dave; do # alice is in payments and reports; dave is in no group
	[ -f "$RUN/clients/$who.entropy" ] ||
		autoid entropy issue --epoch "$RUN/epochs/ep-1.epoch.json" --subject "$who" --out "$RUN/clients/$who.entropy"
done
umask 077
mkdir -p "$RUN/secrets"
[ -f "$RUN/secrets/payments-upstream.token" ] ||
	printf 'Bearer demo-payments-%s\n' "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$RUN/secrets/payments-upstream.token"
# The agent's environment (its `env` credential sources: reports and legacy), for its process only.
cat >"$RUN/secrets/agent.env" <<'AGENT_ENV'
AWS_REGION=us-east-1
AUTOID_DEMO_REPORTS_KEY=demo-reports-key-from-the-environment
AUTOID_DEMO_LEGACY_KEY=demo-legacy-key-from-the-environment
AGENT_ENV
umask 022
"$REPO/scripts/dev-tls.sh" "$RUN/tls"

# start NAME LOG [--env-file FILE]... CMD...: a process with a clean environment (PIDS, NAMES).
# shellcheck source=scripts/launch.sh
. "$REPO/scripts/launch.sh"
stopping=0
stop_all() {
	[ "$stopping" = 1 ] && return
	stopping=1
	trap - INT TERM
	rm -f "$RUN/agent.pid" "$RUN"/replica-*/agent.pid "$RUN/gateway"
	echo
	say "stopping"
	local i
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		if kill -0 "${PIDS[$i]}" 2>/dev/null; then
			kill -TERM "${PIDS[$i]}" 2>/dev/null || true
			wait "${PIDS[$i]}" 2>/dev/null || true
			echo "stopped ${NAMES[$i]} (pid ${PIDS[$i]})"
		fi
	done
	openldap/run_ldap.sh stop >/dev/null 2>&1 && echo "stopped OpenLDAP" || true
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

wait_port() { # wait_port NAME PORT SECONDS: until 127.0.0.1:PORT accepts connections
	local deadline=$((SECONDS + $3)) pid=${PIDS[-1]}
	until (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; do
		kill -0 "$pid" 2>/dev/null || die "$1 exited; see its log in run/logs/"
		[ "$SECONDS" -lt "$deadline" ] || die "$1 did not listen on 127.0.0.1:$2 within $3 s; see run/logs/"
		sleep 0.2
	done
}

wait_http() { # wait_http NAME URL SECONDS [curl options]
	local deadline=$((SECONDS + $3)) pid=${PIDS[-1]}
	until curl -fsS -o /dev/null --max-time 2 "${@:4}" "$2" 2>/dev/null; do
		kill -0 "$pid" 2>/dev/null || die "$1 exited; see its log in run/logs/"
		[ "$SECONDS" -lt "$deadline" ] || die "$1 did not answer $2 within $3 s; see run/logs/"
		sleep 0.2
	done
}

say "directory: OpenLDAP (openldap/run_ldap.sh, state in run/ldap)"
# slapd (setsid, started by the script) keeps the script's environment: a clean one.
(clean_env && AUTOID_INSTALL=1 exec openldap/run_ldap.sh start) >"$LOGS/ldap-start.log" 2>&1 ||
	{ cat "$LOGS/ldap-start.log" >&2; die "OpenLDAP did not start"; }
eval "$(openldap/run_ldap.sh env | grep -E '^LDAP_(URL|CA_FILE|AGENT_DN|AGENT_PASSWORD_FILE|STATE_DIR|ADMIN_DN|ADMIN_PASSWORD_FILE)=')"

say "AWS (moto on 127.0.0.1:$MOTO_PORT, IAM authentication on): role autoid-demo, secret $PAYMENTS_SECRET"
: >"$LOGS/moto.log"
# The seed's requests are the only unauthenticated ones (scripts/moto-seed.py, SEED_ACTIONS).
start "moto" "$LOGS/moto.log" env INITIAL_NO_AUTH_ACTION_COUNT=10 "$MOTO/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"
wait_http "moto" "http://127.0.0.1:$MOTO_PORT/moto-api/" 30
"$MOTO/python" scripts/moto-seed.py "http://127.0.0.1:$MOTO_PORT" "$PAYMENTS_SECRET" \
	"$RUN/secrets/payments-upstream.token" "$RUN/aws"
# The aws CLI's profile for alice: her credentials come from the gateway, through the process.
cat >"$RUN/aws/config" <<CONFIG
[profile autoid-alice]
region = us-east-1
endpoint_url = http://127.0.0.1:$MOTO_PORT
credential_process = $BIN/autoid aws credential-process --public-key $RUN/keys/gw-1.pub.pem --entropy $RUN/clients/alice.entropy --subject alice --cacert $RUN/tls/ca.pem https://127.0.0.1:$HTTPS_PORT/aws/
CONFIG

print_single() {
	PUB=run/keys/gw-1.pub.pem
	local front="Envoy + autoid" admin="  $ADMIN_SOCKET  Envoy admin, unix socket mode 0600 (curl --unix-socket $ADMIN_SOCKET http://localhost/stats?filter=autoid)"
	local logs="run/logs/{envoy,access,agent,upstream,moto}.log" secrets="/secrets/
  is Secrets Manager signed by the gateway (both for payments)."
	if [ "$GATEWAY" = nginx ]; then
		front="nginx, auth_request → the agent's /v1/check"
		admin="  run/nginx.conf  nginx's configuration (autoid gateway render --target nginx); the agent's check counters:
                  curl -s --unix-socket $AGENT_SOCKET http://localhost/metrics | grep autoid_check_"
		logs="run/nginx/{error,access}.log, run/logs/{nginx,agent,upstream,moto}.log"
		secrets="/secrets/
  (Secrets Manager signed by the gateway) is Envoy's only: nginx cannot sign (403 here)."
	elif [ "$GATEWAY" = envoy-ext-authz ]; then
		front="Envoy, ext_authz → the agent's /v1/check"
		admin="  $ADMIN_SOCKET  Envoy admin, unix socket mode 0600; the agent's check counters:
                  curl -s --unix-socket $AGENT_SOCKET http://localhost/metrics | grep autoid_check_"
	fi
	cat <<EOF

autoid demo is running (Ctrl-C stops everything):
  https://127.0.0.1:$HTTPS_PORT   $front, TLS (dev CA: run/tls/ca.pem)
  http://127.0.0.1:$HTTP_PORT     $front, plain HTTP (local development only)
$admin
  $AGENT_SOCKET      autoid agent, unix socket mode 0600, no token (curl --unix-socket $AGENT_SOCKET http://localhost/readyz)
  http://127.0.0.1:$UPSTREAM_PORT     demo upstream (echoes what it receives)
  http://127.0.0.1:$MOTO_PORT     AWS (moto, IAM authentication on): payments' upstream token is $PAYMENTS_SECRET;
                                  the /aws/ API vends role autoid-demo (aws CLI profile autoid-alice: run/aws/config)
  $LDAP_URL  OpenLDAP (StartTLS; admin $LDAP_ADMIN_DN, password in ${LDAP_ADMIN_PASSWORD_FILE#"$REPO"/})
APIs (gateway-config/apis/): /payments/ needs group payments; /reports/ needs reports or admins;
  /legacy/ takes HTTP Basic (test / test123, testgroup); /aws/ vends AWS credentials and $secrets
Clients: alice (payments, reports) run/clients/alice.entropy; dave (no group) run/clients/dave.entropy
Logs: $logs, run/ldap/slapd.log

Try (or run \`make demo\` in another terminal):
  target/release/autoid request --public-key $PUB --entropy run/clients/alice.entropy --subject alice \\
      --cacert run/tls/ca.pem https://127.0.0.1:$HTTPS_PORT/payments/charges?limit=2
  curl -i --cacert run/tls/ca.pem https://127.0.0.1:$HTTPS_PORT/payments/charges
  target/release/autoid request --public-key $PUB --entropy run/clients/dave.entropy --subject dave \\
      --cacert run/tls/ca.pem https://127.0.0.1:$HTTPS_PORT/payments/charges
  curl -H "x-autoid-proof: \$(target/release/autoid prove --public-key $PUB --entropy run/clients/alice.entropy \\
      --subject alice --url http://127.0.0.1:$HTTP_PORT/reports/daily)" http://127.0.0.1:$HTTP_PORT/reports/daily
  target/release/autoid request --public-key $PUB --entropy run/clients/alice.entropy --subject alice \\
      --cacert run/tls/ca.pem -X POST -d '{"amount":5}' --bind-body https://127.0.0.1:$HTTPS_PORT/payments/charges
  curl -s --unix-socket $ADMIN_SOCKET http://localhost/stats?filter=autoid
Rotate the gateway key (the agent reloads on SIGHUP; Envoy keeps running; gw-1 works for 10 more minutes):
  target/release/autoid rotate key --agent-config run/agent.json --keys-dir run/keys --kid gw-2 --bits 2048 \\
      --overlap-secs 600 --pid-file run/agent.pid
AWS credentials for alice's aws CLI, from the gateway (credential_process):
  AWS_CONFIG_FILE=run/aws/config .venv/bin/aws --profile autoid-alice sts get-caller-identity
Rotate the payments credential (the gateway injects it within the agent's refresh, no restart):
  env \$(cat run/aws/operator.env) .venv-moto/bin/python -c "import boto3; boto3.client('secretsmanager', \\
      region_name='us-east-1', endpoint_url='http://127.0.0.1:$MOTO_PORT').put_secret_value(SecretId='$PAYMENTS_SECRET', SecretString='Bearer rotated')"
EOF
}

: >"$LOGS/upstream.log"
say "demo upstream"
start "demo upstream" "$LOGS/upstream.log" "$BIN/autoid-demo-upstream" --listen "127.0.0.1:$UPSTREAM_PORT"
wait_http "demo upstream" "http://127.0.0.1:$UPSTREAM_PORT/" 10

if [ "$FLEET" = 1 ]; then
	say "Redis on 127.0.0.1:$REDIS_PORT (the fleet's replay claims; nothing persisted)"
	: >"$LOGS/redis.log"
	start "Redis" "$LOGS/redis.log" /usr/bin/redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
		--save "" --appendonly no --protected-mode yes
	deadline=$((SECONDS + 10))
	until (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null; do
		[ "$SECONDS" -lt "$deadline" ] || die "Redis did not listen within 10 s; see run/logs/redis.log"
		sleep 0.1
	done
	REPLICAS=(1 2)
else
	REPLICAS=(1)
fi

# One gateway replica: its agent and its Envoy. Single: run/envoy.json and run/agent.sock, as
# always. Fleet: run/replica-<n>/, rendered from the same definitions with the replica's ports, its
# agent's socket and replay.scope "fleet" (its agent claims nonces in Redis).
replica() {
	local n=$1 dir config replay="" suffix="" check=""
	if [ "$FLEET" = 1 ]; then
		dir=$RUN/replica-$n
		suffix=-$n
		mkdir -p "$dir/config"
		ln -sfn "$REPO/gateway-config/apis" "$dir/config/apis"
		python3 "$REPO/scripts/replica-config.py" "$REPO/gateway-config" "$dir" "$n"
		config=$dir/config
		replay=",
  \"replay\": { \"redis_url\": \"redis://127.0.0.1:$REDIS_PORT\" }"
	else
		dir=$RUN
		config=$REPO/gateway-config
	fi
	if [ "$GATEWAY" = nginx ]; then
		say "autoid gateway render --target nginx --config ${config#"$REPO"/} --out run/nginx.conf --filter-config run/filter.json --agent-credentials run/agent-credentials.json"
		autoid gateway render --target nginx --config "$config" --out "$dir/nginx.conf" \
			--filter-config "$dir/filter.json" --agent-credentials "$dir/agent-credentials.json" >/dev/null
		# The agent answers nginx's /v1/check with the filter's own decisions.
		check=",
  \"check\": { \"filter_config\": \"$dir/filter.json\" }"
	elif [ "$GATEWAY" = envoy-ext-authz ]; then
		say "autoid gateway render --target envoy-ext-authz --config ${config#"$REPO"/} --out run/envoy.json --filter-config run/filter.json --agent-credentials run/agent-credentials.json"
		autoid gateway render --target envoy-ext-authz --config "$config" --out "$dir/envoy.json" \
			--filter-config "$dir/filter.json" --agent-credentials "$dir/agent-credentials.json" >/dev/null
		# The agent answers Envoy's ext_authz at /v1/check with the filter's own decisions.
		check=",
  \"check\": { \"filter_config\": \"$dir/filter.json\" }"
	else
		say "replica $n: autoid gateway render --config ${config#"$REPO"/} --out ${dir#"$REPO"/}/envoy.json --agent-credentials ${dir#"$REPO"/}/agent-credentials.json"
		autoid gateway render --config "$config" --out "$dir/envoy.json" \
			--agent-credentials "$dir/agent-credentials.json" >/dev/null
	fi
	cat >"$dir/agent.json" <<EOF
{
  "listen": "unix:$dir/agent.sock",
  "ldap": {
    "url": "$LDAP_URL",
    "starttls": true,
    "ca_file": "$LDAP_CA_FILE",
    "bind_dn": "$LDAP_AGENT_DN",
    "bind_password_file": "$LDAP_AGENT_PASSWORD_FILE",
    "pool_size": 4
  },
  "users": { "base": "dc=example,dc=org" },
  "groups": { "base": "ou=groups,dc=example,dc=org" },
  "session_keys": [ { "kid": "gw-1", "private_key_file": "$RUN/keys/gw-1.key.pem" } ],
  "epoch_files": [ "$RUN/epochs/ep-1.epoch.json" ],
  "credentials_file": "$dir/agent-credentials.json"$replay$check
}
EOF
	: >"$LOGS/agent$suffix.log" && : >"$LOGS/envoy$suffix.log" && : >"$LOGS/access$suffix.log"
	say "replica $n: autoid agent"
	start "autoid agent $n" "$LOGS/agent$suffix.log" --env-file "$RUN/aws/agent.env" \
		--env-file "$RUN/secrets/agent.env" "$BIN/autoid-agent" --config "$dir/agent.json"
	# For `autoid rotate key --pid-file run/agent.pid` (removed when the demo stops).
	echo "${PIDS[-1]}" >"$dir/agent.pid"
	# The agent refuses to start while another one listens on the socket (another `make run`).
	wait_http "autoid agent $n" "http://localhost/readyz" 20 --unix-socket "$dir/agent.sock"
	echo "$GATEWAY" >"$RUN/gateway" # which gateway `make demo` talks to
	if [ "$GATEWAY" = nginx ]; then
		: >"$LOGS/nginx.log"
		mkdir -p "$RUN/nginx"
		# As root, nginx's workers would run as nobody, who cannot reach the agent's socket (mode
		# 0600): here they run as the user of the demo. A deployment gives the socket to nginx's
		# user instead (the agent's socket_mode "0660" and a shared group: docs/GATEWAYS.md).
		local user=""
		[ "$(id -u)" != 0 ] || user=" user root root;"
		say "nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') (auth_request → the agent's /v1/check)"
		start "nginx" "$LOGS/nginx.log" "$NGINX" -p "$RUN/nginx/" -c "$dir/nginx.conf" -g "daemon off;$user"
		wait_port "nginx" "$HTTPS_PORT" 20
		wait_port "nginx" "$HTTP_PORT" 5
		return
	fi
	local with="with the autoid filter"
	[ "$GATEWAY" != envoy-ext-authz ] || with="with ext_authz → the agent's /v1/check"
	say "replica $n: Envoy $("$ENVOY" --version | sed -n 's/.*version: [0-9a-f]*\/\([0-9.]*\)\/.*/\1/p') $with"
	start "Envoy $n" "$LOGS/access$suffix.log" "$ENVOY" -c "$dir/envoy.json" --concurrency 2 --use-dynamic-base-id \
		--log-path "$LOGS/envoy$suffix.log" --log-level "${ENVOY_LOG_LEVEL:-info}" --component-log-level wasm:info
	wait_http "Envoy $n" "http://localhost/ready" 30 --unix-socket "$dir/envoy-admin.sock"
}
for n in "${REPLICAS[@]}"; do replica "$n"; done

if [ "$FLEET" = 1 ]; then
	cat <<EOF

autoid fleet demo is running (Ctrl-C stops everything): two gateway replicas share one Redis.
  replica 1: https://127.0.0.1:$HTTPS_PORT  http://127.0.0.1:$HTTP_PORT  admin run/replica-1/envoy-admin.sock  agent run/replica-1/agent.sock
  replica 2: https://127.0.0.1:$((HTTPS_PORT + 1))  http://127.0.0.1:$((HTTP_PORT + 1))  admin run/replica-2/envoy-admin.sock  agent run/replica-2/agent.sock
  redis://127.0.0.1:$REDIS_PORT  the replay claims (redis-cli -p $REDIS_PORT --scan --pattern 'autoid:n:*')
  http://127.0.0.1:$UPSTREAM_PORT  demo upstream   http://127.0.0.1:$MOTO_PORT  AWS Secrets Manager (moto)   $LDAP_URL  OpenLDAP
Logs: run/logs/{envoy,access,agent}-{1,2}.log, run/logs/{redis,upstream,moto}.log

Try \`make demo-fleet\` in another terminal: one proof, accepted by replica 1 and refused (401) by
replica 2, which has never seen it.
EOF
else
	print_single
fi

# Stay in the foreground until Ctrl-C, or until a service dies.
while :; do
	for i in "${!PIDS[@]}"; do
		if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
			echo "run.sh: ${NAMES[$i]} exited; see run/logs/" >&2
			exit 1
		fi
	done
	sleep 1 &
	wait $! || true
done
