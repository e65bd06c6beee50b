/*
 * query.c - the administrator's view of the engine (engine/query.h):
 * clients paged over the client-id table, subscriptions, retained
 * messages, kicking a client, publishing as the administrator. Runs on
 * the engine thread like everything else here; nothing is copied out,
 * callbacks get views.
 */
#include "engine/query.h"

#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

static void query_fill_client(const struct session *s, struct engine_client_info *out)
{
	memset(out, 0, sizeof *out);
	out->client_id.p = s->cid;
	out->client_id.len = s->cid_len;
	out->protocol = s->version;
	out->session_expiry = s->expiry;
	out->subscriptions = s->n_subs;
	out->inflight = s->n_inflight;
	out->queued = s->queue_len;
	out->queued_bytes = s->queue_bytes;
	if (s->will) {
		out->will = true;
		out->will_delay = s->will->delay;
		out->will_topic.p = (const char *)s->will->m->topic;
		out->will_topic.len = s->will->m->topic_len;
	}
	const struct engine_conn *c = s->conn;
	if (!client_is_up(c))
		return;
	out->connected = true;
	out->username = c->info.username;
	out->peer_addr = c->info.peer_addr;
	out->peer_port = c->info.peer_port;
	out->tls = c->info.tls;
	out->protocol = c->info.protocol;
	out->keep_alive = c->keepalive;
	out->receive_max = c->client_receive_max;
	out->max_packet = c->client_max_packet;
}

int engine_query_client(struct engine *e, const char *cid, size_t len,
			struct engine_client_info *out)
{
	const struct session *s = session_find(e, (const uint8_t *)cid, len);
	if (!s)
		return -1;
	query_fill_client(s, out);
	return 0;
}

uint64_t engine_query_client_count(const struct engine *e)
{
	return e->table_count;
}

static bool query_has_prefix(struct midge_str s, struct midge_str prefix)
{
	return prefix.len == 0 || (s.len >= prefix.len && memcmp(s.p, prefix.p, prefix.len) == 0);
}

static bool query_client_matches(const struct engine_client_info *ci,
				 const struct engine_client_filter *f)
{
	if (!f)
		return true;
	if (f->connected >= 0 && ci->connected != (f->connected != 0))
		return false;
	return query_has_prefix(ci->client_id, f->client_id_prefix) &&
	       query_has_prefix(ci->username, f->username_prefix);
}

/* Reverses the bits of v (the SCAN cursor increments the reversed index,
 * so buckets are visited high bit first and a doubled table splits each
 * visited bucket into two visited ones). */
static uint64_t query_rev64(uint64_t v)
{
	uint64_t r = 0;
	for (int i = 0; i < 64; i++) {
		r = (r << 1) | (v & 1);
		v >>= 1;
	}
	return r;
}

/*
 * Redis's dictScan over one table: visit bucket (cursor & mask), then
 * advance the cursor by incrementing its reversed value with the bits
 * above the mask set, so the walk ends when the cursor wraps to 0.
 */
uint64_t engine_query_clients(struct engine *e, uint64_t cursor, const struct engine_client_filter *f,
			      uint32_t limit, uint32_t max_buckets, engine_client_cb cb, void *ctx)
{
	if (!e->table_size)
		return 0;
	uint64_t mask = e->table_size - 1;
	uint32_t found = 0, visited = 0;
	uint64_t v = cursor;
	do {
		for (const struct session *s = e->session_table[v & mask]; s; s = s->hash_next) {
			struct engine_client_info ci;
			query_fill_client(s, &ci);
			if (!query_client_matches(&ci, f))
				continue;
			found++;
			cb(ctx, &ci);
		}
		v |= ~mask;
		v = query_rev64(v);
		v++;
		v = query_rev64(v);
		visited++;
	} while (v != 0 && found < limit && visited < max_buckets);
	return v;
}

static void query_fill_sub(const struct sub *x, struct engine_sub_info *out)
{
	memset(out, 0, sizeof *out);
	out->client_id.p = x->owner->cid;
	out->client_id.len = x->owner->cid_len;
	out->filter.p = (const char *)x->filter;
	out->filter.len = x->len;
	out->qos = SUB_QOS(x->options);
	out->no_local = (x->options & SUB_NO_LOCAL) != 0;
	out->retain_as_published = (x->options & SUB_RAP) != 0;
	out->retain_handling = SUB_RH(x->options);
	out->sub_id = x->sub_id;
}

