/*
 * zauth_acl.c - `acl` requests (docs/auth.md, "Per-message acl requests"):
 * the PUBLISHes and SUBSCRIBEs of a client whose connect answer said
 * "acl": "ask" are decided by a worker, one request per (client, action,
 * topic or filter, QoS, retain), the answer remembered
 * (midge_auth_acl_cache_*). An answer with "any_qos_retain": true is
 * remembered for the topic whatever the QoS and retain flag, so a worker
 * that decides by topic alone is asked once per topic, not six times.
 * The hash leaves QoS and retain out so both kinds of entry of a topic
 * share a chain.
 *
 * A miss sends the request and answers ENGINE_AUTH_PENDING: the engine
 * leaves the packet unread and the connection is not read on (engine.h,
 * ENGINE_CONN_HELD). When the client's last request is answered, its
 * connection is resumed: the packet, decoded again, finds its answer
 * here. An answer stays "fresh" (kept whatever the cache's bounds and
 * TTL say) until the connection's input was handled without a hold
 * (zauth_acl_settle), so a replay always finds what it asked for.
 *
 * Deliveries (receive) are asked only for a client whose connect answer
 * also said "receive": "ask"; for the others the SUBSCRIBE that made the
 * subscription was. A miss sends the request and the engine queues the
 * delivery for that client alone, everything after it too (engine.h,
 * engine_acl_may_wait); the answer drains the queue again
 * (engine_conn_receive_ready), which finds it here and uses it up. A
 * delivery to a session without a connection is not asked: it is
 * queued and asked about when the client is back. What cannot wait (a
 * will, a retained message's source) is answered from the cache, and
 * refused on a miss.
 */
#include "transport/zauth.h"

#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "transport/broker.h"
#include "transport/conn.h"
#include "transport/latency.h"
#include "transport/log.h"
#include "transport/zauth_internal.h"

static uint32_t zacl_hash(const struct zclient *k, uint8_t action, const uint8_t *t, size_t n)
{
	return zauth_hash(t, n) ^ (zauth_ptr_bucket(k) * 2654435761u) ^ action;
}

/* The entry answering (k, action, t, qos, retain): asked about exactly
 * that, or answered for any QoS and retain flag of t. */
static struct zaclent *zacl_find(struct zauth *z, const struct zclient *k, uint8_t action,
				 const uint8_t *t, size_t n, uint32_t h, uint8_t qos, bool retain)
{
	for (struct zaclent *e = z->acl[h % ZAUTH_BUCKETS]; e; e = e->next)
		if (e->hash == h && e->k == k && e->action == action &&
		    ((e->qos == qos && e->retain == retain) || e->any) && e->len == n &&
		    memcmp(e->topic, t, n) == 0)
			return e;
	return NULL;
}

/* A new entry for k, asked; NULL on OOM. */
static struct zaclent *zacl_new(struct zauth *z, struct zclient *k, uint8_t action,
				const uint8_t *t, size_t n, uint32_t h, uint8_t qos, bool retain)
{
	struct zaclent *e = calloc(1, sizeof *e + n);
	if (!e)
		return NULL;
	memcpy(e->topic, t, n);
	e->len = (uint16_t)n;
	e->hash = h;
	e->action = action;
	e->qos = qos;
	e->retain = retain;
	e->k = k;
	e->state = ZACL_ASKED;
	e->next = z->acl[h % ZAUTH_BUCKETS];
	z->acl[h % ZAUTH_BUCKETS] = e;
	e->k_next = k->acl;
	k->acl = e;
	k->n_asked++;
	return e;
}

/* Unlinks and frees e; an asked entry's request is forgotten (its
 * answer, when it comes, finds nothing). */
static void zacl_free(struct zauth *z, struct zaclent *e)
{
	struct zclient *k = e->k;
	struct zaclent **pp = &z->acl[e->hash % ZAUTH_BUCKETS];
	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	for (pp = &k->acl; *pp != e; pp = &(*pp)->k_next)
		;
	*pp = e->k_next;
	if (e->state == ZACL_ASKED) {
		k->n_asked--;
		if (e->p) {
			zauth_pending_unlink(z, e->p);
			free(e->p);
		}
	} else if (e->state == ZACL_FRESH) {
		k->n_fresh--;
	} else {
		*(e->f_prev ? &e->f_prev->f_next : &z->acl_head) = e->f_next;
		*(e->f_next ? &e->f_next->f_prev : &z->acl_tail) = e->f_prev;
		k->n_cached--;
		z->n_acl_cached--;
	}
	free(e);
}

