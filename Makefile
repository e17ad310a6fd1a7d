# userlife — PGXS build
EXTENSION = userlife
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big = userlife
OBJS = \
	src/userlife.o \
	src/access.o \
	src/append.o \
	src/audit.o \
	src/chain.o \
	src/events.o \
	src/import.o \
	src/lifecycle.o \
	src/listing.o \
	src/maintenance.o \
	src/monitor.o \
	src/retention.o \
	src/search.o \
	src/signature.o \
	src/writectx.o \
	src/summary.o \
	src/webhooks.o

DATA = $(wildcard $(EXTENSION)--*.sql)

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --inputdir=. --dbname=userlife_regression

PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# the reference event worker (libpq), see worker/userlife_worker.c
WORKER = worker/userlife_worker
EXTRA_CLEAN += $(WORKER)
all: $(WORKER)
$(WORKER): worker/userlife_worker.c
	$(CC) -O2 -Wall -Wextra -Werror -I$(shell $(PG_CONFIG) --includedir) -o $@ $< \
		-L$(shell $(PG_CONFIG) --libdir) -lpq

# the webhook delivery program (libpq, libcurl), see worker/userlife_webhooks.c
WEBHOOKS = worker/userlife_webhooks
EXTRA_CLEAN += $(WEBHOOKS)
all: $(WEBHOOKS)
$(WEBHOOKS): worker/userlife_webhooks.c
	$(CC) -O2 -Wall -Wextra -Werror -Wno-unused-parameter -I$(shell $(PG_CONFIG) --includedir) -o $@ $< \
		-L$(shell $(PG_CONFIG) --libdir) -lpq -lcurl
install: install-webhooks
install-webhooks: $(WEBHOOKS)
	$(INSTALL_PROGRAM) $(WEBHOOKS) '$(DESTDIR)$(bindir)/userlife_webhooks'
.PHONY: install-webhooks
