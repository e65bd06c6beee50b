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
	SEND_NOT_MOUNTED = 2, /* not under the receiving listener's mount_point */
};

/* A PUBLISH head ready to go: bytes, their length, the whole packet size. */
struct publish_head {
	const uint8_t *bytes;
	size_t len;
	size_t total;
};

/* The head cache slot a delivery of m may share: QoS 0 heads without
 * per-delivery properties are the same for every receiver of one shape
 * (version, retain) during a fan-out. Returns -1 when not shareable. */
static int head_cache_shape(const struct engine *e, const struct engine_conn *c,
			    const struct emsg *m, const struct delivery *d)
{
	bool v5 = c->version == CODEC_V5;
	if (d->qos != 0 || e->fanout != m || c->mount_len ||
	    (v5 && (d->n_sub_ids || emsg_has_expiry(m) || c->out_alias_max)))
		return -1;
	return (int)((v5 ? 2u : 0u) | (d->retain ? 1u : 0u));
}

static bool head_cache_get(const struct engine *e, const struct emsg *m, int shape,
			   struct publish_head *h)
{
	if (shape < 0 || e->head_cache.m != m || !e->head_cache.valid[shape])
		return false;
	h->bytes = e->head_cache.buf[shape];
	h->len = e->head_cache.len[shape];
	h->total = e->head_cache.total[shape];
	return true;
}

static void head_cache_put(struct engine *e, const struct emsg *m, int shape,
			   const struct publish_head *h)
{
	if (shape < 0 || h->len > HEAD_CACHE_MAX)
		return;
	if (e->head_cache.m != m) {
		memset(e->head_cache.valid, 0, sizeof e->head_cache.valid);
		e->head_cache.m = m;
	}
	memcpy(e->head_cache.buf[shape], h->bytes, h->len);
	e->head_cache.len[shape] = (uint16_t)h->len;
	e->head_cache.total[shape] = (uint32_t)h->total;
	e->head_cache.valid[shape] = true;
}

/* The v5 properties of one delivery: the message's forwardable ones plus
 * what differs per receiver (remaining expiry, alias, identifiers). */
static void publish_props(const struct engine *e, const struct emsg *m, const struct delivery *d,
			  uint16_t alias, struct codec_props *props)
{
	if (m->props)
		*props = *m->props;
	else
		memset(props, 0, sizeof *props);
	if (emsg_has_expiry(m)) {
		props->present |= CODEC_PROP_BIT(CODEC_PROP_MESSAGE_EXPIRY);
		props->message_expiry = emsg_remaining_expiry(e, m);
	}
	if (alias) {
		props->present |= CODEC_PROP_BIT(CODEC_PROP_TOPIC_ALIAS);
		props->topic_alias = alias;
	}
	if (d->n_sub_ids) {
		props->present |= CODEC_PROP_BIT(CODEC_PROP_SUBSCRIPTION_ID);
		props->sub_ids = d->sub_ids;
		props->sub_id_count = d->n_sub_ids;
	}
}

/* Encodes the head of a PUBLISH of m to c into the scratch buffer. */
static int publish_head_encode(struct engine *e, const struct engine_conn *c, const struct emsg *m,
			       const uint8_t *topic, size_t topic_len, const struct delivery *d,
			       uint16_t pid, bool dup, const struct alias_choice *alias,
			       struct publish_head *h)
{
	struct codec_packet p;
	memset(&p, 0, sizeof p);
	p.type = CODEC_PUBLISH;
	p.version = c->version;
	struct codec_publish *pub = &p.u.publish;
	pub->qos = d->qos;
	pub->dup = dup;
	pub->retain = d->retain;
	pub->topic.p = topic;
	pub->topic.len = alias->alias && !alias->is_new ? 0 : (uint32_t)topic_len;
	pub->packet_id = pid;
	pub->payload.p = m->payload->data;
	pub->payload.len = m->payload->len;
	if (c->version == CODEC_V5)
		publish_props(e, m, d, alias->alias, &pub->props);
	h->total = codec_encode_size(&p);
	if (!h->total)
		return SEND_TOO_LARGE;
	if (output_scratch_reserve(e, h->total - m->payload->len) < 0)
		return SEND_REFUSED;
	h->len = codec_encode_publish_head(&p, e->scratch, e->cap_scratch);
	if (!h->len)
		return SEND_REFUSED;
	h->bytes = e->scratch;
	return SENT;
}

