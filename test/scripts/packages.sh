#!/usr/bin/env bash
# packages.sh — the Debian packages (issue 21, README "Install from
# packages"): the version agrees everywhere with userlife.control; the
# packages build from a clean copy of the tree and pass lintian without
# errors; installed with apt-get into the system's server tree (after the
# files of `make install` are taken out) they give CREATE EXTENSION
# userlife CASCADE and a passing pg_regress suite on a cluster of the
# system's binaries, whose backends load the packaged library; systemd
# accepts the unit; purged, they leave nothing behind.  Prints TAP.
#
# It changes the SYSTEM tree (/usr/lib/postgresql/15, /usr/share/...) and
# puts it back: the userlife files found there (the suite's own `make
# install` when test/run builds into the system tree) are saved first and
# restored byte for byte at the end, whatever happens (trap).  test/run's
# cluster is not used and keeps the library it loaded.  So that it never
# pulls the system tree from under someone else, it runs only
#   * when the suite itself runs against the system tree (USERLIFE_PG_BIN
#     unset or /usr/lib/postgresql/15/bin: the README's test command), or
#     USERLIFE_PACKAGES_TEST=1 says so, else it skips everything;
#   * for the install part (7-20), when no other cluster of the system's
#     binaries runs and the packages are not installed already, else it
#     skips that part; runs of it take turns (flock).
# It needs no cluster of test/run: `bash test/scripts/packages.sh` (as
# root) runs it alone.  CPU: about 1.5 minutes.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SYS=/usr/lib/postgresql/15
SHARE=/usr/share/postgresql/15
PACKAGES=(postgresql-15-userlife userlife-webhooks)
PLAN=20

echo "1..$PLAN"
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
skip_all() {
	echo "# $1"
	for i in $(seq $((n + 1)) $PLAN); do echo "ok $i # SKIP $1"; done
	exit 0
}

# ---- may it touch the system tree? ---------------------------------------
suite_bin=$(realpath -m "${USERLIFE_PG_BIN:-$SYS/bin}")
if [ "$suite_bin" != "$SYS/bin" ] && [ "${USERLIFE_PACKAGES_TEST:-}" != 1 ]; then
	skip_all "the suite runs against $suite_bin, not the system tree the packages install into (USERLIFE_PACKAGES_TEST=1 runs it anyway)"
fi
# other clusters of the system binaries (their processes' working directory
# is their data directory); test/run's own is not disturbed
foreign_clusters() {
	local p exe cwd own
	own=$(realpath -m "${USERLIFE_PGDATA:-/nonexistent}")
	for p in /proc/[0-9]*; do
		exe=$(readlink "$p/exe" 2>/dev/null) || continue
		[ "$exe" = "$SYS/bin/postgres" ] || continue
		cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
		[ "$cwd" = "$own" ] || echo "$cwd"
	done | sort -u
}

. "$ROOT/test/lib.sh"
userlife_install_packages build-essential dpkg-dev debhelper postgresql-server-dev-all \
	libpq-dev libcurl4-openssl-dev python3 lintian || { echo "# the build tools could not be installed"; exit 1; }

work=$(mktemp -d /tmp/userlife-packages.XXXXXX)
chmod 755 "$work"
src="$work/src"
saved="$work/saved.tar"
user_before=$(getent passwd userlife-webhooks >/dev/null && echo yes || echo no)
override_before=$(dpkg-statoverride --list /etc/userlife/webhooks.env >/dev/null && echo yes || echo no)
installed=no
cluster=no
touched=no

# what `make install` (or an earlier install) put into the system tree
installed_files() {
	( shopt -s nullglob
	  for f in "$SYS"/lib/userlife*.so "$SYS"/lib/bitcode/userlife* "$SHARE"/extension/userlife* \
		  "$SYS"/bin/userlife_*; do
		  [ -d "$f" ] && find "$f" -type f || echo "$f"
	  done ) | sort
}
checksums() { installed_files | while read -r f; do sha256sum "$f"; done; }

