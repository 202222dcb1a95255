# launch.sh — sourced by run.sh: starts each process of the demo in the background with a clean
# environment, so that each secret reaches only the process that uses it. A process inherits
# nothing of run.sh's environment but KEEP_ENV (where programs are, home, the locale): not a
# developer's own AWS keys or tokens, not the agent's secrets. The agent's secrets come from 0600
# files (`start … --env-file FILE`), for its process only. e2e/tests/secrets.rs tests this file.
#
# start NAME LOGFILE [--env-file FILE]... CMD...   appends the pid to PIDS and NAME to NAMES

PIDS=()
NAMES=()
# What of run.sh's environment the processes it starts inherit.
KEEP_ENV='^(PATH|HOME|LANG|LC_[A-Z]+|TZ|TMPDIR)$'

clean_env() { # in the subshell about to exec a process: unexport everything but KEEP_ENV
	local v
	for v in $(compgen -e); do
		[[ $v =~ $KEEP_ENV ]] || export -n "$v"
	done
}

start() { # start NAME LOGFILE [--env-file FILE]... CMD...: CMD with a clean environment, plus
	# the KEY=VALUE lines of each FILE (mode 0600: the agent's secrets, for the agent only)
	local name=$1 log=$2 files=()
	shift 2
	while [ "$1" = --env-file ]; do
		files+=("$2")
		shift 2
	done
	(
		clean_env
		set -a
		for f in ${files[@]+"${files[@]}"}; do
			# shellcheck source=/dev/null
			. "$f"
		done
		set +a
		exec "$@"
	) </dev/null >>"$log" 2>&1 &
	PIDS+=($!)
	NAMES+=("$name")
}
