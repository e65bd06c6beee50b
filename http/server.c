/*
 * server.c - libmicrohttpd on the broker's libuv loop: the daemon in
 * external-poll mode (its epoll descriptor polled by a uv_poll_t, its
 * timeout kept by a uv_timer_t, MHD_run() when either fires), request
 * routing, authentication and roles, bounded bodies, replies, and the
 * event consumer that feeds the counters, the topic tracker and SSE.
 *
 * Every callback of libmicrohttpd runs inside MHD_run(), on the loop
 * thread: handlers read and change engine state directly.
 */
#include "http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/internal.h"
#include "transport/broker.h"
#include "transport/log.h"

#ifndef MIDGE_DATADIR
#define MIDGE_DATADIR "/usr/local/share/midge"
#endif

#define HTTP_CONNECTION_TIMEOUT_S 30

/* ---- replies ------------------------------------------------------------- */

static void http_count_status(struct http *h, unsigned status)
{
	unsigned cls = status / 100;
	if (cls < 6)
		h->requests_by_class[cls]++;
}

int http_reply(struct http_req *r, unsigned status, struct MHD_Response *resp)
{
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	r->status = status;
	int rc = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	return rc;
}

int http_reply_buffer(struct http_req *r, unsigned status, const char *type, char *buf,
		      size_t len)
{
	/* ownership: libmicrohttpd frees buf with free() */
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(buf);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", type);
	return http_reply(r, status, resp);
}

int http_reply_json(struct http_req *r, unsigned status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text)
		return http_reply_buffer(r, 500, "application/json",
					 strdup("{\"error\":\"out of memory\",\"code\":\"internal\"}"),
					 44);
	return http_reply_buffer(r, status, "application/json", text, strlen(text));
}

int http_reply_error(struct http_req *r, unsigned status, const char *code, const char *why)
{
	return http_reply_json(r, status, json_pack("{s:s, s:s}", "error", why, "code", code));
}

const char *http_arg(struct http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_log_str(const char *s, size_t n, char *buf, size_t cap)
{
	/* only bounded: transport/log.c escapes every line whole, and an
	 * escape here would be escaped again ("\\x1b") */
	size_t o = n < cap ? n : cap - 1;
	memcpy(buf, s, o);
	buf[o] = '\0';
	if (o < n && o >= 3)
		memcpy(buf + o - 3, "...", 3);
	return buf;
}

/* ---- routing --------------------------------------------------------------- */

/* The route for method and url; *arg_off is where a trailing {name}
 * starts. NULL when nothing matches; *path_known says whether the path
 * exists with another method (405 rather than 404). */
static const struct http_route *http_route_find(const char *method, const char *url,
						size_t *arg_off, bool *path_known)
{
	if (strcmp(method, "HEAD") == 0)
		method = "GET";
	*path_known = false;
	for (size_t i = 0; i < http_n_routes; i++) {
		const struct http_route *rt = &http_routes[i];
		const char *brace = strchr(rt->path, '{');
		size_t plen = brace ? (size_t)(brace - rt->path) : strlen(rt->path);
		bool match = brace ? strncmp(url, rt->path, plen) == 0 && url[plen] != '\0'
				   : strcmp(url, rt->path) == 0;
		if (!match)
			continue;
		if (strcmp(method, rt->method) != 0) {
			*path_known = true;
			continue;
		}
		*arg_off = plen;
		return rt;
	}
	return NULL;
}

/* ---- requests --------------------------------------------------------------- */

static void http_peer(struct MHD_Connection *conn, char *out, size_t cap)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	out[0] = '\0';
	if (!ci || !ci->client_addr)
		return;
	const struct sockaddr *sa = ci->client_addr;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
			  (socklen_t)cap);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
			  (socklen_t)cap);
}

/* Queues a JSON error with a Retry-After header. */
static int http_reply_retry(struct http_req *r, unsigned status, const char *code,
			    const char *why, const char *retry_after)
{
	json_t *body = json_pack("{s:s, s:s}", "error", why, "code", code);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text)
		return MHD_NO;
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", "application/json");
	MHD_add_response_header(resp, "Retry-After", retry_after);
	return http_reply(r, status, resp);
}

/* What a verdict on r's credentials answers: MHD_YES when r may go on
 * (authenticated, with the role its route needs), else the result of
 * queueing the refusal. */
