/*
 * subscribe.c - SUBSCRIBE and UNSUBSCRIBE: the session's subscription
 * list, the topic tree, retained messages sent to a new subscription.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- subscriptions by (session, filter): engine.sub_table ---------------- */

static uint32_t sub_hash(const struct session *s, const uint8_t *f, size_t len)
{
	uint32_t h = (uint32_t)((uintptr_t)s >> 4) * 2654435761u;
	return engine_hash_bytes(f, len) ^ h;
}

static void sub_table_put(struct sub **t, uint32_t cap, struct sub *x)
{
	uint32_t mask = cap - 1;
	uint32_t i = x->hv & mask;
	while (t[i])
		i = (i + 1) & mask;
	t[i] = x;
}

/* Doubles the table (from 64). Returns 0 or -1, the table unchanged. */
static int sub_table_grow(struct engine *e)
{
	uint32_t cap = e->sub_table_cap ? 2 * e->sub_table_cap : 64;
	if (cap < e->sub_table_cap)
		return -1;
	struct sub **t = calloc(cap, sizeof *t);
	if (!t)
		return -1;
	for (uint32_t i = 0; i < e->sub_table_cap; i++)
		if (e->sub_table[i])
			sub_table_put(t, cap, e->sub_table[i]);
	free(e->sub_table);
	e->sub_table = t;
	e->sub_table_cap = cap;
	return 0;
}

static struct sub *sub_find(struct engine *e, struct session *s, const uint8_t *f, size_t len)
{
	if (!e->sub_table_n)
		return NULL;
	uint32_t hv = sub_hash(s, f, len), mask = e->sub_table_cap - 1;
	for (uint32_t i = hv & mask; e->sub_table[i]; i = (i + 1) & mask) {
		struct sub *x = e->sub_table[i];
		if (x->hv == hv && x->owner == s && x->len == len && memcmp(x->filter, f, len) == 0)
			return x;
	}
	return NULL;
}

/* A new subscription of s to f[0..len), in s's list and the table; NULL
 * without memory. */
static struct sub *sub_new(struct engine *e, struct session *s, const uint8_t *f, size_t len)
{
	if (2 * (e->sub_table_n + 1) > e->sub_table_cap && sub_table_grow(e) < 0)
		return NULL;
	struct sub *x = malloc(sizeof *x + len);
	if (!x)
		return NULL;
	x->len = (uint16_t)len;
	memcpy(x->filter, f, len);
	x->owner = s;
	x->hv = sub_hash(s, f, len);
	sub_table_put(e->sub_table, e->sub_table_cap, x);
	e->sub_table_n++;
	x->prev = NULL;
	x->next = s->subs;
	if (s->subs)
		s->subs->prev = x;
	s->subs = x;
	s->n_subs++;
	return x;
}

/* Takes x out of its session's list and the table (backward-shift
 * deletion, so no tombstones pile up under subscribe/unsubscribe churn).
 * The caller frees x. */
void sub_unlink(struct engine *e, struct sub *x)
{
	struct session *s = x->owner;
	if (x->prev)
		x->prev->next = x->next;
	else
		s->subs = x->next;
	if (x->next)
		x->next->prev = x->prev;
	s->n_subs--;
	uint32_t mask = e->sub_table_cap - 1;
	uint32_t i = x->hv & mask;
	while (e->sub_table[i] != x)
		i = (i + 1) & mask;
	for (uint32_t j = (i + 1) & mask; e->sub_table[j]; j = (j + 1) & mask) {
		uint32_t home = e->sub_table[j]->hv & mask;
		/* the entry at j may move to i unless its home lies in (i, j] */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			e->sub_table[i] = e->sub_table[j];
			i = j;
		}
	}
	e->sub_table[i] = NULL;
	e->sub_table_n--;
}

static bool subscribe_is_shared(const uint8_t *f, size_t len)
{
	return len > 7 && memcmp(f, "$share/", 7) == 0;
}

/* Whether the filter of a $share/GROUP/FILTER names a replay: not
 * available on a shared subscription (each member would replay). */