/*
 * Writes one PUBLISH of m to c: the head (fixed header, topic, packet id,
 * per-delivery properties) from a buffer, the payload as the shared frame.
 * Returns SENT, SEND_REFUSED (QoS 0 over the transport's bound),
 * SEND_TOO_LARGE (over the client's maximum packet size: not sent
 * [MQTT-3.1.2-24]) or SEND_NOT_MOUNTED (not under the mount_point of the
 * client's listener: queued before it came back through another).
 */
static int deliver_publish(struct engine *e, struct engine_conn *c, const struct emsg *m,
			   const struct delivery *d, uint16_t pid, bool dup)
{
	int shape = head_cache_shape(e, c, m, d);
	struct alias_choice alias = {0, false, 0};
	struct publish_head h;
	struct frame *tail = m->payload->len ? m->payload : NULL;
	/* mount_point: the client sees its topics without it (all it
	 * subscribed to is under it; anything else is not its to see) */
	const uint8_t *topic = m->topic;
	size_t topic_len = m->topic_len;
	if (c->mount_len) {
		if (topic_len <= c->mount_len || memcmp(topic, c->mount, c->mount_len) != 0)
			return SEND_NOT_MOUNTED;
		topic += c->mount_len;
		topic_len -= c->mount_len;
	}

	if (!head_cache_get(e, m, shape, &h)) {
		if (c->out_alias_max) /* v5 clients that accept aliases only */
			alias = alias_out_choose(c, topic, topic_len);
		int rc = publish_head_encode(e, c, m, topic, topic_len, d, pid, dup, &alias, &h);
		if (rc != SENT)
			return rc;
		head_cache_put(e, m, shape, &h);
	}
	if (c->client_max_packet && h.total > c->client_max_packet)
		return SEND_TOO_LARGE;
	if (e->io.send(e->io.ctx, c->handle, h.bytes, h.len, tail, d->qos == 0) < 0)
		return SEND_REFUSED;
	if (alias.is_new) /* kept only once the packet that teaches it is queued */
		alias_out_learn(c, &alias, topic, topic_len);
	e->st.bytes_sent += h.total;
	e->st.msgs_sent++;
	e->st.publish_sent++;
	if (d->qos < 3) {
		e->st.publish_sent_qos[d->qos]++;
		e->st.publish_bytes_sent_qos[d->qos] += m->payload->len;
	}
	if (e->io.event)
		event_message(e, MIDGE_EV_DELIVER, &c->info, m, c->s, d->qos, pid, dup, 0, NULL);
	return SENT;
}

/* The one place a PUBLISH that did not go out becomes a drop event:
 * too large for the client, or (QoS 0) refused by the transport. */