static int http_request_verdict(struct http *h, struct http_req *r,
				enum http_auth_verdict verdict, const char *method, const char *url)
{
	char esc[160], who[160];
	switch (verdict) {
	case HTTP_AUTH_OK:
	case HTTP_AUTH_PENDING: /* not reached: the caller suspends */
		break;
	case HTTP_AUTH_THROTTLED:
		return http_reply_retry(r, 429, "throttled", "too many failed logins, try later",
					"60");
	case HTTP_AUTH_BUSY:
		return http_reply_retry(r, 503, "busy",
					"too many password checks pending, try again shortly",
					"1");
	case HTTP_AUTH_FAILED:
		log_notice("http: failed login from %s as '%s' for %s %s", r->peer,
			   http_log_str(r->user, strlen(r->user), who, sizeof who), method,
			   http_log_str(url, strlen(url), esc, sizeof esc));
		/* fall through */
	case HTTP_AUTH_MISSING: {
		json_t *body = json_pack("{s:s, s:s}", "error", "authentication required", "code",
					 "unauthorized");
		char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
		json_decref(body);
		struct MHD_Response *resp =
		    text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE)
			 : NULL;
		if (!resp) {
			free(text);
			return MHD_NO;
		}
		MHD_add_response_header(resp, "Content-Type", "application/json");
		MHD_add_response_header(resp, "Cache-Control", "no-store");
		r->status = 401;
		int rc = MHD_queue_basic_auth_fail_response(r->conn, "midge", resp);
		MHD_destroy_response(resp);
		return rc;
	}
	}
	if (r->role < r->route->role)
		return http_reply_error(r, 403, "forbidden",
					http_auth_configured(h->auth)
					    ? "this needs the admin role"
					    : "admin endpoints need midge_http_password_file or "
					      "midge_http_token_file");
	return MHD_YES;
}

/* The first call of a request (headers read): route, credentials, role.
 * Returns MHD_YES to go on reading the body (or to wait, suspended, for
 * a password check), or the result of queueing a refusal. */
static int http_request_begin(struct http *h, struct http_req *r, const char *url,
			      const char *method)
{
	bool path_known;
	enum http_auth_verdict v = HTTP_AUTH_OK;
	r->route = http_route_find(method, url, &r->arg_off, &path_known);
	if (!r->route) {
		if (path_known)
			return http_reply_error(r, 405, "method_not_allowed",
						"method not allowed for this path");
		return http_reply_error(r, 404, "not_found", "no such path");
	}
	if (!http_auth_configured(h->auth)) {
		/* Start-up made sure this server listens on loopback only. */
		r->role = HTTP_ROLE_READ;
	} else {
		v = http_auth_check(h, r, broker_now_ms());
		if (v == HTTP_AUTH_PENDING) {
			/* resumed by the check's completion (auth.c) */
			MHD_suspend_connection(r->conn);
			return MHD_YES;
		}
	}
	return http_request_verdict(h, r, v, method, url);
}

/* Appends an upload chunk to r's body, up to max; past it the body is
 * dropped and the request answered 413 once complete. */
static void http_body_append(struct http_req *r, const char *data, size_t n, size_t max)
{
	if (r->too_large)
		return;
	if (r->len + n > max) {
		r->too_large = true;
		free(r->body);
		r->body = NULL;
		r->len = r->cap = 0;
		return;
	}
	if (r->len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 1024;
		while (cap < r->len + n + 1)
			cap *= 2;
		if (cap > max + 1)
			cap = max + 1;
		char *p = realloc(r->body, cap);
		if (!p) {
			r->too_large = true;
			return;
		}
		r->body = p;
		r->cap = cap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
}

static enum MHD_Result http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
				       const char *method, const char *version,
				       const char *upload_data, size_t *upload_size, void **con_cls)
{
	struct http *h = cls;
	struct http_req *r = *con_cls;
	(void)version;
	if (!r) {
		r = calloc(1, sizeof *r);
		if (!r)
			return MHD_NO;
		r->h = h;
		r->conn = conn;
		http_peer(conn, r->peer, sizeof r->peer);
		*con_cls = r;
		int rc = http_request_begin(h, r, url, method);
		r->started = true;
		return (enum MHD_Result)rc;
	}
	if (r->auth_state == HTTP_REQ_AUTH_DONE) {
		/* The first call since a password check resumed r. r was
		 * suspended in the headers call, and libmicrohttpd repeats that
		 * call after a resume (no body yet): answer it as the first
		 * call would have. Should a body chunk come first instead, the
		 * refusal waits until the request is read (a response is
		 * queued only before the body or after it). */
		r->auth_state = HTTP_REQ_AUTH_NONE;
		if (!*upload_size)
			return (enum MHD_Result)http_request_verdict(h, r, r->verdict, method, url);
		r->refused = r->verdict != HTTP_AUTH_OK || r->role < r->route->role;
	}
	if (*upload_size) {
		if (!r->refused)
			http_body_append(r, upload_data, *upload_size, h->m->conf.http.max_body);
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->refused)
		return (enum MHD_Result)http_request_verdict(h, r, r->verdict, method, url);
	if (r->too_large)
		return (enum MHD_Result)http_reply_error(r, 413, "too_large",
							 "request body over midge_http_max_body");
	return (enum MHD_Result)r->route->handler(h, r, url + r->arg_off);
}

