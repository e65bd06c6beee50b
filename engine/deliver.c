/*
 * deliver.c - outbound delivery to one session: encoding a PUBLISH (head
 * cache, topic alias, per-delivery properties), the in-flight window,
 * the offline/overflow queue, resending on resume.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

enum {
	SENT = 0,
	SEND_REFUSED = -1,
	SEND_TOO_LARGE = 1,
};

/*
 * Writes one PUBLISH of m to c: the head (fixed header, topic, packet id,
 * per-delivery properties) from a buffer, the payload as the shared frame.
 * QoS 0 heads without per-delivery properties are encoded once per message
 * and shape and reused for every receiver (the fan-out path).
 * Returns SENT, SEND_REFUSED (QoS 0 over the transport's bound) or
 * SEND_TOO_LARGE (over the client's maximum packet size: not sent
 * [MQTT-3.1.2-24]).
 */
static int deliver_publish(struct engine *e, struct engine_conn *c, const struct emsg *m,
			const struct delivery *d, uint16_t pid, bool dup)
{
	bool v5 = c->version == CODEC_V5;
	bool cacheable = d->qos == 0 && e->fanout == m &&
			 (!v5 || (!d->n_sub_ids && !m->has_expiry && !c->out_alias_max));
	uint16_t alias = 0;
	bool alias_new = false;
	uint32_t thash = 0;
	unsigned shape = (v5 ? 2u : 0u) | (d->retain ? 1u : 0u);
	const uint8_t *head;
	size_t hl, total;
	struct frame *tail = m->payload->len ? m->payload : NULL;

	if (cacheable && e->head_cache.m == m && e->head_cache.valid[shape]) {
		head = e->head_cache.buf[shape];
		hl = e->head_cache.len[shape];
		total = e->head_cache.total[shape];
	} else {
		struct codec_packet p;
		memset(&p, 0, sizeof p);
		p.type = CODEC_PUBLISH;
		p.version = c->version;
		struct codec_publish *pub = &p.u.publish;
		pub->qos = d->qos;
		pub->dup = dup;
		pub->retain = d->retain;
		pub->topic.p = m->topic;
		pub->topic.len = m->topic_len;
		if (v5 && c->out_alias_max) {
			/* [MQTT-3.3.2-11]: within the client's Topic Alias Maximum */
			thash = engine_hash_bytes(m->topic, m->topic_len);
			for (uint16_t a = 0; a < c->out_alias_used && !alias; a++) {
				const struct out_alias *oa = &c->aliases->out[a];
				if (oa->hash == thash && oa->len == m->topic_len &&
				    memcmp(oa->topic, m->topic, oa->len) == 0)
					alias = (uint16_t)(a + 1);
			}
			if (alias) {
				pub->topic.len = 0;
			} else if (c->out_alias_used < c->out_alias_max) {
				alias = (uint16_t)(c->out_alias_used + 1);
				alias_new = true;
			}
		}
		pub->packet_id = pid;
		pub->payload.p = m->payload->data;
		pub->payload.len = m->payload->len;
		if (v5) {
			pub->props = m->props;
			if (m->has_expiry) {
				pub->props.present |= CODEC_PROP_BIT(CODEC_PROP_MESSAGE_EXPIRY);
				pub->props.message_expiry = emsg_remaining_expiry(e, m);
			}
			if (alias) {
				pub->props.present |= CODEC_PROP_BIT(CODEC_PROP_TOPIC_ALIAS);
				pub->props.topic_alias = alias;
			}
			if (d->n_sub_ids) {
				pub->props.present |= CODEC_PROP_BIT(CODEC_PROP_SUBSCRIPTION_ID);
				pub->props.sub_ids = d->sub_ids;
				pub->props.sub_id_count = d->n_sub_ids;
			}
		}
		total = codec_encode_size(&p);
		if (!total)
			return SEND_TOO_LARGE;
		if (output_scratch_reserve(e, total - m->payload->len) < 0)
			return SEND_REFUSED;
		hl = codec_encode_publish_head(&p, e->scratch, e->cap_scratch);
		if (!hl)
			return SEND_REFUSED;
		head = e->scratch;
		if (cacheable && hl <= HEAD_CACHE_MAX) {
			if (e->head_cache.m != m) {
				memset(e->head_cache.valid, 0, sizeof e->head_cache.valid);
				e->head_cache.m = m;
			}
			memcpy(e->head_cache.buf[shape], head, hl);
			e->head_cache.len[shape] = (uint16_t)hl;
			e->head_cache.total[shape] = (uint32_t)total;
			e->head_cache.valid[shape] = true;
		}
	}
	if (c->client_max_packet && total > c->client_max_packet)
		return SEND_TOO_LARGE;
	int rc = e->io.send(e->io.ctx, c->handle, head, hl, tail, d->qos == 0);
	if (rc < 0)
		return SEND_REFUSED;
	if (alias_new) {
		/* kept only once the packet that teaches it is queued */
		struct out_alias *oa = &c->aliases->out[alias - 1];
		oa->topic = (uint8_t *)engine_dup_bytes(m->topic, m->topic_len);
		if (oa->topic) {
			oa->hash = thash;
			oa->len = m->topic_len;
			c->out_alias_used++;
		}
	}
	e->st.bytes_sent += total;
	e->st.msgs_sent++;
	e->st.publish_sent++;
	if (e->io.event)
		event_message(e, MIDGE_EV_DELIVER, &c->info, m, c->s, d->qos, pid, dup, 0, NULL);
	return SENT;
}

