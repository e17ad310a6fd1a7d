# userlife — PGXS build
EXTENSION = userlife userlife_router
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" userlife.control)

MODULE_big = userlife
OBJS = \
	src/userlife.o \
	src/access.o \
	src/catalog.o \
	src/util.o \
	src/append.o \
	src/audit.o \
	src/chain.o \
	src/events.o \
	src/import.o \
	src/lifecycle.o \
	src/listing.o \
	src/maintenance.o \
	src/monitor.o \
	src/preload.o \
	src/retention.o \
	src/search.o \
	src/signature.o \
	src/writectx.o \
	src/summary.o \
	src/webhooks.o

DATA = $(wildcard userlife--*.sql)
# The router's install script is generated from userlife's scripts (see
# router/generate.pl), so that it offers every partner function userlife has.
DATA_built = userlife_router--$(EXTVERSION).sql

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --inputdir=.

# The reference event worker (libpq) and the webhook delivery program
# (libpq, libcurl), installed into the server's bindir beside psql by
# `make install`.
WORKER = worker/userlife_worker
WEBHOOKS = worker/userlife_webhooks
SCRIPTS_built = $(WORKER) $(WEBHOOKS)
EXTRA_CLEAN = $(WORKER) $(WEBHOOKS)

PG_CPPFLAGS = -I$(srcdir)/src
# Warnings, never -Werror: a newer compiler must not break a user's build.
# test/run adds COPT="-Werror -DUSE_ASSERT_CHECKING" (see test/lib.sh).
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS appends --dbname=$(CONTRIB_TESTDB) to REGRESS_OPTS, and its
# Makefile.global sets contrib_regression: name ours after the include
CONTRIB_TESTDB = userlife_regression

userlife_router--$(EXTVERSION).sql: router/generate.pl userlife.control $(DATA)
	$(PERL) $(srcdir)/router/generate.pl $(srcdir) >$@.tmp && mv $@.tmp $@

# the reference event worker, see worker/userlife_worker.c; COPT, when
# given, applies to it as to the module
$(WORKER): worker/userlife_worker.c
	$(CC) -O2 -Wall -Wextra $(COPT) -I$(shell $(PG_CONFIG) --includedir) -o $@ $< \
		-L$(shell $(PG_CONFIG) --libdir) -lpq

# the webhook delivery program (libpq, libcurl), see worker/userlife_webhooks.c
$(WEBHOOKS): worker/userlife_webhooks.c
	$(CC) -O2 -Wall -Wextra $(COPT) -Wno-unused-parameter -I$(shell $(PG_CONFIG) --includedir) -o $@ $< \
		-L$(shell $(PG_CONFIG) --libdir) -lpq -lcurl

# The expected output is that of a session with the library preloaded (no
# NOTICE from CREATE EXTENSION), whatever the server's setting: pg_regress
# connects as a superuser, who may set it for its sessions.
installcheck: export PGOPTIONS += -c session_preload_libraries=userlife

# Packaging (README, "Install from packages"). The version has one source,
# default_version in userlife.control: `make meta` writes it into META.json
# (PGXN) and debian/changelog; `make deb` then builds the Debian packages
# into the parent directory.
.PHONY: meta deb
meta:
	$(srcdir)/tools/sync-version
deb: meta
	dpkg-buildpackage -us -uc -b