static bool subscribe_shared_replay(const uint8_t *f, size_t len)
{
	const uint8_t *g = memchr(f + 7, '/', len - 7);
	size_t rest = g ? len - (size_t)(g + 1 - f) : 0;
	return g && rest >= 8 && memcmp(g + 1, "$replay/", 8) == 0;
}

/*
 * Adds (or replaces) the subscription of s to f[0..len): the session's
 * list, the table, the topic tree. Returns 1 when new, 0 when replaced,
 * -1 on OOM (nothing changed). Shared by SUBSCRIBE and restore.c.
 */
int sub_apply(struct engine *e, struct session *s, const uint8_t *f, size_t len, uint8_t options,
	      uint32_t sub_id)
{
	struct sub *x = sub_find(e, s, f, len);
	bool isnew = !x;
	if (isnew && !(x = sub_new(e, s, f, len)))
		return -1;
	if (topic_tree_subscribe(e->tree, f, len, &s->subscriber, options, sub_id) < 0) {
		if (isnew) {
			sub_unlink(e, x);
			free(x);
		}
		return -1;
	}
	/* [MQTT-3.8.4-3]: a subscription to the same filter is replaced */
	x->options = options;
	x->sub_id = sub_id;
	if (isnew)
		cluster_sub_interest(e, s, f, len, true);
	return isnew;
}

/* Whether s may have one more subscription to f[0..len) (a replaced one
 * always fits). */
static bool sub_room(struct engine *e, struct session *s, const uint8_t *f, size_t len)
{
	return !e->cfg.max_subscriptions || s->n_subs < e->cfg.max_subscriptions ||
	       sub_find(e, s, f, len);
}

/*
 * The filter an entry subscribes to: FILTER of $replay/SPEC/FILTER, under
 * the listener's mount_point (*f may point into e->mount_buf until the
 * next call). Returns what history_parse_replay() returned (< 0: a bad
 * $replay), or -2 when the mounted filter is too long.
 */
static int subscribe_filter(struct engine *e, const struct engine_conn *c,
			    const struct codec_sub_entry *en, const uint8_t **f, size_t *len)
{
	struct replay_spec rs;
	*f = en->filter.p;
	*len = en->filter.len;
	int replay = history_parse_replay(*f, *len, &rs);
	if (replay == 0) {
		*f = rs.filter;
		*len = rs.len;
	}
	if (conn_mount(e, c, f, len) < 0) /* the listener's mount_point in front */
		return -2;
	return replay;
}

/*
 * Applies one SUBSCRIBE entry. A $replay/SPEC/FILTER entry subscribes to
 * FILTER (history.c delivers the log after the SUBACK). Returns the
 * granted QoS or a failure code (0x80 in 3.1.1), or -1 for a protocol
 * error that closes the connection. *fresh tells whether the subscription
 * is new.
 */
