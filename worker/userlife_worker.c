/*-------------------------------------------------------------------------
 *
 * userlife_worker.c
 *		Reference event worker: LISTENs on userlife_events and, on every
 *		wake-up and at least once per poll interval without one, claims
 *		events with userlife.claim_events until none is left, writes each
 *		as one JSON line to standard output, and acknowledges it.
 *
 *	usage: userlife_worker [--batch N] [--partner P] [--poll-ms MS] [--idle-exit S]
 *	Connection settings come from the libpq environment (PGHOST, ...).
 *
 * A notification is only a hint: the loop polls anyway, so an event whose
 * notification was skipped (userlife.notify_interval) or lost waits at most
 * one poll interval.  Claims not acknowledged (the worker died between
 * printing and acknowledging) lapse after five minutes and are delivered
 * again: delivery is at least once, and exactly once while workers live.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

#include "libpq-fe.h"

static void
die(PGconn *conn, const char *what)
{
	fprintf(stderr, "userlife_worker: %s: %s", what, conn ? PQerrorMessage(conn) : "\n");
	if (conn)
		PQfinish(conn);
	exit(1);
}

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* claim_batch: claims, prints and acknowledges one batch; returns its size */
static int
claim_batch(PGconn *conn, const char *batch, const char *partner)
{
	const char *params[2] = {batch, partner};
	PGresult   *res;
	int			n;
	int			i;
	size_t		len = 2;
	char	   *ids;

	res = PQexecParams(conn,
					   "SELECT e.event_id, pg_catalog.jsonb_build_object('event_id', e.event_id,"
					   " 'event_type', e.event_type, 'payload', e.payload)::pg_catalog.text "
					   "FROM userlife.claim_events($1::pg_catalog.int4, $2) e",
					   2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		die(conn, "claim_events failed");
	n = PQntuples(res);
	if (n == 0)
	{
		PQclear(res);
		return 0;
	}
	for (i = 0; i < n; i++)
		len += strlen(PQgetvalue(res, i, 0)) + 1;
	ids = malloc(len);
	if (ids == NULL)
		die(conn, "out of memory");
	strcpy(ids, "{");
	for (i = 0; i < n; i++)
	{
		puts(PQgetvalue(res, i, 1));
		if (i > 0)
			strcat(ids, ",");
		strcat(ids, PQgetvalue(res, i, 0));
	}
	strcat(ids, "}");
	PQclear(res);
	/* delivered (written out) before acknowledged */
	if (fflush(stdout) != 0)
		die(conn, "cannot write events");

	params[0] = ids;
	res = PQexecParams(conn, "SELECT userlife.ack_events($1::pg_catalog.int8[])",
					   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		die(conn, "ack_events failed");
	PQclear(res);
	free(ids);
	return n;
}

int
main(int argc, char **argv)
{
	const char *batch = "100";
	const char *partner = NULL;
	long		poll_ms = 1000;
	double		idle_exit = 0;
	double		last_event;
	PGconn	   *conn;
	PGresult   *res;
	int			i;

	for (i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
			batch = argv[++i];
		else if (strcmp(argv[i], "--partner") == 0 && i + 1 < argc)
			partner = argv[++i];
		else if (strcmp(argv[i], "--poll-ms") == 0 && i + 1 < argc)
			poll_ms = atol(argv[++i]);
		else if (strcmp(argv[i], "--idle-exit") == 0 && i + 1 < argc)
			idle_exit = atof(argv[++i]);
		else
		{
			fprintf(stderr, "usage: %s [--batch N] [--partner P] [--poll-ms MS] [--idle-exit SECONDS]\n",
					argv[0]);
			return 2;
		}
	}
	if (poll_ms <= 0)
		poll_ms = 1000;

	conn = PQconnectdb("");
	if (PQstatus(conn) != CONNECTION_OK)
		die(conn, "cannot connect");
	res = PQexec(conn, "LISTEN userlife_events");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		die(conn, "LISTEN failed");
	PQclear(res);

	last_event = now_seconds();
	for (;;)
	{
		int			sock = PQsocket(conn);
		fd_set		input;
		struct timeval timeout;
		PGnotify   *notify;

		/* drain: claim until nothing is left */
		while (claim_batch(conn, batch, partner) > 0)
			last_event = now_seconds();
		if (idle_exit > 0 && now_seconds() - last_event >= idle_exit)
			break;

		/* sleep until a notification or the poll interval */
		FD_ZERO(&input);
		FD_SET(sock, &input);
		timeout.tv_sec = poll_ms / 1000;
		timeout.tv_usec = (poll_ms % 1000) * 1000;
		if (select(sock + 1, &input, NULL, NULL, &timeout) < 0 && errno != EINTR)
			die(conn, "select failed");
		if (!PQconsumeInput(conn))
			die(conn, "connection lost");
		while ((notify = PQnotifies(conn)) != NULL)
			PQfreemem(notify);
	}
	PQfinish(conn);
	return 0;
}
