/*-------------------------------------------------------------------------
 *
 * userlife_webhooks.c
 *		The webhook delivery program (SPEC §10).  It claims signed, ready
 *		requests with userlife.claim_webhook_deliveries, sends them
 *		concurrently over kept-alive connections (libcurl multi), and records
 *		the attempts that finished together with one call of
 *		userlife.complete_webhook_deliveries.  It never
 *		sees a secret: the database signs.
 *
 *	usage: userlife_webhooks [--allow-network CIDR]... [--ca-file FILE]
 *			 [--concurrency N] [--poll-ms MS] [--partner P] [--idle-exit S]
 *		   userlife_webhooks [--allow-network CIDR]... --check-address ADDR
 *	Connection settings come from the libpq environment (PGHOST, ...).
 *
 * Wake-ups: LISTEN userlife_events, a poll every --poll-ms (1 s) without
 * one, and one extra poll userlife.notify_interval after every wake-up: a
 * backend sends at most one notification per interval, so the change that
 * followed a notified one within the interval has none of its own.  And
 * while a claim says it held events back behind writers still running
 * (userlife.webhook_claim_held_back), a poll every
 * userlife.notify_interval (held_back_delay): such a writer may commit
 * without a notification of its own.  Notifications that arrived while a
 * claim or a record ran are taken before sleeping.
 *
 * Where it connects: the address check runs in libcurl's open-socket
 * callback, after name resolution and before connect, on the address the
 * socket is about to connect to.  Loopback, private, link-local, CGNAT,
 * multicast, reserved and unspecified addresses are refused unless an
 * --allow-network range holds them.  Proxies from the environment are
 * ignored (the proxy's address would be the one checked), redirects are
 * never followed, and only http and https are spoken.
 *
 * SIGTERM/SIGINT: no new claims; the requests in flight finish (each within
 * its time limit) and are recorded; exit 0.
 *
 *-------------------------------------------------------------------------
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "libpq-fe.h"

#define MAX_NETWORKS	64
#define RESPONSE_KEEP	1024
#define REASON_LEN		200
#define CLAIM_GAP_S		0.01
#define Min(a, b)		((a) < (b) ? (a) : (b))

/* a CIDR range; IPv4 ranges are kept as IPv4-mapped IPv6 */
typedef struct Network
{
	unsigned char addr[16];
	int			bits;
} Network;

/* one request in flight */
typedef struct Request
{
	CURL	   *easy;
	struct curl_slist *headers;
	char	   *endpoint_id;
	char	   *event_id;
	char	   *attempt;
	char	   *body;
	char		response[RESPONSE_KEEP + 1];
	size_t		response_len;
	long		retry_after;	/* seconds, -1 when none */
	char		refused[REASON_LEN];	/* why the address check refused */
	char		errbuf[CURL_ERROR_SIZE];
	long		timeout_ms;
} Request;

/* the outcome of a request, waiting to be recorded */
typedef struct Outcome
{
	char	   *endpoint_id;
	char	   *event_id;
	char	   *attempt;
	long		status;			/* 0: no HTTP answer */
	long		latency_ms;
	char	   *error;
	char	   *response;
	long		retry_after;
} Outcome;

static Network allowed[MAX_NETWORKS];
static int	n_allowed = 0;
static volatile sig_atomic_t stopping = 0;

static struct
{
	long		delivered;
	long		failed;
	long		refused;
} stats, totals;

