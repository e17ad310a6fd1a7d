# test/standby/lib.sh — shared by test/scripts/standby.sh and
# test/scripts/failover.sh: a primary and a hot standby of their own, as the
# postgres OS user, in a temp dir, on unix sockets only, stopped on exit.
# Source it after setting ROOT; it sets a trap on EXIT.
#
#   sb_start_primary [postgres -c options...]   initdb + start; sets $PP (psql)
#   sb_start_standby [postgres -c options...]   pg_basebackup -R + start; sets $PS
#   sb_wait_replay DB       until the standby replayed the primary's current WAL
#   sb_stop                 both, immediately (the trap does it too)

SB_BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
SB_TMP=$(mktemp -d /tmp/userlife_sb.XXXXXX)
chmod 755 "$SB_TMP"
chown postgres: "$SB_TMP"
SB_PRIMARY="$SB_TMP/primary"
SB_STANDBY="$SB_TMP/standby"
SB_PRIMARY_LOG="$SB_TMP/primary.log"
SB_STANDBY_LOG="$SB_TMP/standby.log"
# the sockets are in our own directory, so any two ports do
SB_PRIMARY_PORT=54701
SB_STANDBY_PORT=54702
# the settings of test/lib.sh's cluster (the README's), for both servers
SB_COMMON="-k $SB_TMP -c listen_addresses='' -c session_preload_libraries=userlife -c log_min_messages=warning"
PP="$SB_BIN/psql -X -q -v ON_ERROR_STOP=1 -h $SB_TMP -p $SB_PRIMARY_PORT -U postgres"
PS="$SB_BIN/psql -X -q -v ON_ERROR_STOP=1 -h $SB_TMP -p $SB_STANDBY_PORT -U postgres"

sb_pg() {
	runuser -u postgres -- "$SB_BIN/$1" "${@:2}"
}

sb_stop() {
	local d
	for d in "$SB_STANDBY" "$SB_PRIMARY"; do
		[ -f "$d/postmaster.pid" ] && sb_pg pg_ctl -D "$d" -m immediate -w stop >/dev/null 2>&1
	done
	return 0
}

sb_cleanup() {
	sb_stop
	[ -n "${SB_KEEP:-}" ] || rm -rf "$SB_TMP"
}
trap sb_cleanup EXIT

# sb_options ARGS...: "-c a -c b" for pg_ctl -o
sb_options() {
	local o opts=""
	for o in "$@"; do opts="$opts -c $o"; done
	echo "$opts"
}

# --no-sync for initdb and pg_basebackup: the tests kill processes, not the
# machine, so what sits in the OS's cache survives them, and the fsyncs take
# seconds on a busy disk
sb_start_primary() {
	sb_pg initdb -D "$SB_PRIMARY" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
		--no-sync >/dev/null || return 1
	# a standby connects for replication over the local socket
	echo "local replication all trust" >>"$SB_PRIMARY/pg_hba.conf"
	cat >>"$SB_PRIMARY/postgresql.conf" <<-EOF
		wal_level = replica
		max_wal_senders = 4
		hot_standby = on
	EOF
	sb_pg pg_ctl -D "$SB_PRIMARY" -l "$SB_PRIMARY_LOG" -w -t 60 \
		-o "-p $SB_PRIMARY_PORT $SB_COMMON $(sb_options "$@")" start >/dev/null
}

sb_start_standby() {
	sb_pg pg_basebackup -h "$SB_TMP" -p $SB_PRIMARY_PORT -U postgres -D "$SB_STANDBY" \
		-R -X stream -c fast --no-sync -d "application_name=standby1" >/dev/null || return 1
	sb_pg pg_ctl -D "$SB_STANDBY" -l "$SB_STANDBY_LOG" -w -t 60 \
		-o "-p $SB_STANDBY_PORT $SB_COMMON $(sb_options "$@")" start >/dev/null || return 1
	[ "$($PS -d postgres -At -c "SELECT pg_is_in_recovery()")" = t ]
}

sb_wait_replay() {
	local lsn i
	lsn=$($PP -d "$1" -At -c "SELECT pg_current_wal_lsn()") || return 1
	for i in $(seq 1 300); do
		[ "$($PS -d "$1" -At -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ] && return 0
		sleep 0.1
	done
	return 1
}