static void http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			      enum MHD_RequestTerminationCode toe)
{
	struct http *h = cls;
	struct http_req *r = *con_cls;
	(void)conn;
	(void)toe;
	if (!r)
		return;
	if (r->status)
		http_count_status(h, r->status);
	free(r->body);
	free(r);
	*con_cls = NULL;
}

/* ---- the loop -------------------------------------------------------------- */

static void http_on_timer(uv_timer_t *t);

/* Runs libmicrohttpd once (what is ready, without blocking) and re-arms
 * the timer for its next timeout. */
static void http_run(struct http *h)
{
	if (!h->d)
		return;
	MHD_UNSIGNED_LONG_LONG ms = 0;
	/* A connection resumed during a run is taken up by the next one;
	 * libmicrohttpd says so with a timeout of 0. */
	for (int i = 0; i < 4; i++) {
		MHD_run(h->d);
		if (MHD_get_timeout(h->d, &ms) != MHD_YES || ms > 0)
			break;
	}
	if (MHD_get_timeout(h->d, &ms) == MHD_YES)
		uv_timer_start(&h->timer, http_on_timer, ms, 0);
	else
		uv_timer_stop(&h->timer);
}

void http_run_soon(struct http *h)
{
	if (h->handles && !h->run_soon) {
		h->run_soon = true;
		uv_timer_start(&h->timer, http_on_timer, 0, 0);
	}
}

static void http_on_poll(uv_poll_t *p, int status, int events)
{
	(void)status;
	(void)events;
	http_run(p->data);
}

static void http_on_timer(uv_timer_t *t)
{
	struct http *h = t->data;
	h->run_soon = false;
	http_run(h);
}

static void http_on_tick(uv_timer_t *t)
{
	struct http *h = t->data;
	uint64_t now = broker_now_ms();
	http_topk_tick(h->topk, now);
	http_sse_tick(h->sse, now);
	http_run(h);
}

static void http_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512], esc[600];
	(void)cls;
	int n = vsnprintf(line, sizeof line, fmt, ap);
	if (n < 0)
		return;
	size_t len = strlen(line);
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	log_info("http: %s", http_log_str(line, len, esc, sizeof esc));
}

/* The consumer of the events h->want names (engine thread): the
 * connection counters, and the event streams. */
static void http_on_event(const struct midge_event *ev, void *user)
{
	struct http *h = user;
	http_counters_event(&h->counters, ev);
	if (h->sse)
		http_sse_event(h->sse, ev);
}

/* ---- start and stop ----------------------------------------------------------- */

static char *http_read_file(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	size_t cap = 0, len = 0;
	for (;;) {
		if (len + 4097 > cap) {
			if (cap >= (1u << 20)) {
				snprintf(err, errlen, "%s: larger than 1 MiB", path);
				goto fail;
			}
			cap = cap ? cap * 2 : 8192;
			char *p = realloc(buf, cap);
			if (!p)
				goto fail;
			buf = p;
		}
		size_t n = fread(buf + len, 1, 4096, f);
		len += n;
		if (n < 4096)
			break;
	}
	buf[len] = '\0';
	fclose(f);
	return buf;
fail:
	free(buf);
	fclose(f);
	return NULL;
}

/* Whether sa is a loopback address (127/8, ::1, ::ffff:127/104). */
static bool http_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr) >> 24) ==
		       127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