static void deliver_refused(struct engine *e, struct session *s, const struct emsg *m,
			    uint8_t qos, int rc)
{
	if (rc == SEND_TOO_LARGE)
		event_drop(e, s, m, qos, MIDGE_DROP_TOO_LARGE,
			   "larger than the client's maximum packet size");
	else if (rc == SEND_NOT_MOUNTED)
		event_drop(e, s, m, qos, MIDGE_DROP_NOT_AUTHORIZED,
			   "not under the mount_point of the client's listener");
	else if (rc == SEND_REFUSED)
		event_drop(e, s, m, qos, MIDGE_DROP_SLOW_CONSUMER, "output queue over its byte bound");
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

/*
 * Sends d as a QoS 1/2 PUBLISH in a new inflight slot. Takes d->m's
 * reference. Returns 0, or -1 when it was not sent (too large for the
 * client: dropped and reported; or OOM).
 */
static int session_send_inflight(struct engine *e, struct session *s, struct delivery *d)
{
	struct slot *sl = flight_reserve(s);
	if (!sl) {
		event_drop(e, s, d->m, d->qos, MIDGE_DROP_QUEUE_FULL, "out of memory");
		emsg_unref(d->m);
		return -1;
	}
	uint16_t pid = sl->pid;
	int rc = deliver_publish(e, s->conn, d->m, d, pid, false);
	if (rc == SEND_TOO_LARGE || rc == SEND_NOT_MOUNTED) { /* the id was never used on the wire: the next one takes it */
		deliver_refused(e, s, d->m, d->qos, rc);
		emsg_unref(d->m);
		return -1;
	}
	sl->d = *d;
	sl->state = d->qos == 1 ? SLOT_PUBACK : SLOT_PUBREC;
	flight_commit(e, s);
	move_touch(e, s);
	if (s->store) {
		struct engine_store_msg v;
		struct engine_store_delivery dv;
		store_msg_view(d->m, &v);
		store_delivery_view(d, &dv);
		STORE_CALL(e, flight_sent, s->store, pid, &v, &dv);
	}
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
	if (d->qos > 0)
		move_touch(e, s);
	if (s->store && d->qos > 0) {
		struct engine_store_msg v;
		struct engine_store_delivery dv;
		store_msg_view(d->m, &v);
		store_delivery_view(d, &dv);
		STORE_CALL(e, message_queued, s->store, &v, &dv);
	}
	s->queue[(s->queue_head + s->queue_len) % s->queue_cap] = *d;
	s->queue_len++;
	s->queue_bytes += sz;
	e->st.stored_count++;
	e->st.stored_bytes += sz;
}

/* Takes the oldest queued delivery (its reference passes to *out). */
void session_dequeue(struct engine *e, struct session *s, struct delivery *out)
{
	*out = s->queue[s->queue_head];
	s->queue_head = (s->queue_head + 1) % s->queue_cap;
	s->queue_len--;
	size_t sz = emsg_size(out->m);
	s->queue_bytes -= sz;
	e->st.stored_count--;
	e->st.stored_bytes -= sz;
	if (out->qos > 0)
		move_touch(e, s);
	if (s->store && out->qos > 0)
		STORE_CALL(e, message_unqueued, s->store, out->m->id);
}

/*
 * Delivers m to s with the delivery options in d (qos already the granted
 * maximum; d->m is ignored and set here). Sends at once when connected and
 * the window allows, else queues (QoS 0 only when queue_qos0_messages and
 * the session is offline, or behind an answer awaited: recv_held).
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
	if (client_is_up(c) && s->recv_held) {
		/* queued in order behind the delivery whose answer is awaited */
	} else if (client_is_up(c)) {
		if (d->qos == 0) {
			deliver_refused(e, s, m, 0, deliver_publish(e, c, m, d, 0, false));
			return;
		}
		if (s->queue_len == 0 && !s->n_unsent &&
		    flight_room(e, s, session_window(e, s), emsg_size(m))) {
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
 * Delivers m to s (as session_deliver) if s may receive it
 * (limits_receive). A held answer queues it, QoS 0 too while the client
 * is connected: what follows queues behind it until the drain has the
 * answer, so the client sees its messages in order.
 */
void session_offer(struct engine *e, struct session *s, struct emsg *m, struct delivery *d)
{
	enum recv_verdict v = limits_receive(e, s, m, d->qos, d->retain);
	if (v == RECV_DENIED)
		return;
	if (v == RECV_HELD && client_is_up(s->conn))
		s->recv_held = true;
	session_deliver(e, s, m, d);
}

/*
 * Resends, oldest first, what the resumed client's Receive Maximum held
 * back (session_resend), while the window has room: these messages hold
 * their packet ids and come before anything queued. Returns whether none
 * is left.
 */
static bool drain_unsent(struct engine *e, struct session *s)
{
	struct engine_conn *c = s->conn;
	uint32_t w = session_window(e, s);
	while (s->n_unsent && client_is_up(c) && (uint32_t)(s->n_inflight - s->n_unsent) < w) {
		if (s->unsent_at >= s->flight_span) { /* cannot happen: the marks are in the ring */
			s->n_unsent = 0;
			break;
		}
		struct slot *sl = flight_at(s, s->unsent_at);
		if (!sl->state || !sl->unsent) {
			s->unsent_at++;
			continue;
		}
		sl->unsent = false;
		s->n_unsent--;
		s->unsent_at++;
		int rc = deliver_publish(e, c, sl->d.m, &sl->d, sl->pid, true);
		if (rc == SEND_TOO_LARGE || rc == SEND_NOT_MOUNTED) {
			deliver_refused(e, s, sl->d.m, sl->d.qos, rc);
			flight_remove(e, s, sl);
		}
	}
	return s->n_unsent == 0;
}

/*
 * Moves queued deliveries into the window while the session is connected.
 * Expired messages are dropped here, where they leave the queue
 * [MQTT-3.3.2-5].
 */
void session_drain(struct engine *e, struct session *s)
{
	if (s->n_unsent && !drain_unsent(e, s))
		return;
	while (s->queue_len && client_is_up(s->conn)) {
		struct delivery *head = &s->queue[s->queue_head];
		if (head->qos > 0 && !flight_room(e, s, session_window(e, s), emsg_size(head->m)))
			return;
		const struct emsg *hm = head->m;
		enum recv_verdict v = RECV_OK;
		if (!emsg_has_expiry(hm) || hm->expiry.at > e->now) {
			/* checked when queued; asked again for what changed
			 * since (a reload, a resume under another user name,
			 * an answer that came) */
			v = limits_receive(e, s, hm, head->qos, head->retain);
			if (v == RECV_HELD) {
				s->recv_held = true; /* the answer drains again */
				return;
			}
			/* an acl.denied callback may have published: the
			 * queue only grew, but check the head is still hm */
			if (!s->queue_len || s->queue[s->queue_head].m != hm)
				continue;
		}
		struct delivery d;
		session_dequeue(e, s, &d);
		if (emsg_has_expiry(d.m) && d.m->expiry.at <= e->now) {
			event_drop(e, s, d.m, d.qos, MIDGE_DROP_EXPIRED, "message expired while queued");
			emsg_unref(d.m);
			continue;
		}
		if (v == RECV_DENIED) {
			emsg_unref(d.m);
			continue;
		}
		if (d.qos == 0) {
			deliver_refused(e, s, d.m, 0, deliver_publish(e, s->conn, d.m, &d, 0, false));
			emsg_unref(d.m);
			continue;
		}
		session_send_inflight(e, s, &d);
	}
	if (!s->queue_len)
		s->recv_held = false;
}

/*
 * On reconnect to an existing session: resend unacknowledged PUBLISH with
 * DUP set and PUBREL, in their original order [MQTT-4.4.0-1], then the
 * queue. The new connection's window may be smaller than the old one's:
 * PUBLISH beyond it wait, marked unsent, until acknowledgements make room
 * [MQTT-3.3.4-7] (a PUBREL is always resent: its exchange already counts).
 */
void session_resend(struct engine *e, struct session *s)
{
	struct engine_conn *c = s->conn;
	uint32_t w = session_window(e, s), sent = 0;
	s->n_unsent = 0;
	/* k counts positions from the oldest; removing the oldest moves it */
	uint32_t k = 0;
	while (k < s->flight_span && client_is_up(c)) {
		struct slot *sl = flight_at(s, k);
		uint16_t span = s->flight_span;
		sl->unsent = false;
		if (sl->state == SLOT_PUBCOMP) {
			/* the PUBREC it answers may not be durable yet */
			hold_ack(e, c, hold_ticket(e, 0, true), CODEC_PUBREL, sl->pid, 0, NULL);
			sent++;
		} else if (sl->state && sent >= w) {
			if (!s->n_unsent++)
				s->unsent_at = (uint16_t)k;
			sl->unsent = true;
		} else if (sl->state) {
			int rc = deliver_publish(e, c, sl->d.m, &sl->d, sl->pid, true);
			if (rc == SEND_TOO_LARGE || rc == SEND_NOT_MOUNTED) {
				deliver_refused(e, s, sl->d.m, sl->d.qos, rc);
				flight_remove(e, s, sl);
			} else {
				sent++;
			}
		}
		k = k + 1 - (span - s->flight_span);
	}
	session_drain(e, s);
}
