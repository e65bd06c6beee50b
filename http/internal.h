/*
 * internal.h - the HTTP server's shared structs and the calls its rooms
 * make to one another (not for the transport: http.h is the interface).
 *
 * Rooms:
 *   server.c   libmicrohttpd on the libuv loop, requests, routing, replies
 *   routes.c   the route table (the OpenAPI file must list every route)
 *   auth.c     Basic (password file) and bearer tokens, roles, 401 rate limit
 *   metrics.c  event counters and the Prometheus text of /metrics
 *   api.c      the /api/v1 handlers
 *   sse.c      /api/v1/events: Server-Sent Events from the hooks
 *   topics.c   the busiest topics in bounded memory (sampled Space-Saving)
 *   params.c   what midge parses itself: numbers, cursors, the publish body
 *   files.c    the dashboard's static files and the OpenAPI document
 */
#ifndef MIDGE_HTTP_INTERNAL_H
#define MIDGE_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>
#include <uv.h>

#include "hooks/render.h"
#include "midge.h"

struct midge;
struct http;
struct passwd_db;

enum http_role {
	HTTP_ROLE_NONE = 0,
	HTTP_ROLE_READ = 1,
	HTTP_ROLE_ADMIN = 2,
};

/* The verdict on a request's credentials. */
enum http_auth_verdict {
	HTTP_AUTH_OK = 0,
	HTTP_AUTH_MISSING = 1,   /* 401 with a challenge */
	HTTP_AUTH_FAILED = 2,    /* 401 */
	HTTP_AUTH_THROTTLED = 3, /* 429: too many failures from this address */
	HTTP_AUTH_PENDING = 4,   /* a check runs on the hashing pool: suspend the request */
	HTTP_AUTH_BUSY = 5,      /* 503: too many checks pending */
};

enum http_req_auth {
	HTTP_REQ_AUTH_NONE = 0,
	HTTP_REQ_AUTH_DONE = 1, /* a check answered while it was suspended: apply r->verdict */
};

/* A request being read: its body (bounded) and what auth found. */
struct http_req {
	struct http *h;
	struct MHD_Connection *conn;
	unsigned status; /* of the reply queued, for the counters */
	size_t arg_off;  /* where the route's {name} starts in the URL */
	char *body;
	size_t len, cap;
	bool too_large;
	bool started; /* the first call (headers) was handled */
	enum http_role role;
	char user[128]; /* who, for events and logs ("" anonymous) */
	const struct http_route *route;
	char peer[64];
	/* a Basic check on the hashing pool (auth.c) */
	struct http_req *check_next; /* waiting for the same check */
	enum http_auth_verdict verdict;
	enum http_req_auth auth_state;
	bool refused; /* the verdict refuses: the body is dropped, the refusal
		       * queued once the request is read */
};

typedef int (*http_handler)(struct http *h, struct http_req *r, const char *arg);

/* One route: method, path (a trailing "{name}" takes the rest of the
 * path, slashes included), the role it needs, its handler. */
struct http_route {
	const char *method;
	const char *path;
	enum http_role role;
	http_handler handler;
};

extern const struct http_route http_routes[];
extern const size_t http_n_routes;

/* ---- auth.c ---- */
struct http_auth;
struct conf_http;
/* Reads the password and token files of cfg. NULL with "file:line: why"
 * in err. */
struct http_auth *http_auth_new(const struct conf_http *cfg, char *err, size_t errlen);
void http_auth_free(struct http_auth *a);
/* Whether any credential source is configured. */
bool http_auth_configured(const struct http_auth *a);
/* Checks r's Authorization header; sets r->role and r->user. A Basic
 * password that is neither remembered nor throttled is checked on the
 * hashing pool: HTTP_AUTH_PENDING, and the caller suspends r; when the
 * check ends, r is resumed with auth_state HTTP_REQ_AUTH_DONE and
 * r->verdict, r->role and r->user set. */
enum http_auth_verdict http_auth_check(struct http *h, struct http_req *r, uint64_t now_ms);
/* Shutdown: cancels every pending check and resumes its requests with
 * HTTP_AUTH_BUSY. */