static void
logmsg(const char *fmt,...)
{
	va_list		ap;
	char		stamp[32];
	time_t		now = time(NULL);

	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	fprintf(stderr, "%s userlife_webhooks: ", stamp);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
die(PGconn *conn, const char *what)
{
	logmsg("%s: %s", what, conn ? PQerrorMessage(conn) : "");
	exit(1);
}

static void *
xmalloc(size_t n)
{
	void	   *p = calloc(1, n);

	if (p == NULL)
		die(NULL, "out of memory");
	return p;
}

static char *
xstrdup(const char *s)
{
	char	   *p = strdup(s ? s : "");

	if (p == NULL)
		die(NULL, "out of memory");
	return p;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
on_signal(int sig)
{
	stopping = 1;
}

/* ---- the address check ------------------------------------------------ */

/* to_v6: an IPv4 address as IPv4-mapped IPv6 (::ffff:a.b.c.d) */
static void
to_v6(const unsigned char *v4, unsigned char *v6)
{
	memset(v6, 0, 10);
	v6[10] = v6[11] = 0xff;
	memcpy(v6 + 12, v4, 4);
}

static int
in_prefix(const unsigned char *addr, const unsigned char *prefix, int bits)
{
	int			full = bits / 8;
	int			rest = bits % 8;

	if (memcmp(addr, prefix, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((addr[full] ^ prefix[full]) & (0xff << (8 - rest))) == 0;
}

/* parse_cidr: "a.b.c.d/n", "x::y/n" or a bare address; 0 when malformed */
static int
parse_cidr(const char *text, Network *net)
{
	char		buf[INET6_ADDRSTRLEN + 8];
	char	   *slash;
	unsigned char v4[4];
	int			is_v4;
	int			max;

	if (strlen(text) >= sizeof(buf))
		return 0;
	strcpy(buf, text);
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	is_v4 = inet_pton(AF_INET, buf, v4) == 1;
	if (is_v4)
		to_v6(v4, net->addr);
	else if (inet_pton(AF_INET6, buf, net->addr) != 1)
		return 0;
	max = is_v4 ? 32 : 128;
	net->bits = max;
	if (slash)
	{
		char	   *end;
		long		b = strtol(slash + 1, &end, 10);

		if (*end != '\0' || end == slash + 1 || b < 0 || b > max)
			return 0;
		net->bits = (int) b;
	}
	if (is_v4)
		net->bits += 96;
	return 1;
}

/* the ranges refused unless allowed: "reason", prefix, bits (IPv6 or IPv4-mapped) */
static const struct
{
	const char *cidr;
	const char *reason;
}			blocked[] = {
	{"0.0.0.0/8", "unspecified"},
	{"10.0.0.0/8", "private (RFC 1918)"},
	{"100.64.0.0/10", "shared address space (CGNAT)"},
	{"127.0.0.0/8", "loopback"},
	{"169.254.0.0/16", "link-local (cloud metadata)"},
	{"172.16.0.0/12", "private (RFC 1918)"},
	{"192.0.0.0/24", "IETF protocol assignments"},
	{"192.168.0.0/16", "private (RFC 1918)"},
	{"198.18.0.0/15", "benchmarking"},
	{"224.0.0.0/4", "multicast"},
	{"240.0.0.0/4", "reserved"},
	{"::/128", "unspecified"},
	{"::1/128", "loopback"},
	{"fc00::/7", "private (RFC 4193)"},
	{"fe80::/10", "link-local"},
	{"fec0::/10", "site-local"},
	{"ff00::/8", "multicast"},
};

/*
 * check_address
 *		NULL when the program may connect to the address (16 bytes, IPv6 or
 *		IPv4-mapped), else the reason.  IPv4 addresses embedded in IPv6
 *		(IPv4-compatible, NAT64 64:ff9b::/96, 6to4 2002::/16) are checked as
 *		the IPv4 address they reach.
 */
static const char *
check_address(const unsigned char *addr)
{
	static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};
	static const unsigned char zero12[12] = {0};
	unsigned char embedded[16];
	size_t		i;

	for (i = 0; i < (size_t) n_allowed; i++)
		if (in_prefix(addr, allowed[i].addr, allowed[i].bits))
			return NULL;
	if (memcmp(addr, nat64, 12) == 0 ||
		(memcmp(addr, zero12, 12) == 0 &&
		 !(addr[12] == 0 && addr[13] == 0 && addr[14] == 0 && addr[15] <= 1)))
	{
		to_v6(addr + 12, embedded);
		return check_address(embedded);
	}
	if (addr[0] == 0x20 && addr[1] == 0x02)
	{
		to_v6(addr + 2, embedded);
		return check_address(embedded);
	}
	for (i = 0; i < sizeof(blocked) / sizeof(blocked[0]); i++)
	{
		Network		net;

		if (parse_cidr(blocked[i].cidr, &net) && in_prefix(addr, net.addr, net.bits))
			return blocked[i].reason;
	}
	return NULL;
}

/*
 * open_socket
 *		libcurl's open-socket callback: called with the resolved address
 *		just before connecting to it.  A refused address gets no socket, and
 *		the reason is kept for the attempt log.
 */
static curl_socket_t
open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	Request    *req = (Request *) clientp;
	unsigned char addr[16];
	char		text[INET6_ADDRSTRLEN];
	const char *why;

	if (address->family == AF_INET)
	{
		struct sockaddr_in *sin = (struct sockaddr_in *) &address->addr;

		to_v6((unsigned char *) &sin->sin_addr, addr);
		inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
	}
	else if (address->family == AF_INET6)
	{
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &address->addr;

		memcpy(addr, &sin6->sin6_addr, 16);
		inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
	}
	else
	{
		snprintf(req->refused, REASON_LEN, "refused: address family %d", address->family);
		return CURL_SOCKET_BAD;
	}
	why = check_address(addr);
	if (why != NULL)
	{
		snprintf(req->refused, REASON_LEN,
				 "refused to connect to %s: %s address (see --allow-network)", text, why);
		return CURL_SOCKET_BAD;
	}
	return socket(address->family, address->socktype, address->protocol);
}

/* ---- one request --------------------------------------------------------- */

static size_t
on_body(char *data, size_t size, size_t nmemb, void *userp)
{
	Request    *req = (Request *) userp;
	size_t		n = size * nmemb;
	size_t		room = RESPONSE_KEEP - req->response_len;
	size_t		take = n < room ? n : room;

	memcpy(req->response + req->response_len, data, take);
	req->response_len += take;
	return n;					/* the rest is read and dropped */
}

/* on_header: notes Retry-After (seconds or an HTTP date) */
static size_t
on_header(char *data, size_t size, size_t nmemb, void *userp)
{
	Request    *req = (Request *) userp;
	size_t		n = size * nmemb;
	char		line[256];
	size_t		len = n < sizeof(line) - 1 ? n : sizeof(line) - 1;

	memcpy(line, data, len);
	line[len] = '\0';
	if (strncasecmp(line, "retry-after:", 12) == 0)
	{
		char	   *v = line + 12;
		char	   *end;
		long		secs;

		while (*v == ' ' || *v == '\t')
			v++;
		v[strcspn(v, "\r\n")] = '\0';
		secs = strtol(v, &end, 10);
		if (end != v && *end == '\0' && secs >= 0)
			req->retry_after = secs;
		else
		{
			time_t		at = curl_getdate(v, NULL);

			if (at != -1)
				req->retry_after = at > time(NULL) ? (long) (at - time(NULL)) : 0;
		}
		if (req->retry_after > 7 * 86400)
			req->retry_after = 7 * 86400;
	}
	return n;
}

static char *
header_line(const char *name, const char *value)
{
	size_t		len = strlen(name) + strlen(value) + 3;
	char	   *h = xmalloc(len);

	snprintf(h, len, "%s: %s", name, value);
	return h;
}

/*
 * start_request
 *		Builds the POST of one claimed row (endpoint_id, event_id, attempt,
 *		url, body, webhook_id, webhook_timestamp, webhook_signature,
 *		timeout_ms) and adds it to the multi handle.
 */
static Request *
start_request(CURLM *multi, PGresult *res, int row, const char *ca_file)
{
	Request    *req = xmalloc(sizeof(Request));
	const char *names[3] = {"webhook-id", "webhook-timestamp", "webhook-signature"};
	int			i;

	req->endpoint_id = xstrdup(PQgetvalue(res, row, 0));
	req->event_id = xstrdup(PQgetvalue(res, row, 1));
	req->attempt = xstrdup(PQgetvalue(res, row, 2));
	req->body = xstrdup(PQgetvalue(res, row, 4));
	req->timeout_ms = atol(PQgetvalue(res, row, 8));
	req->retry_after = -1;
	req->headers = curl_slist_append(NULL, "Content-Type: application/json");
	req->headers = curl_slist_append(req->headers, "User-Agent: userlife-webhooks/0.3.0");
	req->headers = curl_slist_append(req->headers, "Expect:");	/* no 100-continue round trip */
	for (i = 0; i < 3; i++)
	{
		char	   *h = header_line(names[i], PQgetvalue(res, row, 5 + i));

		req->headers = curl_slist_append(req->headers, h);
		free(h);
	}
	req->easy = curl_easy_init();
	if (req->easy == NULL || req->headers == NULL)
		die(NULL, "cannot set up a request");
	curl_easy_setopt(req->easy, CURLOPT_URL, PQgetvalue(res, row, 3));
	curl_easy_setopt(req->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(req->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(req->easy, CURLOPT_PROXY, "");	/* never a proxy from the environment */
	curl_easy_setopt(req->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(req->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(req->easy, CURLOPT_POSTFIELDS, req->body);
	curl_easy_setopt(req->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) strlen(req->body));
	curl_easy_setopt(req->easy, CURLOPT_HTTPHEADER, req->headers);
	curl_easy_setopt(req->easy, CURLOPT_TIMEOUT_MS, req->timeout_ms);
	curl_easy_setopt(req->easy, CURLOPT_CONNECTTIMEOUT_MS, req->timeout_ms);
	curl_easy_setopt(req->easy, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(req->easy, CURLOPT_OPENSOCKETDATA, req);
	curl_easy_setopt(req->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(req->easy, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(req->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(req->easy, CURLOPT_HEADERDATA, req);
	curl_easy_setopt(req->easy, CURLOPT_ERRORBUFFER, req->errbuf);
	curl_easy_setopt(req->easy, CURLOPT_PRIVATE, req);
	curl_easy_setopt(req->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	if (ca_file)
		curl_easy_setopt(req->easy, CURLOPT_CAINFO, ca_file);
	curl_multi_add_handle(multi, req->easy);
	return req;
}

/* printable: the response kept for the log, as printable ASCII (valid in any server encoding) */
static char *
printable(const char *data, size_t len)
{
	char	   *out = xmalloc(len + 1);
	size_t		i;

	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) data[i];

		out[i] = (c >= 0x20 && c < 0x7f) || c == '\n' || c == '\t' ? (char) c : '?';
	}
	return out;
}

/* finish_request: the outcome of a finished transfer; frees the request */
static Outcome *
finish_request(CURLM *multi, Request *req, CURLcode rc)
{
	Outcome    *o = xmalloc(sizeof(Outcome));
	curl_off_t	total_us = 0;
	char		err[REASON_LEN + CURL_ERROR_SIZE + 64];

	o->endpoint_id = req->endpoint_id;
	o->event_id = req->event_id;
	o->attempt = req->attempt;
	o->retry_after = req->retry_after;
	curl_easy_getinfo(req->easy, CURLINFO_TOTAL_TIME_T, &total_us);
	o->latency_ms = (long) (total_us / 1000);
	if (rc == CURLE_OK)
	{
		curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &o->status);
		o->response = printable(req->response, req->response_len);
		if (o->status >= 300 && o->status < 400)
			o->error = xstrdup("redirect not followed");
	}
	else
	{
		if (req->refused[0])
			snprintf(err, sizeof(err), "%s", req->refused);
		else if (rc == CURLE_OPERATION_TIMEDOUT)
			snprintf(err, sizeof(err), "timed out after %ld ms", req->timeout_ms);
		else
			snprintf(err, sizeof(err), "%s%s%s", curl_easy_strerror(rc),
					 req->errbuf[0] ? ": " : "", req->errbuf);
		o->error = xstrdup(err);
	}
	if (o->status >= 200 && o->status < 300)
	{
		stats.delivered++;
		totals.delivered++;
	}
	else
	{
		if (req->refused[0])
			stats.refused++;
		stats.failed++;
		totals.failed++;
		char		status[32] = "";

		if (o->status)
			snprintf(status, sizeof(status), "HTTP %ld%s", o->status, o->error ? ", " : "");
		logmsg("endpoint %s event %s attempt %s failed: %s%s", o->endpoint_id, o->event_id,
			   o->attempt, status, o->error ? o->error : "");
	}
	curl_multi_remove_handle(multi, req->easy);
	curl_easy_cleanup(req->easy);
	curl_slist_free_all(req->headers);
	free(req->body);
	free(req);
	return o;
}

/* ---- the database side ---------------------------------------------------- */

static int
by_endpoint(const void *a, const void *b)
{
	const Outcome *x = *(const Outcome *const *) a;
	const Outcome *y = *(const Outcome *const *) b;
	long long	ex = atoll(x->endpoint_id);
	long long	ey = atoll(y->endpoint_id);

	if (ex != ey)
		return ex < ey ? -1 : 1;
	return atoll(x->event_id) < atoll(y->event_id) ? -1 : 1;
}

static void
append(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t		n = strlen(s);

	if (*len + n + 1 > *cap)
	{
		*cap = (*len + n + 1) * 2;
		*buf = realloc(*buf, *cap);
		if (*buf == NULL)
			die(NULL, "out of memory");
	}
	memcpy(*buf + *len, s, n + 1);
	*len += n;
}

/* literal: an SQL literal of s (quoted by libpq), or NULL */
static void
append_literal(PGconn *conn, char **buf, size_t *len, size_t *cap, const char *s)
{
	char	   *q;

	if (s == NULL)
	{
		append(buf, len, cap, "NULL");
		return;
	}
	q = PQescapeLiteral(conn, s, strlen(s));
	if (q == NULL)
		die(conn, "cannot quote a value");
	append(buf, len, cap, q);
	PQfreemem(q);
}

/* append_column: ",ARRAY[...]::type" of one field of outcomes outs[0..n-1] */
static void
append_column(PGconn *conn, char **buf, size_t *len, size_t *cap, Outcome **outs, int n,
			  int field, const char *type)
{
	char		num[64];
	int			i;

	append(buf, len, cap, field == 0 ? "ARRAY[" : ", ARRAY[");
	for (i = 0; i < n; i++)
	{
		Outcome    *o = outs[i];

		if (i > 0)
			append(buf, len, cap, ",");
		if (field == 5 || field == 6)
		{
			append_literal(conn, buf, len, cap, field == 5 ? o->error : o->response);
			continue;
		}
		if ((field == 3 && o->status == 0) || (field == 7 && o->retry_after < 0))
			snprintf(num, sizeof(num), "NULL");
		else
			snprintf(num, sizeof(num), "%lld",
					 field == 0 ? atoll(o->endpoint_id) : field == 1 ? atoll(o->event_id) :
					 field == 2 ? atoll(o->attempt) : field == 3 ? (long long) o->status :
					 field == 4 ? (long long) o->latency_ms : (long long) o->retry_after);
		append(buf, len, cap, num);
	}
	append(buf, len, cap, "]::");
	append(buf, len, cap, type);
}

/*
 * record_some: records outs[0..n-1] with one call of
 * userlife.complete_webhook_deliveries; whether it succeeded
 */
static bool
record_some(PGconn *conn, Outcome **outs, int n)
{
	static const char *const types[8] = {"int8[]", "int8[]", "int4[]", "int4[]", "int4[]",
	"text[]", "text[]", "int4[]"};
	char	   *sql = NULL;
	size_t		len = 0;
	size_t		cap = 0;
	int			k;
	bool		ok;
	PGresult   *res;

	append(&sql, &len, &cap, "SELECT userlife.complete_webhook_deliveries(");
	for (k = 0; k < 8; k++)
		append_column(conn, &sql, &len, &cap, outs, n, k, types[k]);
	append(&sql, &len, &cap, ")");
	res = PQexec(conn, sql);
	ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	if (!ok)
	{
		if (PQstatus(conn) != CONNECTION_OK)
			die(conn, "connection lost");
		logmsg("cannot record %d attempts: %s", n, PQerrorMessage(conn));
	}
	PQclear(res);
	free(sql);
	return ok;
}

/*
 * record_outcomes
 *		Records the attempts in one call (one statement, one commit), sorted
 *		by endpoint, so that two programs lock endpoint rows in the same
 *		order.  When that fails (an endpoint removed meanwhile answers 42501
 *		to a role bound to some partners only), each is recorded alone, so
 *		that the others are not sent again.  A failure is logged: the claims
 *		lapse and the deliveries are sent again.
 */
static void
record_outcomes(PGconn *conn, Outcome **outs, int n)
{
	int			i;

	if (n == 0)
		return;
	qsort(outs, n, sizeof(Outcome *), by_endpoint);
	if (!record_some(conn, outs, n) && n > 1)
		for (i = 0; i < n; i++)
			(void) record_some(conn, &outs[i], 1);
	for (i = 0; i < n; i++)
	{
		free(outs[i]->endpoint_id);
		free(outs[i]->event_id);
		free(outs[i]->attempt);
		free(outs[i]->error);
		free(outs[i]->response);
		free(outs[i]);
	}
}

/*
 * claim
 *		Claims up to max deliveries and starts them; returns how many.  In
 *		the same round trip, asks whether the claim held events back
 *		(*held_back).
 */
static int
claim(PGconn *conn, CURLM *multi, int max, const char *partner, const char *ca_file, bool *held_back)
{
	char		sql[512];
	char	   *lit = NULL;
	PGresult   *res;
	int			n = 0;
	int			i;
	bool		failed = false;

	if (partner != NULL && (lit = PQescapeLiteral(conn, partner, strlen(partner))) == NULL)
		die(conn, "cannot quote the partner");
	snprintf(sql, sizeof(sql),
			 "SELECT endpoint_id, event_id, attempt, url, body, webhook_id,"
			 " webhook_timestamp, webhook_signature, timeout_ms"
			 " FROM userlife.claim_webhook_deliveries(%d, %s::pg_catalog.text);"
			 " SELECT userlife.webhook_claim_held_back()", max, lit ? lit : "NULL");
	if (lit)
		PQfreemem(lit);
	*held_back = false;
	if (!PQsendQuery(conn, sql))
		die(conn, "connection lost");
	while ((res = PQgetResult(conn)) != NULL)
	{
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			if (!failed)
				logmsg("claim_webhook_deliveries failed: %s", PQresultErrorMessage(res));
			failed = true;
		}
		else if (PQnfields(res) == 1)
			*held_back = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		else
		{
			n = PQntuples(res);
			for (i = 0; i < n; i++)
				(void) start_request(multi, res, i, ca_file);
		}
		PQclear(res);
	}
	if (PQstatus(conn) != CONNECTION_OK)
		die(conn, "connection lost");
	return n;
}

/*
 * notify_interval_s: the server's userlife.notify_interval in seconds (the
 * library is loaded by then: the first claim has run)
 */
static double
notify_interval_s(PGconn *conn)
{
	PGresult   *res = PQexec(conn,
							 "SELECT pg_catalog.date_part('epoch', COALESCE(pg_catalog.current_setting("
							 "'userlife.notify_interval', true), '100ms')::pg_catalog.interval)");
	double		s = 0.1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		s = atof(PQgetvalue(res, 0, 0));
	PQclear(res);
	return s;
}

/* ---- the loop ------------------------------------------------------------ */

static void
usage(const char *argv0)
{
	fprintf(stderr,
			"usage: %s [--allow-network CIDR]... [--ca-file FILE] [--concurrency N]\n"
			"          [--poll-ms MS] [--partner P] [--idle-exit SECONDS]\n"
			"       %s [--allow-network CIDR]... --check-address ADDRESS\n", argv0, argv0);
	exit(2);
}

/* check_only: --check-address: prints whether the address may be connected to */
static int
check_only(const char *text)
{
	Network		net;
	const char *why;

	if (!parse_cidr(text, &net) || (net.bits != 128))
	{
		fprintf(stderr, "userlife_webhooks: invalid address \"%s\"\n", text);
		return 2;
	}
	why = check_address(net.addr);
	printf("%s %s%s\n", text, why ? "refused: " : "allowed", why ? why : "");
	return why ? 1 : 0;
}

/*
 * drain_finished: collects the finished transfers and records them; returns
 * how many finished
 */
static int
drain_finished(PGconn *conn, CURLM *multi)
{
	CURLMsg    *msg;
	int			left;
	int			n = 0;
	int			cap = 64;
	Outcome   **outs = xmalloc(sizeof(Outcome *) * cap);

	while ((msg = curl_multi_info_read(multi, &left)) != NULL)
	{
		Request    *req;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &req);
		if (n == cap)
		{
			cap *= 2;
			outs = realloc(outs, sizeof(Outcome *) * cap);
			if (outs == NULL)
				die(NULL, "out of memory");
		}
		outs[n++] = finish_request(multi, req, msg->data.result);
	}
	record_outcomes(conn, outs, n);
	free(outs);
	return n;
}

/* the command line */
typedef struct Options
{
	const char *ca_file;
	const char *partner;
	int			concurrency;
	long		poll_ms;
	double		idle_exit;
} Options;

/* the delivery loop's state */
typedef struct Loop
{
	PGconn	   *conn;
	CURLM	   *multi;
	double		interval;		/* userlife.notify_interval, in seconds */
	double		next_poll;
	double		extra_poll;		/* 0, or one more poll after a wake-up */
	double		last_busy;
	double		last_claim;		/* when the last claim was made */
	double		next_summary;
	double		held_since;		/* 0, or since when claims hold events back */
	double		held_delay;		/* the next poll's delay meanwhile */
	int			in_flight;
} Loop;

/*
 * parse_options
 *		Reads the command line into o; returns -1 to go on, or the status
 *		the program exits with (--check-address, a bad --allow-network).
 */
static int
parse_options(int argc, char **argv, Options *o)
{
	int			i;

	o->ca_file = NULL;
	o->partner = NULL;
	o->concurrency = 64;
	o->poll_ms = 1000;
	o->idle_exit = 0;
	for (i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--allow-network") == 0 && i + 1 < argc)
		{
			if (n_allowed == MAX_NETWORKS || !parse_cidr(argv[++i], &allowed[n_allowed++]))
			{
				fprintf(stderr, "userlife_webhooks: invalid --allow-network value \"%s\"\n", argv[i]);
				return 2;
			}
		}
		else if (strcmp(argv[i], "--check-address") == 0 && i + 1 < argc)
			return check_only(argv[++i]);
		else if (strcmp(argv[i], "--ca-file") == 0 && i + 1 < argc)
			o->ca_file = argv[++i];
		else if (strcmp(argv[i], "--concurrency") == 0 && i + 1 < argc)
			o->concurrency = atoi(argv[++i]);
		else if (strcmp(argv[i], "--poll-ms") == 0 && i + 1 < argc)
			o->poll_ms = atol(argv[++i]);
		else if (strcmp(argv[i], "--partner") == 0 && i + 1 < argc)
			o->partner = argv[++i];
		else if (strcmp(argv[i], "--idle-exit") == 0 && i + 1 < argc)
			o->idle_exit = atof(argv[++i]);
		else
			usage(argv[0]);
	}
	if (o->concurrency < 1 || o->concurrency > 1000 || o->poll_ms < 10)
		usage(argv[0]);
	return -1;
}

/*
 * start
 *		Sets up signals, libcurl and the connection that listens for
 *		wake-ups, and claims a first batch.
 */
static void
start(const Options *o, Loop *l)
{
	PGresult   *res;
	bool		held_back;

	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		die(NULL, "cannot initialise libcurl");
	l->multi = curl_multi_init();
	curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, (long) o->concurrency * 2);

	l->conn = PQconnectdb("");
	if (PQstatus(l->conn) != CONNECTION_OK)
		die(l->conn, "cannot connect");
	res = PQexec(l->conn, "LISTEN userlife_events");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		die(l->conn, "LISTEN failed");
	PQclear(res);
	l->in_flight = claim(l->conn, l->multi, o->concurrency, o->partner, o->ca_file, &held_back);
	l->interval = notify_interval_s(l->conn);
	l->held_since = held_back ? now_s() : 0;
	l->held_delay = l->interval;
	logmsg("started: concurrency %d, poll every %ld ms, extra poll %.0f ms after a wake-up, %d allowed networks",
		   o->concurrency, o->poll_ms, l->interval * 1000, n_allowed);
	l->extra_poll = 0;
	l->last_claim = 0;
	l->last_busy = now_s();
	l->next_summary = now_s() + 60;
	l->next_poll = now_s() + (held_back ? l->interval : o->poll_ms / 1000.0);
}

/*
 * held_back_delay
 *		When to poll again after a claim that held events back behind
 *		running writers: after userlife.notify_interval, as long as events
 *		keep coming or the holding has lasted less than --poll-ms; then at
 *		twice the delay each time, up to --poll-ms.  A writer may commit
 *		without a notification only within an interval of its backend's
 *		last one; the ones that hold events back for long are transactions
 *		left open, which need not cost ten claims a second.
 */
static double
held_back_delay(const Options *o, Loop *l, double t, bool progress)
{
	double		poll_s = o->poll_ms / 1000.0;

	if (l->held_since == 0 || progress)
	{
		l->held_since = t;
		l->held_delay = l->interval;
	}
	else if (t - l->held_since >= poll_s)
		l->held_delay = Min(l->held_delay * 2, poll_s);
	return l->held_delay;
}

/*
 * deliver
 *		One round: claims while there is room and a reason (a poll, a
 *		wake-up, or a full batch), moves the transfers on and records the
 *		finished ones.  Returns false when the program should stop.
 */
static bool
deliver(const Options *o, Loop *l)
{
	int			running = 0;
	int			claimed = 0;
	int			finished;
	double		t = now_s();

	/*
	 * Claim while there is room and a reason: a poll, a wake-up, or a full
	 * batch.  A claim costs its backend about as much for one delivery as
	 * for dozens, so while many requests are in flight the slots freed by a
	 * few answers wait for half the slots to be free, or for CLAIM_GAP_S
	 * after the last claim.
	 */
	if (!stopping && l->in_flight < o->concurrency && t >= l->next_poll &&
		(o->concurrency - l->in_flight >= (o->concurrency + 1) / 2 ||
		 t - l->last_claim >= CLAIM_GAP_S))
	{
		int			room = o->concurrency - l->in_flight;
		bool		held_back;

		claimed = claim(l->conn, l->multi, room, o->partner, o->ca_file, &held_back);
		l->last_claim = t;
		l->in_flight += claimed;
		if (claimed == room)
			l->next_poll = t;
		else if (held_back)
			l->next_poll = t + held_back_delay(o, l, t, claimed > 0);
		else
		{
			l->held_since = 0;
			l->next_poll = t + o->poll_ms / 1000.0;
		}
		if (l->extra_poll > 0 && l->extra_poll <= t)
			l->extra_poll = 0;
	}
	curl_multi_perform(l->multi, &running);
	/* a recorded attempt may let the user's next delivery go */
	if ((finished = drain_finished(l->conn, l->multi)) > 0)
	{
		l->in_flight -= finished;
		l->next_poll = now_s();
	}
	if (l->in_flight > 0 || claimed > 0)
		l->last_busy = now_s();
	if (stopping && l->in_flight == 0)
		return false;
	if (o->idle_exit > 0 && l->in_flight == 0 && now_s() - l->last_busy >= o->idle_exit)
		return false;
	if (now_s() >= l->next_summary)
	{
		logmsg("last minute: %ld delivered, %ld failed (%ld refused), %d in flight",
			   stats.delivered, stats.failed, stats.refused, l->in_flight);
		memset(&stats, 0, sizeof(stats));
		l->next_summary = now_s() + 60;
	}
	return true;
}

/* take_notifications: a wake-up for each notification libpq has read */
static void
take_notifications(Loop *l)
{
	PGnotify   *notify;

	while ((notify = PQnotifies(l->conn)) != NULL)
	{
		PQfreemem(notify);
		l->next_poll = now_s();
		l->extra_poll = now_s() + l->interval;
	}
}

/*
 * sleep_until_work
 *		Sleeps until a transfer, a notification, the next poll or the extra
 *		poll, at most a second.  Notifications libpq read during a claim or
 *		a record are taken first: the socket has nothing more to say about
 *		them, and the sleep would last until the next poll.
 */
static void
sleep_until_work(const Options *o, Loop *l)
{
	struct curl_waitfd pgfd;
	double		t;
	int			wait_ms;

	take_notifications(l);
	t = now_s();
	wait_ms = (int) ((l->next_poll - t) * 1000);
	if (l->extra_poll > 0 && (int) ((l->extra_poll - t) * 1000) < wait_ms)
		wait_ms = (int) ((l->extra_poll - t) * 1000);
	if (l->in_flight >= o->concurrency || stopping)
		wait_ms = 1000;
	else if (wait_ms <= 0 && o->concurrency - l->in_flight < (o->concurrency + 1) / 2 &&
			 t - l->last_claim < CLAIM_GAP_S)
		wait_ms = 1 + (int) ((l->last_claim + CLAIM_GAP_S - t) * 1000);	/* a claim held back */
	if (wait_ms < 0)
		wait_ms = 0;
	if (wait_ms > 1000)
		wait_ms = 1000;
	pgfd.fd = PQsocket(l->conn);
	pgfd.events = CURL_WAIT_POLLIN;
	pgfd.revents = 0;
	curl_multi_poll(l->multi, &pgfd, 1, wait_ms, NULL);
	if (!PQconsumeInput(l->conn))
		die(l->conn, "connection lost");
	take_notifications(l);
	if (l->extra_poll > 0 && now_s() >= l->extra_poll && l->next_poll > l->extra_poll)
		l->next_poll = l->extra_poll;
}

int
main(int argc, char **argv)
{
	Options		o;
	Loop		l;
	int			rc = parse_options(argc, argv, &o);

	if (rc >= 0)
		return rc;
	start(&o, &l);
	while (deliver(&o, &l))
		sleep_until_work(&o, &l);
	logmsg("stopped: %ld delivered, %ld failed since start", totals.delivered, totals.failed);
	curl_multi_cleanup(l.multi);
	curl_global_cleanup();
	PQfinish(l.conn);
	return 0;
}
