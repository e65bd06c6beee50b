/*
 * zworker.h - the auth workers' socket and its thread (docs/auth.md, "ZeroMQ
 * auth workers"): midge binds a ROUTER socket; workers (REQ, or DEALER
 * sending an empty delimiter frame) connect, say `ready`, and get one
 * request at a time, the least recently used worker first (the ZeroMQ
 * guide's load-balancing broker). Each answer is also the worker's next
 * `ready`.
 *
 * The engine thread only submits and drains: requests and results cross
 * under a mutex, a pipe wakes the worker thread, wake() (uv_async_send in
 * the broker) the engine thread. The thread owns the sockets and never
 * blocks on a worker: a request unanswered when its deadline passes comes
 * back ZWORKER_TIMEOUT, and the worker that held it is forgotten until it
 * speaks again (a worker that crashed comes back as a new peer).
 *
 * Affinity: a request may name the worker it must go to (the routing
 * identity an earlier result carried: the next step of an enhanced
 * authentication exchange whose state that worker holds). It waits for
 * that worker alone, and comes back ZWORKER_GONE when the worker is not
 * known or is forgotten before it takes it.
 */
#ifndef MIDGE_AUTH_ZWORKER_H
#define MIDGE_AUTH_ZWORKER_H

#include <stddef.h>
#include <stdint.h>

#include "auth/zproto.h"

struct zworker;

#define ZWORKER_MAX_WORKERS 256 /* peers remembered at once */
#define ZWORKER_MAX_KEYS 256    /* midge_auth_curve_worker_keys lines */
#define ZWORKER_MAX_IDENT 255   /* a ZeroMQ routing identity, at most */

struct zworker_cfg {
	const char *endpoint;
	const char *curve_secret;  /* Z85 secret key (40 characters), or NULL */
	const char *worker_keys[ZWORKER_MAX_KEYS]; /* Z85 public keys allowed in (CURVE) */
	int n_keys;
	uint32_t timeout_ms;       /* per request, from submission */
	uint32_t queue;            /* requests submitted and not come back, at most */
	void (*wake)(void *arg);   /* results wait (called on the worker thread) */
	void *wake_arg;
};

enum zworker_status {
	ZWORKER_ANSWER = 0,  /* r->answer is the worker's */
	ZWORKER_TIMEOUT = 1, /* no worker answered in time */
	ZWORKER_BAD = 2,     /* the worker's answer did not parse (r->note says why) */
	ZWORKER_GONE = 3,    /* the worker the request was for is gone */
};

/* A worker's routing identity (ZeroMQ's, ZWORKER_MAX_IDENT bytes at most). */
struct zworker_route {
	uint8_t len;
	uint8_t ident[ZWORKER_MAX_IDENT];
};

struct zworker_result {
	uint64_t id;
	enum zworker_status status;
	struct zproto_answer answer;
	struct zworker_route worker; /* ZWORKER_ANSWER: the worker that answered */
	char note[160];
	struct zworker_result *next;
};

/*
 * Creates the context and sockets, binds cfg->endpoint (CURVE server
 * with a ZAP handler admitting worker_keys when curve_secret is set) and
 * starts the thread. Returns NULL with why in err.
 */
struct zworker *zworker_start(const struct zworker_cfg *cfg, char *err, size_t errlen);

/*
 * Queues request `id` (json[0..len), malloc'd; ownership: the worker
 * thread wipes and frees it) for any worker, or for worker `to` alone
 * (NULL: any; see Affinity above). Returns 0, or -1 when cfg->queue
 * requests are out (json is wiped and freed then too).
 */
int zworker_submit(struct zworker *z, uint64_t id, char *json, size_t len,
		   const struct zworker_route *to);

/* Hands every result that came back to done (engine thread); done owns
 * the result (free it with zworker_result_free). Returns how many. */
size_t zworker_drain(struct zworker *z, void (*done)(void *ctx, struct zworker_result *r),
		     void *ctx);
void zworker_result_free(struct zworker_result *r);

/* Workers that said ready or answered and are not forgotten. Any thread. */
unsigned zworker_known(const struct zworker *z);

/* Stops the thread, drops what is queued (never delivered), closes the
 * sockets. zworker_stop(NULL) does nothing. */
void zworker_stop(struct zworker *z);

#endif