static bool query_sub_matches(const struct sub *x, const char *filter, size_t flen)
{
	return flen == 0 || (x->len == flen && memcmp(x->filter, filter, flen) == 0);
}

int64_t engine_query_subscriptions(struct engine *e, const char *cid, size_t cid_len,
				   const char *filter, size_t flen, uint64_t cursor, uint32_t limit,
				   uint32_t max_slots, engine_sub_cb cb, void *ctx)
{
	struct engine_sub_info si;
	uint32_t found = 0;
	if (cid_len) {
		/* One client's list, newest first; the cursor is a position in it
		 * (at most max_subscriptions long). */
		const struct session *s = session_find(e, (const uint8_t *)cid, cid_len);
		if (!s)
			return -1;
		uint64_t pos = 0;
		const struct sub *x = s->subs;
		for (; x && pos < cursor; x = x->next)
			pos++;
		for (; x && found < limit; x = x->next, pos++) {
			if (!query_sub_matches(x, filter, flen))
				continue;
			query_fill_sub(x, &si);
			cb(ctx, &si);
			found++;
		}
		return x ? (int64_t)pos : 0;
	}
	uint64_t i = cursor, visited = 0;
	for (; i < e->sub_table_cap && found < limit && visited < max_slots; i++, visited++) {
		const struct sub *x = e->sub_table[i];
		if (!x || !query_sub_matches(x, filter, flen))
			continue;
		query_fill_sub(x, &si);
		cb(ctx, &si);
		found++;
	}
	return i < e->sub_table_cap ? (int64_t)i : 0;
}

struct query_retained_walk {
	struct engine *e;
	uint32_t limit;
	int64_t matched;
	engine_retained_cb cb;
	void *ctx;
};

static uint32_t query_expiry_left(const struct engine *e, const struct emsg *m)
{
	return emsg_has_expiry(m) ? emsg_remaining_expiry(e, m) : UINT32_MAX;
}

static void query_retained_one(void *ctx, void *msg)
{
	struct query_retained_walk *w = ctx;
	const struct emsg *m = msg;
	if (w->matched++ >= w->limit)
		return;
	struct midge_message v;
	emsg_view(m, &v, 0, false);
	w->cb(w->ctx, &v, query_expiry_left(w->e, m));
}

int64_t engine_query_retained(struct engine *e, const char *filter, size_t len, uint32_t limit,
			      engine_retained_cb cb, void *ctx)
{
	const uint8_t *f = (const uint8_t *)filter;
	/* $share/ filters name groups, not topics */
	if (!codec_topic_filter_valid(f, len) || (len >= 7 && memcmp(f, "$share/", 7) == 0))
		return -1;
	struct query_retained_walk w = {e, limit, 0, cb, ctx};
	retain_store_match(e->retained, f, len, query_retained_one, &w);
	return w.matched;
}

int engine_query_retained_get(struct engine *e, const char *topic, size_t len,
			      engine_retained_cb cb, void *ctx)
{
	if (!codec_topic_name_valid((const uint8_t *)topic, len))
		return -1;
	const struct emsg *m = retain_store_get(e->retained, (const uint8_t *)topic, len);
	if (!m)
		return 0;
	struct midge_message v;
	emsg_view(m, &v, 0, false);
	cb(ctx, &v, query_expiry_left(e, m));
	return 1;
}

int engine_retained_delete(struct engine *e, const char *topic, size_t len, uint64_t now_ms)
{
	const uint8_t *t = (const uint8_t *)topic;
	e->now = now_ms;
	if (!codec_topic_name_valid(t, len))
		return -1;
	struct emsg *old = retain_store_get(e->retained, t, len);
	if (!old)
		return 0;
	emsg_ref(old); /* the store's reference goes in retained_set() */
	if (retained_set(e, t, len, NULL) > 0) {
		/* the broker's own ($SYS) are not held to the bound: keep the count right */
		if (old->origin == 0 && !old->origin_id && e->broker_retained)
			e->broker_retained--;
		event_message(e, MIDGE_EV_RETAIN_CLEAR, NULL, old, NULL, old->qos, 0, false, 0,
			      "deleted by an administrator");
	}
	e->st.retained_count = retain_store_count(e->retained);
	emsg_unref(old);
	return 1;
}