/* k's oldest cached entry (its list is newest first). */
static struct zaclent *zacl_oldest(const struct zclient *k)
{
	struct zaclent *old = NULL;
	for (struct zaclent *e = k->acl; e; e = e->k_next)
		if (e->state == ZACL_CACHED)
			old = e;
	return old;
}

/* A fresh entry whose packet was handled: cached within the bounds (per
 * client, then all clients, oldest out first), or freed. */
static void zacl_settle_one(struct zauth *z, struct zaclent *e)
{
	const struct zauth_conf *c = &z->m->conf.zauth;
	struct zclient *k = e->k;
	if (!e->keep || !c->acl_cache_ttl) {
		zacl_free(z, e);
		return;
	}
	while (k->n_cached >= c->acl_cache_per_client)
		zacl_free(z, zacl_oldest(k));
	while (z->n_acl_cached >= c->acl_cache_size)
		zacl_free(z, z->acl_head);
	k->n_fresh--;
	e->state = ZACL_CACHED;
	e->expires_ms = broker_now_ms() + (uint64_t)c->acl_cache_ttl * 1000u;
	e->f_next = NULL;
	e->f_prev = z->acl_tail;
	*(z->acl_tail ? &z->acl_tail->f_next : &z->acl_head) = e;
	z->acl_tail = e;
	k->n_cached++;
	z->n_acl_cached++;
}

/*
 * Sends the request for e (asked now) on behalf of cl's connection.
 * Returns 0, or -1 (e freed) when the request could not be made or the
 * queue (midge_auth_worker_queue) is full.
 */
static int zacl_ask(struct zauth *z, struct zaclent *e, const struct midge_client *cl)
{
	struct engine_conn *ec = engine_conn_of(cl);
	struct conn *c = engine_conn_handle(ec);
	if (!c) { /* no transport connection to resume (the embedding API) */
		zacl_free(z, e);
		return -1;
	}
	struct zproto_connect q = zauth_client_fields(cl, &cl->username, c);
	struct zproto_bytes t = {e->topic, e->len};
	char *json;
	size_t len;
	struct zpending *p = NULL;
	if (z->n_pending < z->m->conf.zauth.queue &&
	    zproto_acl_request(&q, e->action, &t, e->qos, e->retain, z->next_id + 1, &json,
			       &len) == 0)
		p = zauth_submit(z, ec, json, len, false, NULL); /* ownership: json is the thread's */
	if (!p) {
		zacl_free(z, e);
		return -1;
	}
	p->acl = e;
	e->p = p;
	c->acl_asked = true; /* conn_tell_engine cancels, conn_frame settles */
	return 0;
}

int zauth_acl_decide(struct zauth *z, struct zclient *k, const struct midge_client *cl,
		     const uint8_t *topic, size_t len, enum engine_access access, uint8_t qos,
		     bool retain)
{
	if (access == ENGINE_ACCESS_RECEIVE && k->ask != ZASK_RECEIVE)
		return 0; /* the SUBSCRIBE that made the subscription was asked */
	uint8_t action = access == ENGINE_ACCESS_PUBLISH     ? ZPROTO_ACL_PUBLISH
			 : access == ENGINE_ACCESS_SUBSCRIBE ? ZPROTO_ACL_SUBSCRIBE
							     : ZPROTO_ACL_RECEIVE;
	uint32_t h = zacl_hash(k, action, topic, len);
	uint64_t now = broker_now_ms();
	/* expired answers leave from the FIFO's head (one TTL for all) */
	while (z->acl_head && z->acl_head->expires_ms <= now)
		zacl_free(z, z->acl_head);
	if (access == ENGINE_ACCESS_SUBSCRIBE)
		retain = false; /* a filter has no retain flag */
	struct zaclent *e = zacl_find(z, k, action, topic, len, h, qos, retain);
	if (e && e->state == ZACL_CACHED && e->expires_ms <= now) {
		zacl_free(z, e); /* a TTL shortened by a reload */
		e = NULL;
	}
	if (e && e->state != ZACL_ASKED) {
		int rc = e->allow ? 0 : MQTT_RC_NOT_AUTHORIZED;
		/* a delivery's answer is used by the drain it started, not
		 * by a replayed packet: cached (or let go) now */
		if (e->state == ZACL_FRESH && action == ZPROTO_ACL_RECEIVE)
			zacl_settle_one(z, e);
		return rc;
	}
	/* fail closed: what cannot wait is refused without an answer */
	if (!engine_acl_may_wait(z->m->engine))
		return MQTT_RC_NOT_AUTHORIZED;
	if (engine_acl_offline(z->m->engine))
		return ENGINE_AUTH_PENDING; /* queued; asked when its client is back */
	if (e || k->n_asked >= z->m->conf.zauth.acl_pending_per_client)
		return ENGINE_AUTH_PENDING; /* asked, or asked once the client's others are answered */
	if (len > UINT16_MAX || !(e = zacl_new(z, k, action, topic, len, h, qos, retain)))
		return MQTT_RC_NOT_AUTHORIZED;
	if (zacl_ask(z, e, cl) == 0)
		return ENGINE_AUTH_PENDING;
	/* the queue is full: the packet waits if an answer will resume it */
	if (k->n_asked)
		return ENGINE_AUTH_PENDING;
	z->acl_busy++;
	return MQTT_RC_NOT_AUTHORIZED;
}