static int subscribe_one(struct engine *e, struct engine_conn *c, const struct codec_sub_entry *en,
			 uint32_t sub_id, bool *fresh)
{
	struct session *s = c->s;
	const struct engine_config *cfg = &e->cfg;
	const uint8_t *f;
	size_t len;
	int replay = subscribe_filter(e, c, en, &f, &len);
	*fresh = false;
	if (replay == -2)
		return c->version == CODEC_V5 ? MQTT_RC_TOPIC_FILTER_INVALID : 0x80;
	bool shared = subscribe_is_shared(f, len);
	bool wild = memchr(f, '+', len) || memchr(f, '#', len);
	int rc;
	*fresh = false;
	if (shared && en->no_local) /* [MQTT-3.8.3-4] */
		return -1;
	if (replay < 0 || (shared && subscribe_shared_replay(f, len)))
		rc = MQTT_RC_TOPIC_FILTER_INVALID;
	else if (shared && !cfg->shared_sub_available)
		rc = MQTT_RC_SHARED_SUB_NOT_SUPPORTED;
	else if (wild && !cfg->wildcard_sub_available)
		rc = MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED;
	else if (limits_topic_too_deep(e, f, len))
		rc = MQTT_RC_TOPIC_FILTER_INVALID;
	else if (!limits_acl_allows(e, &c->info, f, len, ENGINE_ACCESS_SUBSCRIBE, en->qos, false))
		rc = MQTT_RC_NOT_AUTHORIZED;
	else if (!sub_room(e, s, f, len))
		rc = MQTT_RC_QUOTA_EXCEEDED;
	else {
		uint8_t qos = en->qos > cfg->max_qos ? cfg->max_qos : en->qos;
		uint8_t options = c->version == CODEC_V5 ? (uint8_t)((en->options & ~3u) | qos) : qos;
		/* a Mosquitto bridge (try_private): its own messages are not
		 * echoed to it, and they keep their retain flag, as Mosquitto does */
		if (c->bridge)
			options |= SUB_NO_LOCAL | SUB_RAP;
		int added = sub_apply(e, s, f, len, options, sub_id);
		if (added < 0) {
			rc = MQTT_RC_UNSPECIFIED;
		} else {
			*fresh = added == 1;
			move_touch(e, s);
			if (s->store) {
				struct midge_str filter = {(const char *)f, len};
				STORE_CALL(e, subscription_added, s->store, &filter, options, sub_id);
			}
			rc = qos;
		}
	}
	if (rc >= 0x80 && c->version != CODEC_V5)
		rc = 0x80;
	return rc;
}

static void retained_collect(void *ctx, void *msg)
{
	struct engine *e = ctx;
	if (e->n_retained_matches == e->cap_retained_matches) {
		uint32_t cap = e->cap_retained_matches ? e->cap_retained_matches * 2 : 16;
		struct emsg **n = realloc(e->retained_matches, cap * sizeof *n);
		if (!n)
			return;
		e->retained_matches = n;
		e->cap_retained_matches = cap;
	}
	e->retained_matches[e->n_retained_matches++] = emsg_ref(msg);
}

/*
 * Sends the retained messages matching a new subscription, with the
 * retain flag set [MQTT-3.3.1-8], after the SUBACK. Collected first so a
 * callback that publishes cannot change the store while it is walked.
 */
static void retained_send(struct engine *e, struct session *s, const uint8_t *f, size_t len,
			  uint8_t qos, uint32_t sub_id)
{
	uint32_t base = e->n_retained_matches;
	retain_store_match(e->retained, f, len, retained_collect, e);
	uint32_t end = e->n_retained_matches;
	for (uint32_t i = base; i < end; i++) {
		struct emsg *m = e->retained_matches[i];
		if (emsg_has_expiry(m) && m->expiry.at <= e->now) {
			/* the store is not being walked here: safe to clear */
			if (retained_set(e, m->topic, m->topic_len, NULL) > 0) {
				event_message(e, MIDGE_EV_RETAIN_CLEAR, NULL, m, NULL, m->qos, 0, false, 0,
					      "expired");
			}
			event_drop(e, s, m, qos, MIDGE_DROP_EXPIRED, "retained message expired");
		} else if (!limits_retain_source_ok(e, m)) {
			event_drop(e, s, m, qos, MIDGE_DROP_NOT_AUTHORIZED,
				   "retained message's publisher may no longer publish on its topic");
		} else if (s->conn) {
			struct delivery d = {0};
			d.qos = qos;
			d.retain = true; /* [MQTT-3.3.1-8] */
			if (sub_id && s->version == CODEC_V5) {
				d.n_sub_ids = 1;
				d.sub_ids[0] = sub_id;
			}
			session_offer(e, s, m, &d);
		}
		emsg_unref(m);
	}
	e->n_retained_matches = base;
}

/*
 * Whether an answer of the ACL for some filter of sb is still pending
 * (engine_set_acl_ask): every filter is asked before any is applied, so
 * a SUBSCRIBE either waits whole or goes through with every answer in.
 * Denials are not reported here; subscribe_one() asks again and does.
 */