enum engine_kick_result engine_client_kick(struct engine *e, const char *cid, size_t len,
					   bool discard, uint64_t now_ms)
{
	e->now = now_ms;
	struct session *s = session_find(e, (const uint8_t *)cid, len);
	if (!s)
		return ENGINE_KICK_NOT_FOUND;
	struct engine_conn *c = s->conn;
	if (c && c->state != CONN_CLOSING) {
		/* Ends with the connection: session_detach() destroys it. */
		if (discard)
			s->expiry = 0;
		if (c->state == CONN_UP)
			output_disconnect(e, c, MQTT_RC_ADMINISTRATIVE_ACTION, "administrative action");
		client_request_close(e, c, MQTT_RC_ADMINISTRATIVE_ACTION, false,
				     "disconnected by an administrator");
		return ENGINE_KICK_DISCONNECTED;
	}
	if (c) {
		/* already closing: the session goes with it if asked */
		if (discard)
			s->expiry = 0;
		return discard ? ENGINE_KICK_SESSION_DISCARDED : ENGINE_KICK_DISCONNECTED;
	}
	if (!discard)
		return ENGINE_KICK_OFFLINE;
	will_publish(e, s); /* the session ends [MQTT-3.1.2-8] */
	event_session(e, MIDGE_EV_SESSION_DISCARDED, s, NULL, "discarded by an administrator");
	route_share_out(e, s);
	session_destroy(e, s);
	return ENGINE_KICK_SESSION_DISCARDED;
}

bool engine_client_disconnect(struct engine *e, const char *cid, size_t len, uint8_t rc,
			      const char *why, uint64_t now_ms)
{
	e->now = now_ms;
	struct session *s = session_find(e, (const uint8_t *)cid, len);
	struct engine_conn *c = s ? s->conn : NULL;
	if (!c || c->state == CONN_CLOSING)
		return false;
	if (c->state == CONN_UP)
		output_disconnect(e, c, rc, why); /* v5 only: 3.1.1 has no server DISCONNECT */
	client_request_close(e, c, rc, false, why);
	return true;
}

int engine_admin_publish(struct engine *e, const struct midge_client *from, const char *topic,
			 size_t topic_len, const void *payload, size_t payload_len,
			 const uint8_t *props, size_t props_len, uint8_t qos, bool retain,
			 uint64_t now_ms, uint32_t *receivers, const char **why)
{
	const uint8_t *t = (const uint8_t *)topic;
	struct codec_props pr;
	bool fatal;
	e->now = now_ms;
	*receivers = 0;
	if (qos > 2) {
		*why = "QoS must be 0, 1 or 2";
		return MQTT_RC_PROTOCOL_ERROR;
	}
	if (!codec_topic_name_valid(t, topic_len)) { /* [MQTT-3.3.2-1] [MQTT-3.3.2-2] */
		*why = "not a valid topic name";
		return MQTT_RC_TOPIC_NAME_INVALID;
	}
	if (payload_len > CODEC_MAX_REMAINING || props_len > CODEC_MAX_REMAINING) {
		*why = "larger than a packet can be";
		return MQTT_RC_PACKET_TOO_LARGE;
	}
	memset(&pr, 0, sizeof pr);
	if (props_len && codec_props_decode(props, (uint32_t)props_len, CODEC_PUBLISH, &pr) < 0) {
		*why = "malformed properties";
		return MQTT_RC_MALFORMED;
	}
	if (CODEC_HAS_PROP(&pr, CODEC_PROP_TOPIC_ALIAS)) {
		*why = "topic aliases belong to a connection";
		return MQTT_RC_TOPIC_ALIAS_INVALID;
	}
	uint8_t rc = publish_props_check(e, &pr, payload, payload_len, &fatal, why);
	if (rc)
		return rc;
	enum limits_verdict verdict =
	    limits_check_message(e, from, t, topic_len, payload_len, qos, retain);
	if (verdict) {
		*why = limits_answer_publish[verdict].why;
		return limits_answer_publish[verdict].rc;
	}
	struct emsg *m = emsg_new(e, t, topic_len, payload, payload_len, props, props_len, qos, retain,
				  0, NULL, 0, false);
	if (!m) {
		*why = "out of memory";
		return MQTT_RC_IMPLEMENTATION_SPECIFIC;
	}
	if (retain && payload_len && e->cfg.retain_available &&
	    !publish_retain_room(e, m->topic, m->topic_len, emsg_size(m))) {
		emsg_unref(m);
		*why = "retained store full (midge_max_retained_messages / midge_max_retained_bytes)";
		return MQTT_RC_QUOTA_EXCEEDED;
	}
	*receivers = publish_accept(e, m, from, 0, false);
	emsg_unref(m);
	return 0;
}
