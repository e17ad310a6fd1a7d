# test/lib.sh — shared by test/run, demo/run and bench/run: installs what the
# project needs from Debian, builds and installs the extension, and starts a
# throwaway PostgreSQL 15 cluster.  Source it; it defines functions only.

# USERLIFE_PG_BIN points at another PostgreSQL 15 tree (a private copy lets
# several runs build and install at once without sharing the server's tree)
PG_BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
# pg_cron is for the test of schedule_maintenance
# libcurl4-openssl-dev, python3 and openssl are for userlife_webhooks and its tests
USERLIFE_PACKAGES="postgresql-server-dev-15 postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl postgresql-15-cron libcurl4-openssl-dev python3 openssl"

# userlife_install_packages [extra packages...]: apt-get only what is missing
userlife_install_packages() {
	local missing=() p
	for p in $USERLIFE_PACKAGES "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "== installing ${missing[*]}"
		if [ "$(id -u)" -ne 0 ]; then
			echo "missing packages ${missing[*]}; run as root to install them" >&2
			return 1
		fi
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	fi
}

# userlife_build: compile and install into the server's tree.  The flags
# are the CI's, not the Makefile's: warnings are errors, and assertions are
# on (c.h: ExceptionalCondition is in every server so that an extension built
# with USE_ASSERT_CHECKING runs against one built without).  bench/run sets
# USERLIFE_COPT without the assertions.  A change of flags rebuilds all.
userlife_build() {
	local copt=${USERLIFE_COPT--Wall -Wextra -Werror -DUSE_ASSERT_CHECKING}
	local stamp="$USERLIFE_ROOT/.build-flags"
	echo "== building userlife ($copt)"
	if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$copt" ]; then
		make -s -C "$USERLIFE_ROOT" PG_CONFIG="$PG_BIN/pg_config" clean >/dev/null
		printf '%s' "$copt" >"$stamp"
	fi
	make -s -C "$USERLIFE_ROOT" PG_CONFIG="$PG_BIN/pg_config" COPT="$copt" >/dev/null || return 1
	# scripts of an earlier install that this tree no longer has would open
	# other update paths than the ones the tree ships
	rm -f "$("$PG_BIN/pg_config" --sharedir)"/extension/userlife--*.sql
	make -s -C "$USERLIFE_ROOT" PG_CONFIG="$PG_BIN/pg_config" COPT="$copt" install >/dev/null
}

# userlife_free_port: a TCP port nothing listens on (the cluster only uses
# a unix socket, but the port names the socket file)
userlife_free_port() {
	local port
	for port in $(seq 54320 54420); do
		if [ ! -e "/tmp/.s.PGSQL.$port" ] && ! ss -ltn 2>/dev/null | grep -q ":$port "; then
			echo "$port"
			return 0
		fi
	done
	return 1
}

# userlife_start_cluster [postgres -c options...]: initdb + start as the
# postgres OS user in a temp dir, with userlife in session_preload_libraries
# (as the README recommends; an option given here comes after it and wins);
# exports PGHOST/PGPORT/PGUSER and
# USERLIFE_TMP, USERLIFE_PGDATA, USERLIFE_LOG; stop with userlife_stop_cluster
userlife_start_cluster() {
	USERLIFE_TMP=$(mktemp -d /tmp/userlife.XXXXXX)
	chmod 755 "$USERLIFE_TMP"
	chown postgres: "$USERLIFE_TMP"
	USERLIFE_PGDATA="$USERLIFE_TMP/data"
	USERLIFE_LOG="$USERLIFE_TMP/server.log"
	local port opts="-c session_preload_libraries=userlife" o
	port=$(userlife_free_port)
	for o in "$@"; do opts="$opts -c $o"; done
	runuser -u postgres -- "$PG_BIN/initdb" -D "$USERLIFE_PGDATA" -U postgres --auth=trust \
		--encoding=UTF8 --locale=C.UTF-8 >/dev/null
	runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$USERLIFE_PGDATA" -l "$USERLIFE_LOG" -w -t 60 \
		-o "-k $USERLIFE_TMP -p $port -c listen_addresses='' -c log_min_messages=warning $opts" start >/dev/null
	export PGHOST="$USERLIFE_TMP" PGPORT="$port" PGUSER=postgres
	export USERLIFE_TMP USERLIFE_PGDATA USERLIFE_LOG
	echo "== throwaway cluster on socket $PGHOST port $PGPORT"
}

userlife_stop_cluster() {
	if [ -n "${USERLIFE_PGDATA:-}" ] && [ -d "$USERLIFE_PGDATA" ]; then
		runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$USERLIFE_PGDATA" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	if [ -n "${USERLIFE_TMP:-}" ] && [ -z "${USERLIFE_KEEP_TMP:-}" ]; then
		rm -rf "$USERLIFE_TMP"
	fi
}

# userlife_crashes_in_log: prints backend crashes found in the server log
userlife_crashes_in_log() {
	grep -E "terminated by signal|TRAP:" "$USERLIFE_LOG" || true
}

# userlife_plproxy: PL/Proxy (for userlife_router) from Debian, copied into
# the server's tree when that is a private copy (USERLIFE_PG_BIN) made
# before the package was installed
userlife_plproxy() {
	local libdir extdir f try
	for try in 1 2 3 4 5 6; do
		userlife_install_packages postgresql-15-plproxy && break
		sleep 10 # another apt-get may hold the lock
	done
	libdir=$("$PG_BIN/pg_config" --pkglibdir)
	extdir=$("$PG_BIN/pg_config" --sharedir)/extension
	[ -f "$libdir/plproxy.so" ] || cp /usr/lib/postgresql/15/lib/plproxy.so "$libdir/" || return 1
	for f in /usr/share/postgresql/15/extension/plproxy*; do
		[ -f "$extdir/${f##*/}" ] || cp "$f" "$extdir/" || return 1
	done
}