/* The outgoing window: midge's max_inflight and the client's v5 receive
 * maximum [MQTT-3.3.4-7]. */
static uint32_t session_window(const struct engine *e, const struct session *s)
{
	uint32_t w = e->cfg.max_inflight ? e->cfg.max_inflight : 65535;
	if (s->conn && s->conn->client_receive_max < w)
		w = s->conn->client_receive_max;
	return w;
}

struct slot *slot_find(struct session *s, uint16_t pid)
{
	for (uint32_t i = 0; i < s->n_inflight; i++)
		if (s->inflight[i].pid == pid)
			return &s->inflight[i];
	return NULL;
}

void slot_remove(struct engine *e, struct session *s, struct slot *sl)
{
	uint32_t i = (uint32_t)(sl - s->inflight);
	emsg_unref(sl->d.m);
	memmove(&s->inflight[i], &s->inflight[i + 1], (s->n_inflight - i - 1) * sizeof *sl);
	s->n_inflight--;
	e->st.inflight_count--;
}

/* A packet id not in flight for s [MQTT-2.2.1-3]. The window is far below
 * 65535, so the loop ends. */
static uint16_t session_next_pid(struct session *s)
{
	for (;;) {
		uint16_t pid = ++s->next_pid;
		if (pid && !slot_find(s, pid))
			return pid;
	}
}

/*
 * Sends d as a QoS 1/2 PUBLISH in a new inflight slot. Takes d->m's
 * reference. Returns 0, or -1 when it was not sent (too large for the
 * client: dropped and reported; or OOM).
 */
static int session_send_inflight(struct engine *e, struct session *s, struct delivery *d)
{
	if (session_array_grow((void **)&s->inflight, &s->cap_inflight, s->n_inflight, sizeof *s->inflight) < 0) {
		event_drop(e, s, d->m, d->qos, MIDGE_DROP_QUEUE_FULL, "out of memory");
		emsg_unref(d->m);
		return -1;
	}
	uint16_t before = s->next_pid;
	uint16_t pid = session_next_pid(s);
	int rc = deliver_publish(e, s->conn, d->m, d, pid, false);
	if (rc == SEND_TOO_LARGE) {
		s->next_pid = before; /* the id was never used on the wire */
		event_drop(e, s, d->m, d->qos, MIDGE_DROP_TOO_LARGE,
			  "larger than the client's maximum packet size");
		emsg_unref(d->m);
		return -1;
	}
	struct slot *sl = &s->inflight[s->n_inflight++];
	sl->d = *d;
	sl->pid = pid;
	sl->state = d->qos == 1 ? SLOT_PUBACK : SLOT_PUBREC;
	e->st.inflight_count++;
	return 0;
}

/*
 * Appends d to the session's queue, taking d->m's reference, or drops it
 * when the message or byte bound is reached (event, counted).
 */
void session_enqueue(struct engine *e, struct session *s, struct delivery *d)
{
	size_t sz = emsg_size(d->m);
	bool full = s->queue_len >= e->cfg.max_queued_messages ||
		    (e->cfg.max_queued_bytes && s->queue_bytes + sz > e->cfg.max_queued_bytes);
	if (!full && s->queue_len == s->queue_cap) {
		uint32_t cap = s->queue_cap ? s->queue_cap * 2 : 8;
		if (cap > e->cfg.max_queued_messages)
			cap = e->cfg.max_queued_messages;
		struct delivery *n = malloc(cap * sizeof *n);
		if (!n) {
			full = true;
		} else {
			for (uint32_t i = 0; i < s->queue_len; i++)
				n[i] = s->queue[(s->queue_head + i) % s->queue_cap];
			free(s->queue);
			s->queue = n;
			s->queue_cap = cap;
			s->queue_head = 0;
		}
	}
	if (full) {
		event_drop(e, s, d->m, d->qos, MIDGE_DROP_QUEUE_FULL,
			  "session queue full (max_queued_messages / max_queued_bytes)");
		emsg_unref(d->m);
		return;
	}
	s->queue[(s->queue_head + s->queue_len) % s->queue_cap] = *d;
	s->queue_len++;
	s->queue_bytes += sz;
	e->st.stored_count++;
	e->st.stored_bytes += sz;
}