cleanup() {
	if [ "$cluster" = yes ]; then
		userlife_stop_cluster
	fi
	if [ "$installed" = yes ]; then
		DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${PACKAGES[@]}" >/dev/null 2>&1
	fi
	if [ "$override_before" = no ] && dpkg-statoverride --list /etc/userlife/webhooks.env >/dev/null; then
		dpkg-statoverride --remove /etc/userlife/webhooks.env
	fi
	if [ "$user_before" = no ] && getent passwd userlife-webhooks >/dev/null; then
		deluser --system --quiet userlife-webhooks >/dev/null 2>&1
		getent group userlife-webhooks >/dev/null && delgroup --system --quiet userlife-webhooks >/dev/null 2>&1
	fi
	# the system tree as it was: nothing of the packages, the saved files
	# back (only once they were saved: before that nothing was touched)
	if [ "$touched" = yes ]; then
		installed_files | xargs -r rm -f
		rm -rf "$SYS"/lib/bitcode/userlife
		tar -xpf "$saved" -C /
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1-3: one version ----------------------------------------------------
version=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$ROOT/userlife.control")
"$ROOT/tools/sync-version" --check >"$work/check.log" 2>&1
tap $? "META.json and debian/changelog carry userlife.control's version ($version)"
sed 's/^/# /' "$work/check.log"

# a clean copy: the tracked files as they are in the work tree
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	mkdir -p "$src"
	(cd "$ROOT" && git ls-files -z | xargs -0 cp -P --parents -t "$src")
else
	cp -a "$ROOT" "$src" && make -s -C "$src" clean PG_CONFIG="$SYS/bin/pg_config" >/dev/null 2>&1
fi

# a moved version is caught, and make meta carries it over
drift="$work/drift"
cp -a "$src" "$drift"
sed -i "s/^default_version = .*/default_version = '9.9.9'/" "$drift/userlife.control"
"$drift/tools/sync-version" --check >"$work/drift.log" 2>&1
drift_rc=$?
make -s -C "$drift" meta PG_CONFIG="$SYS/bin/pg_config" >>"$work/drift.log" 2>&1 &&
	"$drift/tools/sync-version" --check >>"$work/drift.log" 2>&1 &&
	[ "$(cd "$drift" && dpkg-parsechangelog -S Version)" = 9.9.9 ] &&
	[ "$(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["version"], d["provides"]["userlife"]["version"])' "$drift/META.json")" = "9.9.9 9.9.9" ]
meta_rc=$?
[ "$drift_rc" -eq 1 ] && grep -q "^META.json does not match" "$work/drift.log" &&
	grep -q "^debian/changelog does not match" "$work/drift.log" && [ "$meta_rc" -eq 0 ]
tap $? "a new default_version fails the check until make meta writes it into META.json and debian/changelog"
rm -rf "$drift"

(cd "$src" && pg_buildext checkcontrol) >"$work/control.log" 2>&1
tap $? "debian/control is the one pg_buildext generates from debian/control.in and debian/pgversions"

# ---- 4-6: build and lintian ----------------------------------------------
start=$(date +%s)
(cd "$src" && dpkg-buildpackage -us -uc -b -j"$(nproc)") >"$work/build.log" 2>&1
build_rc=$?
echo "# dpkg-buildpackage: $(($(date +%s) - start)) s"
deb_lib="$work/postgresql-15-userlife_${version}_$(dpkg --print-architecture).deb"
deb_wh="$work/userlife-webhooks_${version}_$(dpkg --print-architecture).deb"
[ "$build_rc" -eq 0 ] && [ -f "$deb_lib" ] && [ -f "$deb_wh" ]
tap $? "dpkg-buildpackage -us -uc -b builds postgresql-15-userlife and userlife-webhooks $version"
[ "$build_rc" -eq 0 ] || tail -30 "$work/build.log" | sed 's/^/# /'
[ "$build_rc" -eq 0 ] || exit 1

# every extension the tree has (userlife_router too) is in the package
dpkg-deb -c "$deb_lib" | awk '{print $6}' >"$work/lib.contents"
dpkg-deb -c "$deb_wh" | awk '{print $6}' >"$work/wh.contents"
missing=""
for c in "$src"/*.control; do
	grep -qx "\./usr/share/postgresql/15/extension/$(basename "$c")" "$work/lib.contents" ||
		missing="$missing $(basename "$c")"
done
grep -qx '\./usr/lib/postgresql/15/lib/userlife\.so' "$work/lib.contents" && [ -z "$missing" ] &&
	grep -qx '\./usr/bin/userlife_webhooks' "$work/wh.contents" &&
	grep -qx '\./usr/bin/userlife_worker' "$work/wh.contents" &&
	! grep -q 'bin/userlife_' "$work/lib.contents"
tap $? "the library and every control file of the tree ($(cd "$src" && echo *.control)) in postgresql-15-userlife, both programs in userlife-webhooks only"
[ -z "$missing" ] || echo "# not packaged:$missing"

# as an unprivileged user, as lintian asks
runuser -u postgres -- lintian --display-info --pedantic "$work"/userlife_"${version}"_*.changes >"$work/lintian.log" 2>&1
sed 's/^/# lintian: /' "$work/lintian.log" | sort -u
! grep -q '^E:' "$work/lintian.log" && ! grep -q '^W:' "$work/lintian.log"
tap $? "lintian: no error and no warning (the info and pedantic tags left are listed above)"

# ---- 7-8: out with make install, in with the packages --------------------
# from here on the system tree changes: one run at a time, and none while
# another cluster runs on it
exec 9>/tmp/userlife-packages.lock
flock -w 900 9 || skip_all "another packages.sh held /tmp/userlife-packages.lock for 15 minutes"
others=$(foreign_clusters | tr '\n' ' ')
[ -z "$others" ] || skip_all "other clusters of $SYS/bin are running (${others% }): the system tree is in use"
pre=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${PACKAGES[@]}" 2>/dev/null | awk '$1 != "un" { print $2 }' | tr '\n' ' ')
[ -z "$pre" ] || skip_all "${pre% } already installed here: the test would purge it"
checksums >"$work/before.sha"
installed_files | sed 's|^/||' >"$work/saved.list"
tar -cpf "$saved" -C / -T "$work/saved.list" 2>"$work/tar.log" || { cat "$work/tar.log"; exit 1; }
touched=yes
echo "# saved $(wc -l <"$work/saved.list") files of an earlier make install"
installed_files | xargs -r rm -f
rm -rf "$SYS"/lib/bitcode/userlife
[ -z "$(installed_files)" ]
tap $? "nothing of make install left in the system tree"

DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$deb_lib" "$deb_wh" \
	>"$work/apt.log" 2>&1
apt_rc=$?
installed=yes
[ "$apt_rc" -eq 0 ] && dpkg-query -W -f='${Status} ${Version}\n' "${PACKAGES[@]}" | grep -c "install ok installed $version" | grep -qx 2
tap $? "apt-get install ./postgresql-15-userlife_…deb ./userlife-webhooks_…deb"
[ "$apt_rc" -eq 0 ] || tail -20 "$work/apt.log" | sed 's/^/# /'
dpkg -L "${PACKAGES[@]}" | sort -u >"$work/files.list"

# ---- 9-10: the webhook package's system parts ----------------------------
pw=$(getent passwd userlife-webhooks)
uid=$(echo "$pw" | cut -d: -f3)
[ -n "$pw" ] && [ "$uid" -lt 1000 ] && [ "$(echo "$pw" | cut -d: -f7)" = /usr/sbin/nologin ] &&
	[ "$(stat -c '%a %U %G' /etc/userlife/webhooks.env)" = "640 root userlife-webhooks" ]
tap $? "system user userlife-webhooks (uid $uid, no login); /etc/userlife/webhooks.env 0640 root:userlife-webhooks"

/usr/bin/userlife_webhooks --check-address 127.0.0.1 >/dev/null 2>&1
loop_rc=$?
/usr/bin/userlife_webhooks --allow-network 127.0.0.0/8 --check-address 127.0.0.1 >/dev/null 2>&1
allow_rc=$?
/usr/bin/userlife_worker --no-such-option >/dev/null 2>&1
worker_rc=$?
[ "$loop_rc" -eq 1 ] && [ "$allow_rc" -eq 0 ] && [ "$worker_rc" -eq 2 ]
tap $? "the packaged programs run (loopback refused $loop_rc, allowed $allow_rc; worker usage $worker_rc)"

# ---- 11-12: the unit -----------------------------------------------------
unit=/lib/systemd/system/userlife-webhooks.service
if [ -d /run/systemd/system ]; then
	systemctl cat userlife-webhooks >"$work/unit.log" 2>&1
else
	# no running systemd here: verify the unit file offline
	systemd-analyze verify "$unit" >"$work/unit.log" 2>&1
fi
unit_rc=$?
sed 's/^/# systemd: /' "$work/unit.log"
# systemd-analyze verify exits 0 on warnings too: none may name the unit
[ "$unit_rc" -eq 0 ] && { [ -d /run/systemd/system ] || ! grep -q "$(basename "$unit")" "$work/unit.log"; }
tap $? "systemd accepts the unit ($([ -d /run/systemd/system ] && echo 'systemctl cat' || echo 'systemd-analyze verify'))"
grep -qx 'EnvironmentFile=/etc/userlife/webhooks.env' "$unit" && grep -qx 'Restart=on-failure' "$unit" &&
	grep -qx 'User=userlife-webhooks' "$unit" && grep -q '^ExecStart=/usr/bin/userlife_webhooks ' "$unit" &&
	! systemctl is-enabled userlife-webhooks >/dev/null 2>&1
tap $? "the unit reads /etc/userlife/webhooks.env, restarts on failure, runs as userlife-webhooks, is installed disabled"

# ---- 13-16: the extension from the packaged files ------------------------
PG_BIN=$SYS/bin
userlife_start_cluster >/dev/null
cluster=yes
"$SYS/bin/psql" -X -q -At -v ON_ERROR_STOP=1 -d postgres >"$work/create.log" 2>&1 <<'SQL'
CREATE DATABASE userlife_packages;
\c userlife_packages
SET client_min_messages = warning;
CREATE EXTENSION userlife CASCADE;
SELECT string_agg(extname || ' ' || extversion, ', ' ORDER BY extname) FROM pg_extension WHERE extname <> 'plpgsql';
SELECT userlife.create_partner('pkg');
SELECT 'registered ' || (userlife.register_user('pkg', 'u-1')).status;
SQL
create_rc=$?
sed 's/^/# /' "$work/create.log"
grep -qx "pg_trgm [0-9.]*, pgcrypto [0-9.]*, userlife $version" "$work/create.log" &&
	grep -qx "registered active" "$work/create.log" && [ "$create_rc" -eq 0 ]
tap $? "CREATE EXTENSION userlife CASCADE installs userlife $version with pgcrypto and pg_trgm, and a user registers"

# the library a backend loads is the package's file (every backend loads
# it at start: session_preload_libraries)
PGAPPNAME=userlife_packages "$SYS/bin/psql" -X -q -d userlife_packages -c "SELECT pg_sleep(5)" >/dev/null 2>&1 &
sleeper=$!
backend=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
	backend=$("$SYS/bin/psql" -X -q -At -d postgres -c \
		"SELECT pid FROM pg_stat_activity WHERE application_name = 'userlife_packages' AND pid <> pg_backend_pid()")
	[ -n "$backend" ] && break
	sleep 0.3
done
mapped=$(grep -h userlife "/proc/${backend:-0}/maps" 2>/dev/null | awk '{print $6}' | sort -u)
wait "$sleeper"
so=$(dpkg -S "$SYS/lib/userlife.so" 2>/dev/null | cut -d: -f1)
[ "$so" = postgresql-15-userlife ] && [ "$mapped" = "$SYS/lib/userlife.so" ]
tap $? "backends load $SYS/lib/userlife.so, which dpkg says belongs to ${so:-no package}"

regress_out="$work/regress"
mkdir -p "$regress_out"
start=$(date +%s)
make -s -C "$src" PG_CONFIG="$SYS/bin/pg_config" installcheck \
	EXTRA_REGRESS_OPTS="--outputdir=$regress_out" >"$regress_out/run.log" 2>&1
regress_rc=$?
echo "# pg_regress: $(($(date +%s) - start)) s"
p=$(grep -cE '^(test | +)[^ ].* \.\.\. ok' "$regress_out/run.log")
f=$(grep -cE '\.\.\. FAILED' "$regress_out/run.log")
[ "$regress_rc" -eq 0 ] && [ "$p" -gt 0 ] && [ "$f" -eq 0 ]
tap $? "the pg_regress suite against the packaged files ($p passed, $f failed)"
[ -s "$regress_out/regression.diffs" ] && head -60 "$regress_out/regression.diffs" | sed 's/^/# /'

crashes=$(userlife_crashes_in_log)
[ -z "$crashes" ]
tap $? "no backend crashed"
[ -n "$crashes" ] && echo "$crashes" | sed 's/^/# /'
userlife_stop_cluster
cluster=no

# ---- 17-20: purge --------------------------------------------------------
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${PACKAGES[@]}" >"$work/purge.log" 2>&1
purge_rc=$?
installed=no
left=$(while read -r f; do [ -e "$f" ] && [ ! -d "$f" ] && echo "$f"; done <"$work/files.list")
[ "$purge_rc" -eq 0 ] && [ -z "$left" ] && [ ! -e /etc/userlife ] &&
	! dpkg-query -W -f='${db:Status-Abbrev}\n' "${PACKAGES[@]}" 2>/dev/null | grep -q '^[a-z][a-z]'
tap $? "apt-get purge: none of the $(wc -l <"$work/files.list") paths of dpkg -L is left, nor /etc/userlife, nor a dpkg record"
[ -n "$left" ] && echo "$left" | sed 's/^/# left: /'

! dpkg-statoverride --list /etc/userlife/webhooks.env >/dev/null
tap $? "the statoverride of webhooks.env is gone"

getent passwd userlife-webhooks >/dev/null
tap $? "the system user userlife-webhooks is kept on purge, as Debian packages do (the test removes it)"

# the saved files back, and nothing else: checked here, restored again by the trap
tar -xpf "$saved" -C / && checksums >"$work/after.sha"
cmp -s "$work/before.sha" "$work/after.sha"
tap $? "the system tree holds again exactly the $(wc -l <"$work/before.sha") userlife files it had"
