/*
 * zauth_internal.h - what the auth workers' rooms share: zauth.c (requests,
 * answers, the decision cache, affinity, start and stop) and zauth_rules.c
 * (the rules workers gave clients, checked per message).
 */
#ifndef MIDGE_TRANSPORT_ZAUTH_INTERNAL_H
#define MIDGE_TRANSPORT_ZAUTH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "auth/zproto.h"
#include "auth/zrules.h"
#include "auth/zworker.h"

struct auth_check;

#define ZAUTH_BUCKETS 4096u /* pending and rules; chains grow past it */
#define ZAUTH_SWEEP 1024    /* rule entries looked at per tick */

struct zpending {
	uint64_t id;
	struct engine_conn *ec;
	uint8_t key[32]; /* the cache key */
	uint64_t t0_us;
	bool enhanced; /* an `auth` request: answered with engine_conn_auth_step() */
	struct auth_check *walk; /* the CONNECT's chain (transport/auth.c), or NULL */
	struct zpending *id_next, *ec_next;
};

struct zcached {
	uint8_t key[32];
	uint64_t expires_ms;
	struct zproto_answer a; /* its rules shared with the clients it let in */
	struct zcached *next, *fifo_next;
};

/* The worker an exchange's next step goes to. */
struct zroute {
	struct engine_conn *ec;
	struct zworker_route worker;
	struct zroute *next;
};

struct zclient {
	char *cid;
	size_t len;
	struct zrules *rules;
	bool check; /* its session may be gone: asked on the tick */
	struct zclient *next;
};

struct zauth {
	uv_async_t async; /* first: the close callback frees the struct */
	struct midge *m;
	struct zworker *w;
	uint64_t next_id;
	size_t n_pending;
	struct zpending *by_id[ZAUTH_BUCKETS], *by_ec[ZAUTH_BUCKETS];
	struct zcached *cache[ZAUTH_BUCKETS];
	struct zroute *routes[ZAUTH_BUCKETS];
	struct zcached *fifo_head, *fifo_tail;
	size_t n_cached;
	struct zclient *clients[ZAUTH_BUCKETS];
	/* The client looked up last for a delivery, and for anything else:
	 * a batch of one client's PUBLISHes asks for one, every delivery to
	 * a fan-in subscriber for another, in turns. */
	struct zclient *last[2];
	size_t n_clients, n_check;
	uint64_t timeouts, bad, gone, logged_ms, quiet; /* for the log */
};

static inline uint32_t zauth_hash(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

static inline uint32_t zauth_ptr_bucket(const void *p)
{
	uintptr_t v = (uintptr_t)p;
	return (uint32_t)((v >> 4) ^ (v >> 17)) % ZAUTH_BUCKETS;
}


/* zauth_rules.c */
/* The rules of client cid from now on (NULL: none, acl_file decides).
 * Returns 0 or -1 (out of memory: the caller refuses the CONNECT). */
int zauth_client_set(struct zauth *z, const char *cid, size_t len, struct zrules *rules);
void zauth_client_drop(struct zauth *z, struct zclient **pp);

#endif
