/*-------------------------------------------------------------------------
 *
 * userlife_worker.c
 *		Reference event worker: LISTENs on userlife_events and, on every
 *		wake-up and at least once per poll interval without one, claims
 *		events with userlife.claim_events until none is left, writes each
 *		as one JSON line to standard output, and acknowledges it.
 *
 *	usage: userlife_worker [--batch N] [--partner P] [--poll-ms MS] [--idle-exit S]
 *	Connection settings come from the libpq environment (PGHOST, ...); the
 *	session's application_name is "userlife_worker" unless PGAPPNAME says
 *	otherwise, so that pg_stat_activity shows which backends are workers.
 *
 * A notification is only a hint: the loop polls anyway, so an event whose
 * notification was skipped (userlife.notify_interval) or lost waits at most
 * one poll interval.  Claims not acknowledged (the worker died between
 * printing and acknowledging) lapse after five minutes and are delivered
 * again: delivery is at least once, and exactly once while workers live.
 *
 * A lost connection (server restart, failover, pg_terminate_backend) is not
 * an error: the worker connects again, after 0.25 s, then twice as long
 * each failed attempt up to 30 s, and goes on.  Events of a batch claimed
 * but not acknowledged when the connection dropped come again once their
 * claim lapses.
 *
 * Exit codes (also in the usage text):
 *	0	stopped as asked: --idle-exit reached, or SIGTERM / SIGINT (the batch
 *		in hand is written and acknowledged first)
 *	1	a statement failed on a working connection (userlife missing, the
 *		role lacks userlife_developer, ...): retrying would not help
 *	2	bad command line
 *	3	standard output cannot be written: the claimed events stay
 *		unacknowledged and are delivered again after five minutes
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include "libpq-fe.h"

#define EXIT_STOPPED		0
#define EXIT_STATEMENT		1
#define EXIT_USAGE			2
#define EXIT_OUTPUT			3

#define BACKOFF_FIRST_MS	250
#define BACKOFF_MAX_MS		30000

static const char usage_text[] =
"usage: %s [--batch N] [--partner P] [--poll-ms MS] [--idle-exit SECONDS]\n"
"Delivers userlife events as JSON lines on standard output; connection from the\n"
"libpq environment (PGHOST, PGDATABASE, ...), application_name userlife_worker.\n"
"A lost connection is retried with backoff (0.25 s doubling to 30 s).\n"
"Exit codes: 0 stopped (--idle-exit, SIGTERM, SIGINT); 1 a statement failed on a\n"
"working connection; 2 bad command line; 3 standard output not writable.\n";

static volatile sig_atomic_t stop_requested = 0;

static void
request_stop(int signo)
{
	(void) signo;
	stop_requested = 1;
}

static void
fail(PGconn *conn, const char *what, int code)
{
	fprintf(stderr, "userlife_worker: %s: %s", what, conn ? PQerrorMessage(conn) : "\n");
	if (conn)
		PQfinish(conn);
	exit(code);
}

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
sleep_ms(long ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_requested)
		;
}

/*
 * connect_listening: a connection that LISTENs on userlife_events, tried
 * until it works (with backoff) or a stop is requested (NULL then)
 */
static PGconn *
connect_listening(void)
{
	static const char *const keywords[] = {"dbname", "fallback_application_name", NULL};
	static const char *const values[] = {"", "userlife_worker", NULL};
	long		backoff = BACKOFF_FIRST_MS;

	while (!stop_requested)
	{
		PGconn	   *conn = PQconnectdbParams(keywords, values, 1);
		PGresult   *res;

		if (PQstatus(conn) == CONNECTION_OK)
		{
			res = PQexec(conn, "LISTEN userlife_events");
			if (PQresultStatus(res) == PGRES_COMMAND_OK)
			{
				PQclear(res);
				return conn;
			}
			PQclear(res);
			if (PQstatus(conn) == CONNECTION_OK)
				fail(conn, "LISTEN failed", EXIT_STATEMENT);
		}
		fprintf(stderr, "userlife_worker: cannot connect, retrying in %ld ms: %s",
				backoff, PQerrorMessage(conn));
		PQfinish(conn);
		sleep_ms(backoff);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	return NULL;
}

/*
 * statement_ok: whether res is what was expected; a failure on a working
 * connection ends the worker, one of a lost connection returns false
 */
static int
statement_ok(PGconn *conn, PGresult *res, ExecStatusType expected, const char *what)
{
	if (PQresultStatus(res) == expected)
		return 1;
	PQclear(res);
	if (PQstatus(conn) == CONNECTION_OK)
		fail(conn, what, EXIT_STATEMENT);
	fprintf(stderr, "userlife_worker: %s, connection lost: %s", what, PQerrorMessage(conn));
	return 0;
}

/* claim_batch: claims, prints and acknowledges one batch; returns its size, -1 when the connection dropped */
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
	if (!statement_ok(conn, res, PGRES_TUPLES_OK, "claim_events failed"))
		return -1;
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
		fail(conn, "out of memory", EXIT_STATEMENT);
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
	if (fflush(stdout) != 0 || ferror(stdout))
		fail(conn, "cannot write events", EXIT_OUTPUT);

	params[0] = ids;
	res = PQexecParams(conn, "SELECT userlife.ack_events($1::pg_catalog.int8[])",
					   1, NULL, params, NULL, NULL, 0);
	free(ids);
	if (!statement_ok(conn, res, PGRES_TUPLES_OK, "ack_events failed"))
		return -1;
	PQclear(res);
	return n;
}

/* wait_for_wakeup: until a notification or the poll interval; false when the connection dropped */
static int
wait_for_wakeup(PGconn *conn, long poll_ms)
{
	int			sock = PQsocket(conn);
	fd_set		input;
	struct timeval timeout;
	PGnotify   *notify;

	if (sock < 0)
		return 0;
	FD_ZERO(&input);
	FD_SET(sock, &input);
	timeout.tv_sec = poll_ms / 1000;
	timeout.tv_usec = (poll_ms % 1000) * 1000;
	if (select(sock + 1, &input, NULL, NULL, &timeout) < 0 && errno != EINTR)
		return 0;
	if (!PQconsumeInput(conn) || PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "userlife_worker: connection lost: %s", PQerrorMessage(conn));
		return 0;
	}
	while ((notify = PQnotifies(conn)) != NULL)
		PQfreemem(notify);
	return 1;
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
	struct sigaction sa;
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
			fprintf(stderr, usage_text, argv[0]);
			return EXIT_USAGE;
		}
	}
	if (poll_ms <= 0)
		poll_ms = 1000;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = request_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	conn = connect_listening();
	last_event = now_seconds();
	while (conn != NULL && !stop_requested)
	{
		int			n;
		int			alive = 1;

		/* drain: claim until nothing is left */
		while (!stop_requested && (n = claim_batch(conn, batch, partner)) != 0)
		{
			if (n < 0)
			{
				alive = 0;
				break;
			}
			last_event = now_seconds();
		}
		if (idle_exit > 0 && now_seconds() - last_event >= idle_exit)
			break;
		if (alive && !stop_requested)
			alive = wait_for_wakeup(conn, poll_ms);
		if (!alive)
		{
			PQfinish(conn);
			conn = connect_listening();
		}
	}
	if (conn != NULL)
		PQfinish(conn);
	return EXIT_STOPPED;
}