void session_dequeue(struct engine *e, struct session *s, struct delivery *out)
{
	*out = s->queue[s->queue_head];
	s->queue_head = (s->queue_head + 1) % s->queue_cap;
	s->queue_len--;
	size_t sz = emsg_size(out->m);
	s->queue_bytes -= sz;
	e->st.stored_count--;
	e->st.stored_bytes -= sz;
}

/*
 * Delivers m to s with the delivery options in d (qos already the granted
 * maximum; d->m is ignored and set here). Sends at once when connected and
 * the window allows, else queues (QoS 0 only when queue_qos0_messages and
 * the session is offline).
 */
void session_deliver(struct engine *e, struct session *s, struct emsg *m,
			    struct delivery *d)
{
	if (e->cfg.upgrade_outgoing_qos) {
		if (d->qos > e->cfg.max_qos)
			d->qos = e->cfg.max_qos;
	} else if (d->qos > m->qos) {
		d->qos = m->qos;
	}
	d->m = m;
	struct engine_conn *c = s->conn;
	if (client_is_up(c)) {
		if (d->qos == 0) {
			int rc = deliver_publish(e, c, m, d, 0, false);
			if (rc == SEND_TOO_LARGE)
				event_drop(e, s, m, 0, MIDGE_DROP_TOO_LARGE,
					  "larger than the client's maximum packet size");
			else if (rc == SEND_REFUSED)
				event_drop(e, s, m, 0, MIDGE_DROP_SLOW_CONSUMER,
					  "output queue over its byte bound");
			return;
		}
		if (s->queue_len == 0 && s->n_inflight < session_window(e, s)) {
			emsg_ref(m);
			session_send_inflight(e, s, d);
			return;
		}
	} else if (d->qos == 0 && !e->cfg.queue_qos0_messages) {
		return;
	}
	emsg_ref(m);
	session_enqueue(e, s, d);
}

/*
 * Moves queued deliveries into the window while the session is connected.
 * Expired messages are dropped here, where they leave the queue
 * [MQTT-3.3.2-5].
 */
void session_drain(struct engine *e, struct session *s)
{
	while (s->queue_len && client_is_up(s->conn)) {
		struct delivery *head = &s->queue[s->queue_head];
		if (head->qos > 0 && s->n_inflight >= session_window(e, s))
			return;
		struct delivery d;
		session_dequeue(e, s, &d);
		if (d.m->has_expiry && d.m->expire_at <= e->now) {
			event_drop(e, s, d.m, d.qos, MIDGE_DROP_EXPIRED, "message expired while queued");
			emsg_unref(d.m);
			continue;
		}
		if (d.qos == 0) {
			int rc = deliver_publish(e, s->conn, d.m, &d, 0, false);
			if (rc == SEND_TOO_LARGE)
				event_drop(e, s, d.m, 0, MIDGE_DROP_TOO_LARGE,
					  "larger than the client's maximum packet size");
			else if (rc == SEND_REFUSED)
				event_drop(e, s, d.m, 0, MIDGE_DROP_SLOW_CONSUMER,
					  "output queue over its byte bound");
			emsg_unref(d.m);
			continue;
		}
		session_send_inflight(e, s, &d);
	}
}

/*
 * On reconnect to an existing session: resend unacknowledged PUBLISH with
 * DUP set and PUBREL, in their original order [MQTT-4.4.0-1], then the
 * queue.
 */
void session_resend(struct engine *e, struct session *s)
{
	struct engine_conn *c = s->conn;
	uint32_t i = 0;
	while (i < s->n_inflight && client_is_up(c)) {
		struct slot *sl = &s->inflight[i];
		if (sl->state == SLOT_PUBCOMP) {
			output_ack(e, c, CODEC_PUBREL, sl->pid, 0, NULL);
			i++;
			continue;
		}
		int rc = deliver_publish(e, c, sl->d.m, &sl->d, sl->pid, true);
		if (rc == SEND_TOO_LARGE) {
			event_drop(e, s, sl->d.m, sl->d.qos, MIDGE_DROP_TOO_LARGE,
				  "larger than the client's maximum packet size");
			slot_remove(e, s, sl);
			continue;
		}
		i++;
	}
	session_drain(e, s);
}