static bool subscribe_acl_pending(struct engine *e, struct engine_conn *c,
				  const struct codec_subscribe *sb)
{
	struct codec_sub_entry en;
	uint32_t pos = 0;
	bool pending = false;
	e->acl_may_hold = true;
	for (uint32_t i = 0; i < sb->count && codec_subscribe_next(sb, &pos, &en) == 1; i++) {
		const uint8_t *f;
		size_t len;
		if (subscribe_filter(e, c, &en, &f, &len) < 0)
			continue;
		/* every filter: its request goes out now, with the others */
		if (e->auth.acl(e->auth.ctx, &c->info, f, len, ENGINE_ACCESS_SUBSCRIBE, en.qos,
				false) == ENGINE_AUTH_PENDING)
			pending = true;
	}
	e->acl_may_hold = false;
	return pending;
}

/* SUBSCRIBE: each entry applied and reported, SUBACK with one code per
 * filter, then the retained messages the new subscriptions ask for.
 * Returns 0, -1 once the connection is closing, or ENGINE_CONN_REPLAY
 * when an ACL answer is pending (nothing done). */
int subscribe_handle(struct engine *e, struct engine_conn *c, struct codec_packet *p)
{
	struct codec_subscribe *sb = &p->u.subscribe;
	if (e->acl_ask && e->acl_on && subscribe_acl_pending(e, c, sb))
		return ENGINE_CONN_REPLAY;
	uint64_t before = e->store_changes;
	uint32_t sub_id = 0;
	if (c->version == CODEC_V5 && CODEC_HAS_PROP(&sb->props, CODEC_PROP_SUBSCRIPTION_ID)) {
		if (!e->cfg.sub_id_available)
			return client_fail(e, c, MQTT_RC_SUB_IDS_NOT_SUPPORTED,
					 "subscription identifiers not supported");
		sub_id = sb->props.sub_id;
	}
	uint32_t n = sb->count;
	uint8_t *codes = malloc(n ? n * 2 : 1);
	if (!codes)
		return client_fail(e, c, MQTT_RC_IMPLEMENTATION_SPECIFIC, "out of memory");
	uint8_t *fresh = codes + n;
	struct codec_sub_entry en;
	uint32_t pos = 0, i = 0;
	while (i < n && codec_subscribe_next(sb, &pos, &en) == 1) {
		bool f;
		int rc = subscribe_one(e, c, &en, sub_id, &f);
		if (rc < 0) {
			free(codes);
			e->st.subscriptions_count = topic_tree_count(e->tree);
			return client_fail(e, c, MQTT_RC_PROTOCOL_ERROR, "no-local on a shared subscription");
		}
		codes[i] = (uint8_t)rc;
		fresh[i] = f;
		struct midge_event ev;
		event_init(e, &ev, MIDGE_EV_SUBSCRIBE, &c->info);
		ev.u.subscribe.filter.p = (const char *)en.filter.p;
		ev.u.subscribe.filter.len = en.filter.len;
		ev.u.subscribe.qos = en.qos;
		ev.u.subscribe.no_local = en.no_local;
		ev.u.subscribe.retain_as_published = en.retain_as_published;
		ev.u.subscribe.retain_handling = en.retain_handling;
		ev.u.subscribe.sub_id = sub_id;
		ev.u.subscribe.rc = (uint8_t)rc;
		ev.u.subscribe.packet_id = sb->packet_id;
		event_emit(e, &ev);
		i++;
	}
	e->st.subscriptions_count = topic_tree_count(e->tree);
	struct codec_packet ack;
	memset(&ack, 0, sizeof ack);
	ack.type = CODEC_SUBACK;
	ack.u.suback.packet_id = sb->packet_id; /* [MQTT-3.8.4-2] */
	ack.u.suback.codes = codes;
	ack.u.suback.count = i; /* [MQTT-3.8.4-6] one code per filter, in order */
	/* a persistent session's SUBACK waits until its subscriptions are durable */
	hold_packet(e, c, hold_ticket(e, before, false), &ack, NULL);

	pos = 0;
	for (uint32_t j = 0; j < i && codec_subscribe_next(sb, &pos, &en) == 1; j++) {
		struct replay_spec rs;
		if (codes[j] >= 0x80)
			continue;
		const uint8_t *f = en.filter.p;
		size_t flen = en.filter.len;
		bool replay = history_parse_replay(f, flen, &rs) == 0;
		if (replay) {
			f = rs.filter;
			flen = rs.len;
		}
		if (conn_mount(e, c, &f, &flen) < 0) /* the listener's mount_point in front */
			continue;
		if (replay) {
			/* the log, then live: nothing can be routed in between */
			rs.filter = f;
			rs.len = flen;
			history_replay(e, c->s, &rs, codes[j], en.options, sub_id);
		} else if (e->cfg.retain_available && !subscribe_is_shared(f, flen)) {
			uint8_t rh = c->version == CODEC_V5 ? en.retain_handling : 0;
			if (rh == 2 || (rh == 1 && !fresh[j])) /* [MQTT-3.3.1-10] [MQTT-3.3.1-11] */
				continue;
			retained_send(e, c->s, f, flen, codes[j], sub_id);
		}
		if (!client_is_up(c))
			break;
	}
	free(codes);
	return client_is_up(c) ? 0 : -1;
}