/* The settings that cannot be honoured, before anything is bound. */
static int http_check_config(struct http *h, const struct conf_http *cfg, const struct sockaddr *sa,
			     const char *where)
{
	if ((cfg->certfile != NULL) != (cfg->keyfile != NULL)) {
		log_err("%s: https needs both midge_http_certfile and midge_http_keyfile", where);
		return -1;
	}
	if (!http_auth_configured(h->auth)) {
		if (!http_is_loopback(sa)) {
			log_err("%s: midge_http_listener on %s without midge_http_password_file or "
				"midge_http_token_file: anyone could read the broker. Listen on a "
				"loopback address or configure authentication",
				where, h->addr);
			return -1;
		}
		log_notice("http: no midge_http_password_file or midge_http_token_file: only the "
			   "read endpoints are served, on loopback");
	} else if (!cfg->certfile && !http_is_loopback(sa)) {
		log_warn("%s: credentials travel in clear text over http on %s; set "
			 "midge_http_certfile and midge_http_keyfile for https",
			 where, h->addr);
	}
	return 0;
}

static int http_start_daemon(struct http *h, const struct conf_http *cfg, struct sockaddr *sa,
			     const char *where)
{
	char err[512];
	char *cert = NULL, *key = NULL;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	if (sa->sa_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (cfg->certfile) {
		if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
			log_err("%s: this libmicrohttpd has no TLS support: https is not available",
				where);
			return -1;
		}
		cert = http_read_file(cfg->certfile, err, sizeof err);
		key = cert ? http_read_file(cfg->keyfile, err, sizeof err) : NULL;
		if (!key) {
			log_err("%s: midge_http_certfile/keyfile: %s", where, err);
			free(cert);
			return -1;
		}
		flags |= MHD_USE_TLS;
		h->tls = true;
	}
	struct MHD_OptionItem opts[] = {
		{MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)http_mhd_log, h}, /* first: it says so */
		{MHD_OPTION_SOCK_ADDR, 0, sa},
		{MHD_OPTION_CONNECTION_LIMIT, (intptr_t)cfg->max_connections, NULL},
		{MHD_OPTION_CONNECTION_TIMEOUT, HTTP_CONNECTION_TIMEOUT_S, NULL},
		{MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)http_on_completed, h},
		{cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, cert},
		{cert ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, key},
		{MHD_OPTION_END, 0, NULL},
	};
	h->d = MHD_start_daemon(flags, h->port, NULL, NULL, http_on_request, h, MHD_OPTION_ARRAY,
				opts, MHD_OPTION_END);
	/* libmicrohttpd keeps its own copies of the key and certificate */
	if (key)
		memset(key, 0, strlen(key));
	free(cert);
	free(key);
	if (!h->d) {
		log_err("%s: cannot start the HTTP server on %s port %u: %s", where, h->addr,
			h->port, errno ? strerror(errno) : "libmicrohttpd refused");
		return -1;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	if (di && di->port)
		h->port = di->port;
	return 0;
}

