/*
 * zauth_rules.c - the ACL rules auth workers returned at CONNECT, by client
 * id (zauth.c keeps them when the answer comes): checked for every
 * PUBLISH, SUBSCRIBE and delivery of those clients, dropped once the
 * session is gone (looked at on the tick after a disconnect, expiry or
 * discard).
 */
#include "transport/zauth.h"

#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "engine/query.h"
#include "transport/broker.h"
#include "transport/log.h"
#include "transport/zauth_internal.h"

/* ------------------------------------------------------------ rules */

static struct zclient **zauth_client_slot(struct zauth *z, const char *cid, size_t len)
{
	struct zclient **pp = &z->clients[zauth_hash(cid, len) % ZAUTH_BUCKETS];
	while (*pp && ((*pp)->len != len || memcmp((*pp)->cid, cid, len) != 0))
		pp = &(*pp)->next;
	return pp;
}

void zauth_client_drop(struct zauth *z, struct zclient **pp)
{
	struct zclient *k = *pp;
	*pp = k->next;
	for (int i = 0; i < 2; i++)
		if (z->last[i] == k)
			z->last[i] = NULL;
	if (k->check)
		z->n_check--;
	zauth_acl_forget(z, k, false); /* its session is gone, or the broker stops */
	rules_unref(k->rules);
	free(k->cid);
	free(k);
	z->n_clients--;
}

struct zclient *zauth_client_find(struct zauth *z, const struct midge_str *cid)
{
	return cid->p ? *zauth_client_slot(z, cid->p, cid->len) : NULL;
}

int zauth_client_set(struct zauth *z, const char *cid, size_t len, struct rules *rules,
		     uint8_t ask)
{
	struct zclient **pp = zauth_client_slot(z, cid, len);
	if (!rules && !ask) {
		if (*pp)
			zauth_client_drop(z, pp);
		return 0;
	}
	if (!*pp) {
		struct zclient *k = calloc(1, sizeof *k);
		if (!k || !(k->cid = malloc(len ? len : 1))) {
			free(k);
			return -1;
		}
		memcpy(k->cid, cid, len);
		k->len = len;
		*pp = k;
		z->n_clients++;
	}
	rules_unref((*pp)->rules);
	(*pp)->rules = rules_ref(rules);
	/* another CONNECT's answer: what the last one was told goes */
	zauth_acl_forget(z, *pp, true);
	(*pp)->ask = ask;
	if ((*pp)->check) {
		(*pp)->check = false;
		z->n_check--;
	}
	return 0;
}

bool zauth_acl(struct midge *m, const struct midge_client *cl, const uint8_t *topic, size_t len,
	       enum engine_access access, uint8_t qos, bool retain, int *rc)
{
	struct zauth *z = m->zauth;
	if (!z || !z->n_clients || !cl->client_id.p)
		return false;
	/* an entry's id is its own copy and ids are unique among entries:
	 * an equal id is the right entry, whatever the caller's pointer */
	int which = access == ENGINE_ACCESS_PUBLISH || access == ENGINE_ACCESS_SUBSCRIBE ? 0 : 1;
	struct zclient *k = z->last[which];
	if (!k || k->len != cl->client_id.len || memcmp(k->cid, cl->client_id.p, k->len) != 0) {
		k = *zauth_client_slot(z, cl->client_id.p, cl->client_id.len);
		if (!k)
			return false;
		z->last[which] = k;
	}
	if (k->ask) {
		*rc = zauth_acl_decide(z, k, cl, topic, len, access, qos, retain);
		return true;
	}
	enum rules_access a = access == ENGINE_ACCESS_PUBLISH     ? RULES_PUBLISH
			       : access == ENGINE_ACCESS_SUBSCRIBE ? RULES_SUBSCRIBE
								   : RULES_RECEIVE;
	struct rules_who who = {cl->client_id.p, cl->client_id.len, cl->username.p, cl->username.len};
	bool ok = rules_check(k->rules, &who, topic, len, a, qos, retain);
	*rc = ok ? 0 : MQTT_RC_NOT_AUTHORIZED;
	return true;
}

bool zauth_wants_acl(const struct midge *m)
{
	return m->zauth || zauth_on(m);
}

void zauth_event(struct midge *m, const struct midge_event *ev)
{
	struct zauth *z = m->zauth;
	if (!z || !z->n_clients)
		return;
	if (ev->type != MIDGE_EV_DISCONNECT && ev->type != MIDGE_EV_SESSION_EXPIRED &&
	    ev->type != MIDGE_EV_SESSION_DISCARDED)
		return;
	if (!ev->client)
		return;
	const struct midge_str *cid = &ev->client->client_id;
	if (!cid->p)
		return;
	struct zclient *k = *zauth_client_slot(z, cid->p, cid->len);
	if (k && !k->check) {
		k->check = true;
		z->n_check++;
	}
}

void zauth_tick(struct midge *m)
{
	struct zauth *z = m->zauth;
	if (!z)
		return;
	if (z->timeouts || z->bad || z->gone) {
		log_warn("auth workers: %llu request(s) unanswered within midge_auth_timeout_ms %u "
			 "(answered as midge_auth_on_timeout %s), %llu bad answer(s), %llu "
			 "authentication exchange(s) refused because their worker went; %u worker(s) "
			 "known",
			 (unsigned long long)z->timeouts, m->conf.zauth.timeout_ms,
			 m->conf.zauth.on_timeout_allow ? "allow" : "deny",
			 (unsigned long long)z->bad, (unsigned long long)z->gone,
			 zworker_known(z->w));
		z->timeouts = z->bad = z->gone = 0;
	}
	if (z->acl_busy) {
		log_warn("auth workers: %llu publish or subscribe request(s) refused as not authorized: "
			 "midge_auth_worker_queue (%u) full",
			 (unsigned long long)z->acl_busy, m->conf.zauth.queue);
		z->acl_busy = 0;
	}
	struct engine_client_info info;
	int seen = 0;
	for (uint32_t b = 0; b < ZAUTH_BUCKETS && z->n_check && seen < ZAUTH_SWEEP; b++) {
		struct zclient **pp = &z->clients[b];
		while (*pp) {
			if ((*pp)->check && seen++ < ZAUTH_SWEEP) {
				if (engine_query_client(m->engine, (*pp)->cid, (*pp)->len, &info) < 0) {
					zauth_client_drop(z, pp);
					continue;
				}
				/* connected again, or an offline session: looked at
				 * again after its next disconnect or its expiry */
				(*pp)->check = false;
				z->n_check--;
			}
			pp = &(*pp)->next;
		}
	}
}