void zauth_acl_result(struct zauth *z, struct zpending *p, const struct zworker_result *r)
{
	struct midge *m = z->m;
	struct zaclent *e = p->acl;
	struct zclient *k = e->k;
	e->p = NULL;
	k->n_asked--;
	k->n_fresh++;
	e->state = ZACL_FRESH;
	e->keep = false;
	if (r->status == ZWORKER_ANSWER) {
		latency_observe(&m->lat.auth, latency_now_us() - p->t0_us, 1);
		e->allow = r->answer.allow;
		e->keep = !r->answer.no_cache;
		e->any = r->answer.any_qos_retain;
	} else if (r->status == ZWORKER_TIMEOUT) {
		z->timeouts++;
		e->allow = m->conf.zauth.on_timeout_allow;
	} else {
		zauth_bad_answer(z, r, "publish, subscribe or delivery refused");
		e->allow = false;
	}
	/* the packet waits for all its answers: read again after the last */
	struct conn *c = engine_conn_handle(p->ec);
	if (!k->n_asked && c)
		conn_resume(m, c);
	/* deliveries wait for their own answer only (and may wait behind
	 * the queue's head, whatever this answer was about) */
	if (c)
		conn_receive_ready(m, c);
}

void zauth_acl_forget(struct zauth *z, struct zclient *k, bool resume)
{
	struct engine_conn *waiting = NULL;
	while (k->acl) {
		if (k->acl->p)
			waiting = k->acl->p->ec;
		zacl_free(z, k->acl);
	}
	/* a packet or a delivery waited for what was forgotten: it asks anew */
	struct conn *c = resume && waiting ? engine_conn_handle(waiting) : NULL;
	if (c) {
		conn_resume(z->m, c);
		conn_receive_ready(z->m, c);
	}
}

void zauth_acl_cancel(struct midge *m, struct engine_conn *ec)
{
	struct zauth *z = m->zauth;
	if (!z)
		return;
	/* its requests, whichever client entry holds them */
	struct zpending *p = z->by_ec[zauth_ptr_bucket(ec)];
	while (p) {
		if (p->ec == ec && p->acl) {
			zacl_free(z, p->acl); /* frees p */
			p = z->by_ec[zauth_ptr_bucket(ec)];
		} else {
			p = p->ec_next;
		}
	}
	struct zclient *k = zauth_client_find(z, &engine_conn_client(ec)->client_id);
	for (struct zaclent *e = k ? k->acl : NULL; e && k->n_fresh;) {
		struct zaclent *next = e->k_next;
		if (e->state == ZACL_FRESH)
			zacl_free(z, e);
		e = next;
	}
}

void zauth_acl_settle(struct midge *m, struct engine_conn *ec)
{
	struct zauth *z = m->zauth;
	if (!z)
		return;
	struct zclient *k = zauth_client_find(z, &engine_conn_client(ec)->client_id);
	while (k && k->n_fresh) {
		/* from the head again: caching one may evict others of k */
		struct zaclent *e = k->acl;
		while (e->state != ZACL_FRESH)
			e = e->k_next;
		zacl_settle_one(z, e);
	}
}
