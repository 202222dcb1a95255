#!/usr/bin/env bash
# run_ldap.sh — a throwaway OpenLDAP directory for development and CI, on Debian's slapd.
#
#   openldap/run_ldap.sh start    init (first time), start, seed (first time), print how to connect
#                                 (the passwords' files, never a password)
#   openldap/run_ldap.sh stop     stop it (pidfile) and wait for it to exit
#   openldap/run_ldap.sh status   exit 0 when it runs and answers, 1 otherwise
#   openldap/run_ldap.sh seed     (re)load openldap/ldif/*.ldif; entries that exist are kept
#   openldap/run_ldap.sh run      start, then stay in the foreground until SIGTERM (containers)
#   openldap/run_ldap.sh env      print the connection settings of the running directory
#
# Environment (all optional):
#   LDAP_STATE_DIR      state dir: cn=config, mdb data, TLS files, log  (default: <repo>/run/ldap)
#   LDAP_PORT           ldap:// port, StartTLS offered   (default 3890 if free, else a free port;
#                       "auto" always picks a free one)
#   LDAPS_PORT          ldaps:// port                    (default 6360 if free, else a free port)
#   LDAP_LISTEN_HOST    listen address                   (default 127.0.0.1)
#   LDAP_ADMIN_PASSWORD rootdn password                  (default admin)
#   LDAP_TLS_SANS       extra subjectAltName entries for the server certificate, e.g. DNS:openldap
#   LDAP_START_TIMEOUT  seconds to wait for slapd to answer (default 20)
#   LDAP_DEBUG          slapd -d level                   (default stats)
#   LDAP_WATCH_PID      stop the directory when this process exits (test harnesses)
#   LDAP_WATCH_REMOVE=1 ...and then delete the state dir
#   AUTOID_INSTALL=1    install slapd and ldap-utils with apt if missing (root only)
#
# Nothing here reads or writes /etc/ldap/slapd.d, /var/lib/ldap or the system's slapd service:
# the configuration lives in a private slapd.d under the state dir, and slapd listens on its own
# ports (never 389/636).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
REPO=$(dirname "$HERE")
STATE_DIR=${LDAP_STATE_DIR:-$REPO/run/ldap}
LISTEN_HOST=${LDAP_LISTEN_HOST:-127.0.0.1}
case "$LISTEN_HOST" in
0.0.0.0 | "::" | "[::]") CONNECT_HOST=127.0.0.1 ;;
*) CONNECT_HOST=$LISTEN_HOST ;;
esac
BASE_DN="dc=example,dc=org"
ADMIN_DN="cn=admin,$BASE_DN"
ADMIN_PW=${LDAP_ADMIN_PASSWORD:-admin}
AGENT_DN="uid=autoid-agent,ou=services,$BASE_DN"
AGENT_PW="agent-secret" # matches the {SSHA} hash in ldif/10-services.ldif
START_TIMEOUT=${LDAP_START_TIMEOUT:-20}
SLAPD=${SLAPD:-/usr/sbin/slapd}
SLAPADD=${SLAPADD:-/usr/sbin/slapadd}
SLAPPASSWD=${SLAPPASSWD:-/usr/sbin/slappasswd}
MODULE_DIR=${LDAP_MODULE_DIR:-/usr/lib/ldap}
SCHEMA_DIR=${LDAP_SCHEMA_DIR:-/etc/ldap/schema}
INSTALL_CMD="apt-get install -y slapd ldap-utils"