static int http_resolve(const char *host, uint16_t port, struct sockaddr_storage *out,
			const char *where)
{
	struct addrinfo hints = {0}, *res = NULL;
	char svc[8];
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(svc, sizeof svc, "%u", port);
	int rc = getaddrinfo(host, svc, &hints, &res);
	if (rc != 0 || !res) {
		log_err("%s: midge_http_listener address '%s': %s", where, host, gai_strerror(rc));
		return -1;
	}
	memcpy(out, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

static int http_handles_start(struct http *h)
{
	uv_loop_t *loop = &h->m->loop;
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (!di || uv_poll_init(loop, &h->poll, di->epoll_fd) < 0)
		return -1;
	h->poll.data = h;
	uv_timer_init(loop, &h->timer);
	h->timer.data = h;
	uv_timer_init(loop, &h->tick);
	h->tick.data = h;
	h->handles = true;
	uv_poll_start(&h->poll, UV_READABLE, http_on_poll);
	uv_timer_start(&h->tick, http_on_tick, 1000, 1000);
	http_run(h);
	return 0;
}

uint32_t http_sample_topic(struct midge *m, const uint8_t *topic, size_t len)
{
	struct http *h = m->http;
	if (!h || !h->topk)
		return 1u << 16;
	return http_topk_sample(h->topk, (const char *)topic, len);
}

static struct http *http_get(struct midge *m)
{
	if (m->http)
		return m->http;
	struct http *h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	h->m = m;
	h->want = HTTP_WANT_COUNTERS;
	/* Registered once and for the broker's life (hooks has no removal);
	 * h->want says which types are called now. */
	for (int t = 1; t < MIDGE_EV__COUNT; t++)
		if (hooks_on_want(m->hooks, (enum midge_event_type)t, http_on_event, h, &h->want) < 0) {
			free(h);
			return NULL;
		}
	m->http = h;
	return h;
}

int http_start(struct midge *m)
{
	const struct conf_http *cfg = &m->conf.http;
	char err[512];
	const char *where = cfg->where ? cfg->where : "midge_http_listener";
	if (!cfg->on)
		return 0;
	if (!MHD_is_feature_supported(MHD_FEATURE_EPOLL)) {
		log_err("%s: this libmicrohttpd cannot run on an external epoll descriptor "
			"(MHD_FEATURE_EPOLL): the HTTP server needs Linux",
			where);
		return -1;
	}
	struct http *h = http_get(m);
	if (!h) {
		log_err("http: out of memory");
		return -1;
	}
	struct sockaddr_storage ss;
	const char *host = cfg->host ? cfg->host : "127.0.0.1";
	h->port = cfg->port;
	snprintf(h->addr, sizeof h->addr, "%s", host);
	if (http_resolve(host, cfg->port, &ss, where) < 0)
		return -1;
	h->auth = http_auth_new(cfg, err, sizeof err);
	if (!h->auth) {
		log_err("%s", err);
		return -1;
	}
	if (http_check_config(h, cfg, (struct sockaddr *)&ss, where) < 0)
		goto fail;
	free(h->dashboard_dir);
	h->dashboard_dir = strdup(cfg->dashboard_dir ? cfg->dashboard_dir
						     : MIDGE_DATADIR "/dashboard");
	/* the node name of the events, as the ZeroMQ publisher puts it */
	if (m->conf.node_name)
		snprintf(h->node, sizeof h->node, "%s", m->conf.node_name);
	else if (gethostname(h->node, sizeof h->node) != 0)
		snprintf(h->node, sizeof h->node, "midge");
	h->node[sizeof h->node - 1] = '\0';
	h->topk = http_topk_new(broker_now_ms());
	h->sse = http_sse_new(h);
	if (!h->dashboard_dir || !h->topk || !h->sse) {
		log_err("http: out of memory");
		goto fail;
	}
	if (http_start_daemon(h, cfg, (struct sockaddr *)&ss, where) < 0)
		goto fail;
	if (http_handles_start(h) < 0) {
		log_err("http: cannot poll libmicrohttpd's descriptor");
		goto fail;
	}
	h->running = true;
	h->started_ms = broker_now_ms();
	log_notice("http%s listening on %s port %u (metrics, admin API, dashboard)",
		   h->tls ? "s" : "", h->addr, h->port);
	return 0;
fail:
	http_stop(m);
	return -1;
}

void http_stop(struct midge *m)
{
	struct http *h = m->http;
	if (!h)
		return;
	h->running = false;
	if (h->d) {
		/* Suspended requests and streams must be resumed and ended
		 * before the daemon stops (libmicrohttpd's rule); a few runs
		 * finish them. Requests waiting for a password check get 503. */
		http_auth_abort(h, h->auth);
		MHD_run(h->d);
		for (int i = 0; i < 20 && h->sse && http_sse_close_all(h->sse) > 0; i++)
			MHD_run(h->d);
		MHD_stop_daemon(h->d);
		h->d = NULL;
	}
	if (h->handles) {
		uv_close((uv_handle_t *)&h->poll, NULL);
		uv_close((uv_handle_t *)&h->timer, NULL);
		uv_close((uv_handle_t *)&h->tick, NULL);
		h->handles = false;
	}
	http_sse_free(h->sse);
	h->sse = NULL;
	http_topk_free(h->topk);
	h->topk = NULL;
	http_auth_free(h->auth);
	h->auth = NULL;
}

int http_reload(struct midge *m, const struct conf_http *cfg, char *err, size_t errlen)
{
	struct http *h = m->http;
	if (!h || !h->running)
		return 0;
	struct http_auth *a = http_auth_new(cfg, err, errlen);
	if (!a)
		return -1;
	if (!http_auth_configured(a) && http_auth_configured(h->auth)) {
		/* Fail closed: the listener was allowed off loopback because
		 * it had credentials; a reload cannot take them away. */
		snprintf(err, errlen, "the HTTP server needs midge_http_password_file or "
				      "midge_http_token_file (they were set at start-up)");
		http_auth_free(a);
		return -1;
	}
	http_auth_take_over(a, h->auth);
	http_auth_free(h->auth);
	h->auth = a;
	return 0;
}

void http_free(struct midge *m)
{
	if (!m->http)
		return;
	http_stop(m);
	free(m->http->dashboard_dir);
	free(m->http);
	m->http = NULL;
}
