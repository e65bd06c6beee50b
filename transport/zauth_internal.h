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
#include "auth/rules.h"
#include "auth/zworker.h"
#include "engine/engine.h"

struct auth_check;

#define ZAUTH_BUCKETS 4096u /* pending and rules; chains grow past it */
#define ZAUTH_SWEEP 1024    /* rule entries looked at per tick */

struct conn;
struct zaclent;

struct zpending {
	uint64_t id;
	struct engine_conn *ec;
	uint8_t key[32]; /* the cache key */
	uint64_t t0_us;
	bool enhanced; /* an `auth` request: answered with engine_conn_auth_step() */
	struct zaclent *acl; /* an `acl` request: the entry its answer fills */
	struct auth_check *walk; /* the CONNECT's chain (transport/auth.c), or NULL */
	struct zpending *id_next, *ec_next;
};

/*
 * An `acl` answer of one client (zauth_acl.c), by (client, action,
 * topic, QoS, retain; an answer the worker marked "any_qos_retain" serves
 * every QoS and retain flag of its topic): asked (its request out), fresh (answered; the packet that
 * asked has not been handled yet, so it stays whatever the cache's
 * bounds say), or cached (in the FIFO, until it expires or is evicted).
 */
enum zacl_state { ZACL_ASKED = 0, ZACL_FRESH = 1, ZACL_CACHED = 2 };

struct zaclent {
	struct zaclent *next;            /* z->acl[] chain */
	struct zaclent *k_next;          /* the client's entries */
	struct zaclent *f_prev, *f_next; /* the cache's FIFO (ZACL_CACHED) */
	struct zclient *k;
	struct zpending *p; /* ZACL_ASKED: its request */
	uint64_t expires_ms;
	uint32_t hash;
	uint8_t state, action;
	uint8_t qos;     /* what was asked */
	bool retain;
	bool any;        /* the answer holds for every QoS and retain flag */
	bool allow;
	bool keep; /* may be cached once used (not a timeout, not "cache": false) */
	uint16_t len;
	uint8_t topic[]; /* len bytes */
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

/* What a client's `acl` requests decide (its connect answer). */
enum zask {
	ZASK_NO = 0,      /* its rules, or acl_file */
	ZASK_PUBSUB = 1,  /* "acl": "ask": its PUBLISHes and SUBSCRIBEs */
	ZASK_RECEIVE = 2, /* and "receive": "ask": its deliveries too */
};

static inline uint8_t zask_of(const struct zproto_answer *a)
{
	return !a->acl_ask ? ZASK_NO : a->receive_ask ? ZASK_RECEIVE : ZASK_PUBSUB;
}

struct zclient {
	char *cid;
	size_t len;
	struct rules *rules;
	bool check; /* its session may be gone: asked on the tick */
	uint8_t ask; /* enum zask: what `acl` requests decide (zauth_acl.c) */
	struct zaclent *acl;      /* its `acl` entries, any state */
	uint32_t n_asked, n_fresh, n_cached;
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
	/* `acl` answers (zauth_acl.c): every entry by (client, action,
	 * topic); the cached ones in a FIFO, oldest first */
	struct zaclent *acl[ZAUTH_BUCKETS];
	struct zaclent *acl_head, *acl_tail;
	size_t n_acl_cached;
	uint64_t acl_busy; /* refused for a full queue, for the log */
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


/* zauth.c */
struct zworker_result;
struct zproto_connect zauth_client_fields(const struct midge_client *cl,
					  const struct midge_str *user, const struct conn *c);
struct zpending *zauth_submit(struct zauth *z, struct engine_conn *ec, char *json, size_t len,
			      bool enhanced, const struct zworker_route *to);
void zauth_pending_unlink(struct zauth *z, struct zpending *p);
int zauth_bad_answer(struct zauth *z, const struct zworker_result *r, const char *refused);

/* zauth_rules.c */
/* The rules of client cid from now on (NULL and !ask: none, acl_file
 * decides; ask: `acl` requests decide). Its `acl` answers are
 * forgotten. Returns 0 or -1 (out of memory: the caller refuses the
 * CONNECT). */
int zauth_client_set(struct zauth *z, const char *cid, size_t len, struct rules *rules,
		     uint8_t ask);
void zauth_client_drop(struct zauth *z, struct zclient **pp);
struct zclient *zauth_client_find(struct zauth *z, const struct midge_str *cid);

/* zauth_acl.c */
/* The decision for an "ask" client k: 0, MQTT_RC_NOT_AUTHORIZED, or
 * ENGINE_AUTH_PENDING (a request is out; the packet waits). */
int zauth_acl_decide(struct zauth *z, struct zclient *k, const struct midge_client *cl,
		     const uint8_t *topic, size_t len, enum engine_access access, uint8_t qos,
		     bool retain);
/* The answer (or timeout) of `acl` request p, already unlinked. */
void zauth_acl_result(struct zauth *z, struct zpending *p, const struct zworker_result *r);
/* Frees every `acl` entry of k (its requests' answers are dropped);
 * resume: the connection whose packet waited for one is read again (it
 * asks anew), else it is gone. */
void zauth_acl_forget(struct zauth *z, struct zclient *k, bool resume);

#endif
