/*
 * route.c - routing one accepted message: matching subscriptions in the
 * topic tree, merging overlapping ones, shared groups, the receive ACL,
 * handing each hit to its subscriber by kind.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

/* A new hit on the engine's hit stack. Returns 0 or -1 on OOM. */
static int hits_push(struct engine *e, struct hit **out)
{
	if (e->nhits == e->cap_hits) {
		uint32_t cap = e->cap_hits ? e->cap_hits * 2 : 64;
		struct hit *n = realloc(e->hits, cap * sizeof *n);
		if (!n)
			return -1;
		e->hits = n;
		e->cap_hits = cap;
	}
	*out = &e->hits[e->nhits++];
	return 0;
}

struct route_ctx {
	struct engine *e;
	struct emsg *m;
	const struct session *skip; /* never chosen from a shared group (route_share_out) */
	bool no_shared;             /* the cluster delivers to the shared groups */
};

static struct session *session_of(struct subscriber *sb)
{
	return container_of(sb, struct session, subscriber);
}

/* A shared group offers its members in turn: the first connected one
 * takes the message. Returns true when this one took it. */
static bool route_match_shared(struct route_ctx *r, struct subscriber *sb, uint8_t options,
			       uint32_t sub_id)
{
	struct engine *e = r->e;
	struct hit *h;
	if (session_of(sb) == r->skip || !client_is_up(session_of(sb)->conn))
		return false;
	if (hits_push(e, &h) < 0)
		return true;
	h->to = sb;
	h->qos = SUB_QOS(options);
	h->retain_as_published = (options & SUB_RAP) != 0;
	h->shared = true;
	h->n_sub_ids = sub_id ? 1 : 0;
	h->sub_ids[0] = sub_id;
	return true;
}

/*
 * One matching subscription of session s. Several subscriptions of one
 * session merge into one hit, found through the session's generation
 * stamp: the highest QoS and every subscription identifier
 * [MQTT-3.3.4-2] [MQTT-3.3.4-3].
 */
static void route_match_session(struct route_ctx *r, struct session *s, uint8_t options,
				uint32_t sub_id)
{
	struct engine *e = r->e;
	struct hit *h;
	if ((options & SUB_NO_LOCAL) && r->m->origin == s->serial) /* [MQTT-3.8.3-3] */
		return;
	if (e->jr && e->jr->cur_job && journal_skip(e, s))
		return; /* a replay is for its sessions, and what they lack */
	/* A delivery carries at most ENGINE_SUBIDS identifiers; the rest go in
	 * a further copy, which the specification allows, each copy carrying
	 * the identifiers of the subscriptions it stands for [MQTT-3.3.4-4]. */
	if (s->route_gen == e->route_gen && s->route_hit < e->nhits &&
	    e->hits[s->route_hit].to == &s->subscriber && !e->hits[s->route_hit].shared &&
	    !(sub_id && e->hits[s->route_hit].n_sub_ids == ENGINE_SUBIDS)) {
		h = &e->hits[s->route_hit];
		if (SUB_QOS(options) > h->qos)
			h->qos = SUB_QOS(options);
		if (options & SUB_RAP)
			h->retain_as_published = true;
	} else {
		if (hits_push(e, &h) < 0)
			return;
		s->route_gen = e->route_gen;
		s->route_hit = (uint32_t)(h - e->hits);
		h->to = &s->subscriber;
		h->qos = SUB_QOS(options);
		h->retain_as_published = (options & SUB_RAP) != 0;
		h->shared = false;
		h->n_sub_ids = 0;
	}
	if (sub_id && h->n_sub_ids < ENGINE_SUBIDS)
		h->sub_ids[h->n_sub_ids++] = sub_id;
}

/* topic_tree_match callback: records one matching subscription, by the
 * subscriber's kind. */
static bool route_match(void *ctx, void *subscriber, uint8_t options, uint32_t sub_id, bool shared)
{
	struct route_ctx *r = ctx;
	struct subscriber *sb = subscriber;
	struct hit *h;
	if (r->e->jr && r->e->jr->cur_job && sb->kind != SUBSCRIBER_SESSION)
		return false; /* logs and bridges had the message when it came */
	switch (sb->kind) {
	case SUBSCRIBER_SESSION:
		if (shared && r->no_shared)
			return true; /* "taken": the tree offers the group no further */
		if (shared)
			return route_match_shared(r, sb, options, sub_id);
		route_match_session(r, session_of(sb), options, sub_id);
		return false;
	case SUBSCRIBER_HISTORY: /* one subscription per log: no merging */
		if (hits_push(r->e, &h) == 0) {
			memset(h, 0, sizeof *h);
			h->to = sb;
		}
		return false;
	case SUBSCRIBER_BRIDGE: { /* several filters of one bridge: one hit, the highest QoS */
		bool merged;
		if (!bridge_match(r->e, sb, r->m, &h, &merged))
			return false;
		if (merged) {
			if (SUB_QOS(options) > h->qos)
				h->qos = SUB_QOS(options);
		} else if (hits_push(r->e, &h) == 0) {
			memset(h, 0, sizeof *h);
			h->to = sb;
			h->qos = SUB_QOS(options);
		}
		return false;
	}
	}
	return false;
}

/* Hands one hit to its session: the delivery options, the receive ACL,
 * then the window or the queue. */