/* UNSUBSCRIBE: each filter removed and reported, then UNSUBACK (with
 * reason codes in v5). */
int unsubscribe_handle(struct engine *e, struct engine_conn *c, struct codec_packet *p)
{
	struct codec_unsubscribe *un = &p->u.unsubscribe;
	struct session *s = c->s;
	uint64_t before = e->store_changes;
	uint32_t n = un->count;
	uint8_t *codes = malloc(n ? n : 1);
	if (!codes)
		return client_fail(e, c, MQTT_RC_IMPLEMENTATION_SPECIFIC, "out of memory");
	struct codec_buf f;
	uint32_t pos = 0, i = 0;
	while (i < n && codec_unsubscribe_next(un, &pos, &f) == 1) {
		struct codec_buf client_f = f;
		/* $replay/SPEC/FILTER subscribed to FILTER */
		struct replay_spec rs;
		struct codec_buf tf = f;
		if (history_parse_replay(f.p, f.len, &rs) == 0) {
			tf.p = rs.filter;
			tf.len = (uint32_t)rs.len;
		}
		size_t flen = tf.len;
		if (conn_mount(e, c, &tf.p, &flen) < 0)
			flen = 0; /* cannot be mounted: no such subscription */
		tf.len = (uint32_t)flen;
		struct sub *x = flen ? sub_find(e, s, tf.p, tf.len) : NULL;
		uint8_t rc = MQTT_RC_NO_SUBSCRIPTION_EXISTED;
		if (x) {
			topic_tree_unsubscribe(e->tree, tf.p, tf.len, &s->subscriber);
			cluster_sub_interest(e, s, tf.p, tf.len, false);
			sub_unlink(e, x);
			free(x);
			move_touch(e, s);
			if (s->store) {
				struct midge_str filter = {(const char *)tf.p, tf.len};
				STORE_CALL(e, subscription_removed, s->store, &filter);
			}
			rc = 0;
		}
		codes[i++] = rc;
		struct midge_event ev;
		event_init(e, &ev, MIDGE_EV_UNSUBSCRIBE, &c->info);
		ev.u.subscribe.filter.p = (const char *)client_f.p;
		ev.u.subscribe.filter.len = client_f.len;
		ev.u.subscribe.rc = rc;
		ev.u.subscribe.packet_id = un->packet_id;
		event_emit(e, &ev);
	}
	e->st.subscriptions_count = topic_tree_count(e->tree);
	struct codec_packet ack;
	memset(&ack, 0, sizeof ack);
	ack.type = CODEC_UNSUBACK;
	ack.u.suback.packet_id = un->packet_id; /* [MQTT-3.10.4-4] */
	if (c->version == CODEC_V5) {
		ack.u.suback.codes = codes;
		ack.u.suback.count = i;
	}
	hold_packet(e, c, hold_ticket(e, before, false), &ack, NULL);
	free(codes);
	return 0;
}