log() { printf 'run_ldap: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# --- installation ---------------------------------------------------------------------------

missing_tools() {
	local t
	for t in "$SLAPD" "$SLAPADD" "$SLAPPASSWD"; do [ -x "$t" ] || echo "$t"; done
	for t in ldapadd ldapwhoami ldapsearch openssl; do command -v "$t" >/dev/null 2>&1 || echo "$t"; done
}

ensure_installed() {
	local missing
	missing=$(missing_tools | tr '\n' ' ')
	[ -z "$missing" ] && return 0
	if [ "${AUTOID_INSTALL:-0}" != 1 ] || [ "$(id -u)" != 0 ]; then
		log "missing: $missing"
		log "slapd and the OpenLDAP client tools are required. Install them with:"
		log "    $INSTALL_CMD"
		log "(as root; or rerun with AUTOID_INSTALL=1 as root to let this script do it)"
		exit 127
	fi
	log "installing slapd and ldap-utils with apt (AUTOID_INSTALL=1)"
	# The package must not configure or start a system directory: no_configuration leaves
	# /etc/ldap/slapd.d empty, and a temporary policy-rc.d (only if none exists) keeps invoke-rc.d
	# from starting the service during the install.
	echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
	local policy=/usr/sbin/policy-rc.d created_policy=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		created_policy=1
	fi
	local rc=0
	DEBIAN_FRONTEND=noninteractive apt-get install -y slapd ldap-utils ||
		{ DEBIAN_FRONTEND=noninteractive apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y slapd ldap-utils; } || rc=$?
	[ "$created_policy" = 1 ] && rm -f "$policy"
	[ "$rc" = 0 ] || die "apt-get install failed ($rc)"
	missing=$(missing_tools | tr '\n' ' ')
	[ -z "$missing" ] || die "still missing after install: $missing"
}

# --- ports ----------------------------------------------------------------------------------

port_in_use() { (exec 3<>"/dev/tcp/$CONNECT_HOST/$1") 2>/dev/null; }

random_free_port() {
	local p i
	for i in $(seq 1 200); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		port_in_use "$p" || {
			echo "$p"
			return 0
		}
	done
	die "no free port found"
}

# choose_port <env value> <saved value> <default>
choose_port() {
	local env=$1 saved=$2 def=$3
	if [ -n "$env" ] && [ "$env" != auto ]; then
		echo "$env"
	elif [ -n "$saved" ]; then
		echo "$saved"
	elif [ -z "$env" ] && ! port_in_use "$def"; then
		echo "$def"
	else
		random_free_port
	fi
}

# --- state ----------------------------------------------------------------------------------

pid_file() { echo "$STATE_DIR/slapd.run.pid"; }
running_pid() {
	local f pid
	f=$(pid_file)
	[ -f "$f" ] || return 1
	pid=$(cat "$f")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

saved() { [ -f "$STATE_DIR/ports" ] && sed -n "s/^$1=//p" "$STATE_DIR/ports" || true; }

make_tls() {
	local d="$STATE_DIR/tls"
	[ -f "$d/server.pem" ] && return 0
	mkdir -p "$d"
	chmod 700 "$d"
	local sans="DNS:localhost,IP:127.0.0.1"
	case "$CONNECT_HOST" in
	127.0.0.1 | localhost) ;;
	*[!0-9.]*) sans="$sans,DNS:$CONNECT_HOST" ;;
	*) sans="$sans,IP:$CONNECT_HOST" ;;
	esac
	[ -n "${LDAP_TLS_SANS:-}" ] && sans="$sans,$LDAP_TLS_SANS"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$d/ca.key" -out "$d/ca.pem" -days 30 -subj "/CN=autoid throwaway LDAP CA" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		>/dev/null 2>&1 || die "openssl: CA creation failed"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$d/server.key" -out "$d/server.csr" -subj "/CN=localhost" >/dev/null 2>&1 ||
		die "openssl: server key creation failed"
	printf '%s\n' "subjectAltName=$sans" "basicConstraints=critical,CA:FALSE" \
		"keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$d/server.ext"
	openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
		-set_serial "0x$(openssl rand -hex 12)" -days 30 -extfile "$d/server.ext" \
		-out "$d/server.pem" >/dev/null 2>&1 || die "openssl: server certificate signing failed"
	chmod 600 "$d"/*.key
}

# What a directory is made from: the configuration template, the seed entries and the service
# account's name. A state dir made from other inputs (an older checkout) is made anew.
inputs_digest() {
	{
		printf '%s\n' "$AGENT_DN"
		cat "$HERE"/config/* "$HERE"/ldif/*.ldif
	} | sha256sum | cut -d' ' -f1
}

init_state() {
	local inputs
	inputs=$(inputs_digest)
	if [ -f "$STATE_DIR/slapd.d/cn=config.ldif" ]; then
		[ "$(cat "$STATE_DIR/inputs.sha256" 2>/dev/null)" = "$inputs" ] && return 0
		log "$STATE_DIR was made from other definitions (openldap/config, openldap/ldif, the agent's account): making it anew"
	fi
	log "initialising a new directory in $STATE_DIR"
	rm -rf "$STATE_DIR/slapd.d" "$STATE_DIR/data" "$STATE_DIR/seeded"
	mkdir -p "$STATE_DIR/slapd.d" "$STATE_DIR/data"
	chmod 700 "$STATE_DIR/slapd.d" "$STATE_DIR/data"
	make_tls
	local hash
	hash=$("$SLAPPASSWD" -s "$ADMIN_PW")
	sed -e "s|@STATE_DIR@|$STATE_DIR|g" -e "s|@MODULE_DIR@|$MODULE_DIR|g" \
		-e "s|@SCHEMA_DIR@|$SCHEMA_DIR|g" -e "s|@ADMIN_PW_HASH@|$hash|g" \
		"$HERE/config/slapd-config.ldif.in" >"$STATE_DIR/config.ldif"
	"$SLAPADD" -n 0 -F "$STATE_DIR/slapd.d" -l "$STATE_DIR/config.ldif" >"$STATE_DIR/slapadd.log" 2>&1 ||
		{
			cat "$STATE_DIR/slapadd.log" >&2
			die "slapadd of cn=config failed"
		}
	printf '%s\n' "$inputs" >"$STATE_DIR/inputs.sha256"
}

write_secrets() {
	umask 077
	printf '%s' "$ADMIN_PW" >"$STATE_DIR/admin.password"
	printf '%s' "$AGENT_PW" >"$STATE_DIR/agent.password"
}

ldap_url() { echo "ldap://$CONNECT_HOST:$LDAP_PORT_SEL"; }
ldaps_url() { echo "ldaps://$CONNECT_HOST:$LDAPS_PORT_SEL"; }

answers() {
	LDAPTLS_REQCERT=never ldapwhoami -x -o nettimeout=2 -H "$(ldap_url)" -D "$ADMIN_DN" \
		-y "$STATE_DIR/admin.password" >/dev/null 2>&1
}

# The settings, without a password: the passwords are in their files (mode 0600), and what this
# prints ends up in logs (run.sh keeps `start`'s output in run/logs/ldap-start.log).
print_env() {
	cat <<EOF
LDAP_URL=$(ldap_url)
LDAPS_URL=$(ldaps_url)
LDAP_STARTTLS=offered on LDAP_URL
LDAP_BASE_DN=$BASE_DN
LDAP_ADMIN_DN=$ADMIN_DN
LDAP_ADMIN_PASSWORD_FILE=$STATE_DIR/admin.password
LDAP_AGENT_DN=$AGENT_DN
LDAP_AGENT_PASSWORD_FILE=$STATE_DIR/agent.password
LDAP_CA_FILE=$STATE_DIR/tls/ca.pem
LDAP_STATE_DIR=$STATE_DIR
LDAP_PID=$(running_pid || true)
LDAP_LOG=$STATE_DIR/slapd.log
EOF
}

# --- commands -------------------------------------------------------------------------------

cmd_seed() {
	local pid f out bad=0
	pid=$(running_pid) || die "not running (start it first)"
	for f in "$HERE"/ldif/*.ldif; do
		out=$(ldapadd -c -x -H "$(ldap_url)" -D "$ADMIN_DN" -y "$STATE_DIR/admin.password" -f "$f" 2>&1) || true
		# Entries that already exist are fine (re-seeding); anything else is an error.
		if printf '%s\n' "$out" | grep -E '^ldap_add: ' | grep -vq 'Already exists (68)'; then
			printf '%s\n' "$out" >&2
			bad=1
		fi
	done
	[ "$bad" = 0 ] || die "seeding failed"
	touch "$STATE_DIR/seeded"
	log "seeded $(ls "$HERE"/ldif/*.ldif | wc -l) LDIF files into $BASE_DN"
}

launch() {
	# slapd -d keeps it in the foreground (logs to the log file); setsid detaches it from our
	# terminal and process group; none of our file descriptors stay open in it.
	: >"$STATE_DIR/slapd.log"
	setsid "$SLAPD" -F "$STATE_DIR/slapd.d" \
		-h "ldap://$LISTEN_HOST:$LDAP_PORT_SEL/ ldaps://$LISTEN_HOST:$LDAPS_PORT_SEL/" \
		-d "${LDAP_DEBUG:-stats}" </dev/null >>"$STATE_DIR/slapd.log" 2>&1 &
	echo $! >"$(pid_file)"
}

# wait_ready: 0 ready, 1 slapd died, 2 deadline passed
wait_ready() {
	local pid=$1 deadline=$((SECONDS + START_TIMEOUT))
	while [ "$SECONDS" -lt "$deadline" ]; do
		kill -0 "$pid" 2>/dev/null || return 1
		answers && return 0
		sleep 0.1
	done
	return 2
}

start_watcher() {
	[ -n "${LDAP_WATCH_PID:-}" ] || return 0
	LDAP_STATE_DIR=$STATE_DIR setsid bash -c '
		while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
		"$2" stop
		if [ "$3" = 1 ]; then rm -rf "$LDAP_STATE_DIR"; fi' run_ldap-watch \
		"$LDAP_WATCH_PID" "$SELF" "${LDAP_WATCH_REMOVE:-0}" </dev/null >/dev/null 2>&1 &
	echo $! >"$STATE_DIR/watch.pid"
}

cmd_start() {
	ensure_installed
	mkdir -p "$STATE_DIR"
	STATE_DIR=$(cd "$STATE_DIR" && pwd)
	LDAP_PORT_SEL=$(choose_port "${LDAP_PORT:-}" "$(saved LDAP_PORT)" 3890)
	LDAPS_PORT_SEL=$(choose_port "${LDAPS_PORT:-}" "$(saved LDAPS_PORT)" 6360)
	if running_pid >/dev/null; then
		log "already running (pid $(running_pid))"
		print_env
		return 0
	fi
	case "$LISTEN_HOST" in
	127.* | localhost | ::1 | "[::1]") ;;
	*) log "WARNING: listening on $LISTEN_HOST, not loopback: throwaway passwords are exposed" ;;
	esac
	init_state
	write_secrets
	local attempt rc pid
	for attempt in 1 2 3 4 5; do
		launch
		pid=$(cat "$(pid_file)")
		rc=0
		wait_ready "$pid" || rc=$?
		[ "$rc" = 0 ] && break
		if [ "$rc" = 2 ]; then
			kill -KILL "$pid" 2>/dev/null || true
			tail -n 30 "$STATE_DIR/slapd.log" >&2
			die "slapd did not answer within ${START_TIMEOUT}s"
		fi
		# slapd died. A port taken between our check and its bind is retried with fresh ports
		# when the ports were not fixed by the caller.
		if grep -q 'bind(.*) failed\|Address already in use' "$STATE_DIR/slapd.log" &&
			{ [ -z "${LDAP_PORT:-}" ] || [ "${LDAP_PORT:-}" = auto ]; } &&
			{ [ -z "${LDAPS_PORT:-}" ] || [ "${LDAPS_PORT:-}" = auto ]; } && [ "$attempt" -lt 5 ]; then
			log "port taken, retrying with other ports"
			LDAP_PORT_SEL=$(random_free_port)
			LDAPS_PORT_SEL=$(random_free_port)
			continue
		fi
		tail -n 30 "$STATE_DIR/slapd.log" >&2
		die "slapd exited during startup (log: $STATE_DIR/slapd.log)"
	done
	printf 'LDAP_PORT=%s\nLDAPS_PORT=%s\n' "$LDAP_PORT_SEL" "$LDAPS_PORT_SEL" >"$STATE_DIR/ports"
	[ -f "$STATE_DIR/seeded" ] || cmd_seed
	start_watcher
	print_env >"$STATE_DIR/ldap.env"
	log "slapd running (pid $pid): $(ldap_url) (StartTLS) and $(ldaps_url)"
	print_env
}

load_ports() {
	[ -d "$STATE_DIR" ] || return 1
	STATE_DIR=$(cd "$STATE_DIR" && pwd)
	LDAP_PORT_SEL=$(saved LDAP_PORT)
	LDAPS_PORT_SEL=$(saved LDAPS_PORT)
	[ -n "$LDAP_PORT_SEL" ]
}

cmd_stop() {
	[ -d "$STATE_DIR" ] || {
		log "not running (no state dir $STATE_DIR)"
		return 0
	}
	local wpid pid i
	if [ -f "$STATE_DIR/watch.pid" ]; then
		wpid=$(cat "$STATE_DIR/watch.pid")
		rm -f "$STATE_DIR/watch.pid"
		# The watcher runs this very command when its process exits: do not kill ourselves.
		if [ -n "$wpid" ] && [ "$wpid" != "$$" ] && [ "$wpid" != "$PPID" ]; then
			kill "$wpid" 2>/dev/null || true
		fi
	fi
	pid=$(running_pid) || {
		rm -f "$(pid_file)"
		log "not running"
		return 0
	}
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "slapd $pid ignored SIGTERM for 10s, killing it"
		kill -KILL "$pid" 2>/dev/null || true
		for i in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
	rm -f "$(pid_file)"
	log "stopped slapd (pid $pid)"
}

cmd_status() {
	local pid
	if load_ports && pid=$(running_pid) && answers; then
		echo "running (pid $pid): $(ldap_url) $(ldaps_url)"
		return 0
	fi
	echo "not running"
	return 1
}

cmd_run() {
	cmd_start
	local pid
	pid=$(running_pid) || die "slapd is not running"
	trap 'cmd_stop; exit 0' TERM INT
	while kill -0 "$pid" 2>/dev/null; do
		sleep 1 &
		wait $! || true
	done
	die "slapd exited (log: $STATE_DIR/slapd.log)"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
seed)
	ensure_installed
	load_ports || die "no directory in $STATE_DIR (start it first)"
	cmd_seed
	;;
run) cmd_run ;;
env)
	load_ports || die "no directory in $STATE_DIR"
	print_env
	;;
*)
	echo "usage: $0 start|stop|status|seed|run|env" >&2
	exit 2
	;;
esac