static void route_to_session(struct engine *e, struct emsg *m, const struct hit *h,
			     struct session *s)
{
	struct delivery d;
	d.qos = h->qos;
	/* [MQTT-3.3.1-9] [MQTT-3.3.1-12] [MQTT-3.3.1-13] */
	d.retain = h->retain_as_published ? m->retain : false;
	d.shared = h->shared;
	d.n_sub_ids = s->version == CODEC_V5 ? h->n_sub_ids : 0;
	if (d.n_sub_ids)
		memcpy(d.sub_ids, h->sub_ids, d.n_sub_ids * sizeof d.sub_ids[0]);
	if (s->jwait && journal_divert(e, s, m, &d))
		return;
	session_offer(e, s, m, &d);
}

/*
 * Delivers m to every matching subscription. Collects first (no callback
 * runs while the tree is walked), then delivers, so an event callback that
 * publishes again (engine_publish) nests safely: it works above this
 * call's slice of the hit stack. Returns the number of receivers.
 */
/* Delivers the hits from base on, then pops them. Returns the number of
 * receivers (replay logs are not receivers). */
static uint32_t route_deliver(struct engine *e, struct emsg *m, uint32_t base)
{
	const struct emsg *outer = e->fanout;
	uint32_t end = e->nhits, n = 0;
	e->fanout = m;
	e->head_cache.m = NULL;
	struct journal *j = e->jr;
	struct journal cur = j ? *j : (struct journal){0};
	for (uint32_t i = base; i < end; i++) {
		/* by index: a nested route may move the array */
		const struct hit *h = &e->hits[i];
		if (j) { /* a nested route routed another message */
			j->cur_run = cur.cur_run;
			j->cur_seq = cur.cur_seq;
			j->cur_job = cur.cur_job;
		}
		switch (h->to->kind) {
		case SUBSCRIBER_SESSION:
			route_to_session(e, m, h, session_of(h->to));
			n++;
			break;
		case SUBSCRIBER_HISTORY:
			history_append(e, h->to, m);
			break;
		case SUBSCRIBER_BRIDGE:
			bridge_deliver(e, h->to, m, h->qos);
			n++;
			break;
		}
	}
	e->fanout = outer;
	e->head_cache.m = NULL;
	e->nhits = base;
	return n;
}

uint32_t route_message(struct engine *e, struct emsg *m, bool no_shared)
{
	uint32_t base = e->nhits;
	struct route_ctx r = {e, m, NULL, no_shared};
	e->route_gen++;
	topic_tree_match(e->tree, m->topic, m->topic_len, route_match, &r);
	return route_deliver(e, m, base);
}

uint32_t route_message_filter(struct engine *e, struct emsg *m, const uint8_t *f, size_t flen,
			      bool no_shared)
{
	uint32_t base = e->nhits;
	struct route_ctx r = {e, m, NULL, no_shared};
	e->route_gen++;
	topic_tree_match_filter(e->tree, f, flen, route_match, &r);
	return route_deliver(e, m, base);
}

uint32_t route_message_group(struct engine *e, struct emsg *m, const uint8_t *f, size_t flen)
{
	uint32_t base = e->nhits;
	struct route_ctx r = {e, m, NULL, false};
	e->route_gen++;
	if (!topic_tree_offer_group(e->tree, f, flen, route_match, &r)) {
		e->nhits = base;
		return 0;
	}
	return route_deliver(e, m, base);
}

/* m, given to s through one of its shared subscriptions, goes to another
 * member of the first of them that matches its topic. */
static void route_reoffer(struct engine *e, struct session *s, struct emsg *m)
{
	for (const struct sub *x = s->subs; x; x = x->next) {
		static const char pfx[] = "$share/";
		if (x->len <= sizeof pfx - 1 || memcmp(x->filter, pfx, sizeof pfx - 1) != 0)
			continue;
		const uint8_t *f = memchr(x->filter + 7, '/', x->len - 7u);
		if (!f)
			continue;
		f++;
		size_t flen = x->len - (size_t)(f - x->filter);
		if (!topic_filter_matches(f, flen, m->topic, m->topic_len))
			continue;
		uint32_t base = e->nhits;
		struct route_ctx r = {e, m, s, false};
		e->route_gen++;
		if (topic_tree_offer_group(e->tree, x->filter, x->len, route_match, &r)) {
			route_deliver(e, m, base);
			return;
		}
		e->nhits = base;
	}
}

/*
 * The session of s ends (not merely its connection): QoS 1/2 messages it
 * was given through a shared subscription and never acknowledged (in
 * flight before PUBACK / PUBREC, or still queued) go to another member of
 * that group, as the specification advises (4.8.2: "the Server SHOULD
 * send the Application Message to another Client"). A message the member
 * refused with a PUBACK/PUBREC >= 0x80 has left the window already and is
 * not offered again [MQTT-4.8.2-6]. Only at a session's end: while a
 * persistent member is away its messages wait for it.
 */
void route_share_out(struct engine *e, struct session *s)
{
	bool any = false;
	for (const struct sub *x = s->subs; x && !any; x = x->next)
		any = x->len > 7 && memcmp(x->filter, "$share/", 7) == 0;
	if (!any)
		return;
	for (uint32_t k = 0; k < s->flight_span; k++) {
		struct slot *sl = flight_at(s, k);
		if ((sl->state == SLOT_PUBACK || sl->state == SLOT_PUBREC) && sl->d.shared && sl->d.m)
			route_reoffer(e, s, sl->d.m);
	}
	for (uint32_t i = 0; i < s->queue_len; i++) {
		struct delivery *d = &s->queue[(s->queue_head + i) % s->queue_cap];
		if (d->shared)
			route_reoffer(e, s, d->m);
	}
}