void http_auth_abort(struct http *h, struct http_auth *a);
/* Reload: a takes over old's pending checks (their results are applied
 * but not remembered: they are of the old file), failure records and
 * counters. */
void http_auth_take_over(struct http_auth *a, struct http_auth *old);
struct http_auth_stats {
	uint64_t failures;  /* 401s for wrong credentials */
	uint64_t throttled; /* 429s */
	uint64_t checks;    /* passwords checked on the hashing pool */
	uint64_t busy;      /* 503s: too many checks pending */
	uint64_t pending;   /* gauge: checks running or waiting */
};
void http_auth_stats(const struct http_auth *a, struct http_auth_stats *out);

/* ---- topics.c ---- */
#define HTTP_TOPK 64            /* topics tracked */
#define HTTP_TOPK_TOPIC_MAX 200 /* bytes of a tracked topic kept */
struct http_topk;
struct http_topk *http_topk_new(uint64_t seed);
void http_topk_free(struct http_topk *t);
/* A sampled published message on topic; returns how many published
 * messages to let pass before the next sample (engine_io.sample). */
uint32_t http_topk_sample(struct http_topk *t, const char *topic, size_t len);
/* Closes the rate window when it is due (call about once a second). */
void http_topk_tick(struct http_topk *t, uint64_t now_ms);
/* The busiest topics, highest rate first, at most limit. */
json_t *http_topk_json(const struct http_topk *t, uint32_t limit);

/* ---- sse.c ---- */
struct http_sse;
struct http_sse *http_sse_new(struct http *h);
void http_sse_free(struct http_sse *s);
/* A new stream for conn with the event-name prefix filter. Returns the
 * MHD result of queueing the response. */
int http_sse_open(struct http_req *r, const char *prefix, size_t plen);
/* One event from the hooks (engine thread). */
void http_sse_event(struct http_sse *s, const struct midge_event *ev);
/* Keepalives and slow readers (about once a second). */
void http_sse_tick(struct http_sse *s, uint64_t now_ms);
/* Ends every stream (shutdown). Returns how many are still open. */
int http_sse_close_all(struct http_sse *s);
struct http_sse_stats {
	uint64_t clients, opened, events, dropped, slow_closed, refused;
};
void http_sse_stats(const struct http_sse *s, struct http_sse_stats *out);

/* ---- metrics.c ---- */
struct http_counters {
	uint64_t connected_by_protocol[6]; /* gauge, by protocol level (3, 4, 5) */
	uint64_t connects_by_protocol[6];
	uint64_t refused_by_rc[256];
	uint64_t disconnects_by_rc[256];
	uint64_t protocol_errors;
};
void http_counters_event(struct http_counters *c, const struct midge_event *ev);
/* The event types http_counters_event counts. */
#define HTTP_WANT_COUNTERS                                                                   \
	((1u << MIDGE_EV_CONNECT) | (1u << MIDGE_EV_DISCONNECT) |                            \
	 (1u << MIDGE_EV_CONNECT_REFUSED) | (1u << MIDGE_EV_PROTOCOL_ERROR))
/* CPU seconds and resident bytes of this process. */
void http_process_usage(double *cpu_seconds, double *resident_bytes);
/* The Prometheus text exposition of everything, as a malloc'd string. */
char *http_metrics_render(struct http *h, size_t *len);

/* ---- params.c ---- */
/* A decimal in [min, max]. 0 or -1. */
int http_param_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);
/* "true"/"false"/"1"/"0". 0 or -1. */
int http_param_bool(const char *s, bool *out);
/* An opaque paging cursor: 1 to 16 lowercase hex digits. 0 or -1. */
int http_cursor_decode(const char *s, uint64_t *out);
/* Writes the cursor text of v into buf[17]. */
void http_cursor_encode(uint64_t v, char buf[17]);
/* A parsed POST /api/v1/publish body. Views point into the json_t
 * (payload into dec, which the caller frees). */
struct http_publish {
	json_t *root;
	const char *topic;
	size_t topic_len;
	uint8_t *payload; /* malloc'd (decoded) */
	size_t payload_len;
	uint8_t qos;
	bool retain;
	uint8_t *props; /* malloc'd v5 property block, NULL when none */
	size_t props_len;
};
/* Parses body[0..len): JSON (jansson, depth and size bounded) into *out.
 * Returns 0, or -1 with a reason in err. http_publish_clear() always. */
