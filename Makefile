# userlife — PGXS build
EXTENSION = userlife
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(EXTENSION).control)

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

DATA = $(wildcard $(EXTENSION)--*.sql)

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