int http_publish_parse(const char *body, size_t len, struct http_publish *out, char *err,
		       size_t errlen);
void http_publish_clear(struct http_publish *p);

/* ---- files.c ---- */
int http_files_serve(struct http_req *r, const char *name);
extern const char http_openapi_json[];
extern const unsigned long http_openapi_json_len;

/* ---- server.c: replies ---- */
struct http {
	struct midge *m;
	struct MHD_Daemon *d;
	uv_poll_t poll;
	uv_timer_t timer; /* libmicrohttpd's timeout */
	uv_timer_t tick;  /* once a second: SSE keepalives, topic rates */
	bool handles;     /* poll and timers are initialised */
	bool running;
	bool run_soon; /* the timer is set to run libmicrohttpd on the next loop pass */
	bool tls;
	uint16_t port;
	char addr[64];
	char node[256]; /* put in every event, as the ZeroMQ publisher does */
	char *dashboard_dir;
	struct http_auth *auth;
	struct http_topk *topk;
	struct http_sse *sse;
	struct http_counters counters;
	/* the event types http_on_event is called for (hooks_on_want): the
	 * counters' and what open event streams match */
	uint32_t want;
	uint64_t requests_by_class[6]; /* 1xx .. 5xx by first digit */
	uint64_t started_ms;
};

/* Queues a JSON reply (ownership: takes the reference of body). Each
 * http_reply_* returns what MHD_queue_response() returned. */
int http_reply_json(struct http_req *r, unsigned status, json_t *body);
/* Queues {"error": why, "code": code} with status. */
int http_reply_error(struct http_req *r, unsigned status, const char *code, const char *why);
/* Queues a malloc'd buffer (ownership: freed by libmicrohttpd). */
int http_reply_buffer(struct http_req *r, unsigned status, const char *type, char *buf,
		      size_t len);
/* Queues a built response (ownership: takes resp) with the common headers. */
int http_reply(struct http_req *r, unsigned status, struct MHD_Response *resp);
/* A query argument of conn, or NULL. */
const char *http_arg(struct http_req *r, const char *name);
/* s[0..n) cut to fit buf[cap], for a log line (the logger escapes
 * control characters in every line). */
const char *http_log_str(const char *s, size_t n, char *buf, size_t cap);

/* A stream was resumed outside libmicrohttpd's run: run it on the next
 * loop pass (once, however many events resumed streams meanwhile). */
void http_run_soon(struct http *h);

/* ---- api.c: handlers (routes.c lists them) ---- */
int http_api_broker(struct http *h, struct http_req *r, const char *arg);
/* GET /api/v1/cluster: the cluster summary (404 outside a cluster). */
int http_api_cluster(struct http *h, struct http_req *r, const char *arg);
int http_api_clients(struct http *h, struct http_req *r, const char *arg);
int http_api_client(struct http *h, struct http_req *r, const char *arg);
int http_api_kick(struct http *h, struct http_req *r, const char *arg);
int http_api_subscriptions(struct http *h, struct http_req *r, const char *arg);
int http_api_topics(struct http *h, struct http_req *r, const char *arg);
int http_api_publish(struct http *h, struct http_req *r, const char *arg);
int http_api_retained_list(struct http *h, struct http_req *r, const char *arg);
int http_api_retained_get(struct http *h, struct http_req *r, const char *arg);
int http_api_retained_delete(struct http *h, struct http_req *r, const char *arg);
int http_api_reload(struct http *h, struct http_req *r, const char *arg);
int http_api_events(struct http *h, struct http_req *r, const char *arg);
int http_api_openapi(struct http *h, struct http_req *r, const char *arg);
int http_api_metrics(struct http *h, struct http_req *r, const char *arg);
int http_api_summary(struct http *h, struct http_req *r, const char *arg);
int http_api_file(struct http *h, struct http_req *r, const char *arg);
int http_api_index(struct http *h, struct http_req *r, const char *arg);

#endif
