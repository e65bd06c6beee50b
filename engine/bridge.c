/*
 * bridge.c - bridges as receivers of their own kind (SUBSCRIBER_BRIDGE):
 * the queue and in-flight window towards a remote broker, what the store
 * hears of them, their restore, and messages from the remote entering the
 * engine (engine/bridge.h has the contract).
 *
 * The window: packet ids 1..cap index their slots directly (an ack is one
 * array access, never a scan); free ids are a stack; the slots in flight
 * are also a list in send order, which a reconnect walks to send them
 * again as they first went.
 */
#include "engine/internal.h"

#include "engine/bridge.h"

#include <stdlib.h>
#include <string.h>

#define BRIDGE_NIL UINT32_MAX
/* Store keys: a client id no client can have (U+0000, [MQTT-1.5.4-2]). */
static const char bridge_key_prefix[] = "\0bridge:";
#define BRIDGE_KEY_PREFIX_LEN (sizeof bridge_key_prefix - 1)

struct bqueued {
	struct emsg *m;
	uint8_t qos;
	bool retain;
};

/* An acknowledgement for the remote waiting for the store (and the
 * cluster): engine_bridge_answer(). */
struct banswer {
	uint64_t ticket, cticket;
	uint16_t pid;
	uint8_t type, rc;
};

struct bslot {
	struct emsg *m; /* NULL once PUBREL was sent (the body is not needed) */
	uint32_t prev, next; /* send order */
	uint8_t state;       /* 0 free, SLOT_PUBACK, SLOT_PUBREC, SLOT_PUBCOMP */
	uint8_t qos;
	bool retain;
	bool resend; /* sent on an earlier connection, not yet on this one */
};

struct engine_bridge {
	struct subscriber subscriber; /* SUBSCRIBER_BRIDGE: what the tree holds */
	struct engine *e;
	struct engine_bridge *next;   /* the engine's list */
	engine_bridge_ready_cb ready;
	void *ctx;
	uint64_t serial;   /* the origin of its messages: never sent back */
	void *store;       /* the store's handle, once asked */
	bool store_asked;
	bool up;
	bool ghost;        /* restored, but no longer configured: its records go */
	uint16_t window;   /* in flight at most, while up */
	/* queue: a ring */
	struct bqueued *queue;
	uint32_t queue_cap, queue_head, queue_len;
	uint64_t queue_bytes;
	/* window: slots by packet id - 1 */
	struct bslot *slots;
	uint32_t n_slots;
	uint16_t *free_ids;
	uint32_t n_free;
	uint32_t head, tail; /* send order, oldest first */
	uint32_t cursor;     /* the next slot to look at for a resend */
	uint32_t n_inflight;
	struct emsg *last;   /* the message engine_bridge_next() gave last (views) */
	/* acknowledgements towards the remote, in order, held until durable */
	engine_bridge_answer_cb answer;
	void *answer_ctx;
	struct banswer *answers; /* a ring */
	uint32_t ans_cap, ans_head, ans_n;
	uint64_t cticket; /* the cluster's ticket of its last message forwarded */
	/* routing: several matching filters make one hit */
	uint32_t route_gen, route_hit;
	struct midge_client client; /* what events name */
	uint32_t key_len;
	char *key;  /* "\0bridge:NAME" */
	char cid[]; /* local_clientid */
};

static struct engine_bridge *bridge_of(struct subscriber *sb)
{
	return container_of(sb, struct engine_bridge, subscriber);
}

static struct engine_bridge *bridge_find_key(struct engine *e, const char *key, size_t len)
{
	for (struct engine_bridge *b = e->bridges; b; b = b->next)
		if (b->key_len == len && memcmp(b->key, key, len) == 0)
			return b;
	return NULL;
}

bool bridge_is_key(const struct midge_str *cid)
{
	return cid->len >= 1 && cid->p[0] == '\0';
}

/* A new bridge record under store key key[0..key_len) (not yet listed).
 * NULL on OOM. */
static struct engine_bridge *bridge_alloc(struct engine *e, const char *key, size_t key_len,
					  const char *client_id)
{
	size_t clen = strlen(client_id);
	struct engine_bridge *b = calloc(1, sizeof *b + clen + 1);
	if (!b)
		return NULL;
	b->key = malloc(key_len);
	if (!b->key) {
		free(b);
		return NULL;
	}
	memcpy(b->key, key, key_len);
	b->key_len = (uint32_t)key_len;
	memcpy(b->cid, client_id, clen);
	b->subscriber.kind = SUBSCRIBER_BRIDGE;
	b->e = e;
	b->serial = ++e->serial;
	b->head = b->tail = b->cursor = BRIDGE_NIL;
	b->client.client_id.p = b->cid;
	b->client.client_id.len = clen;
	b->next = e->bridges;
	e->bridges = b;
	return b;
}

struct engine_bridge *engine_bridge_add(struct engine *e, const char *name, const char *client_id,
					engine_bridge_ready_cb ready, void *ctx)
{
	char key[BRIDGE_KEY_PREFIX_LEN + 1024];
	size_t nlen = strlen(name);
	if (!nlen || nlen > 1024 || strlen(client_id) > UINT16_MAX)
		return NULL;
	memcpy(key, bridge_key_prefix, BRIDGE_KEY_PREFIX_LEN);
	memcpy(key + BRIDGE_KEY_PREFIX_LEN, name, nlen);
	if (bridge_find_key(e, key, BRIDGE_KEY_PREFIX_LEN + nlen))
		return NULL;
	struct engine_bridge *b = bridge_alloc(e, key, BRIDGE_KEY_PREFIX_LEN + nlen, client_id);
	if (b) {
		b->ready = ready;
		b->ctx = ctx;
	}
	return b;
}

void engine_bridge_set_ready(struct engine_bridge *b, engine_bridge_ready_cb ready, void *ctx)
{
	b->ready = ready;
	b->ctx = ctx;
}

void engine_bridge_set_answer(struct engine_bridge *b, engine_bridge_answer_cb answer, void *ctx)
{
	b->answer = answer;
	b->answer_ctx = ctx;
}

int engine_bridge_subscribe(struct engine_bridge *b, const char *filter, uint8_t qos)
{
	size_t len = strlen(filter);
	const uint8_t *f = (const uint8_t *)filter;
	if (qos > 2 || len > UINT16_MAX || !codec_topic_filter_valid(f, len) ||
	    (len >= 7 && memcmp(f, "$share/", 7) == 0))
		return -1;
	/* Mosquitto's bridge subscribes with no-local and retain as published */
	uint8_t options = (uint8_t)(qos | SUB_NO_LOCAL | SUB_RAP);
	return topic_tree_subscribe(b->e->tree, f, len, &b->subscriber, options, 0) < 0 ? -1 : 0;
}

/* ---- the store --------------------------------------------------------- */

/* The store's handle for b, asked once a store is attached and restoring
 * is over (restored bridges have theirs). */
static void *bridge_store(struct engine_bridge *b)
{
	struct engine *e = b->e;
	if (!b->store_asked && !e->restore) {
		struct engine_store_session rec = {.client_id = {b->key, b->key_len}, .expiry = EXPIRY_NEVER, .protocol = CODEC_V311};
		b->store_asked = true;
		b->store = STORE_CALL(e, session_saved, NULL, &rec);
	}
	return b->store;
}

static void bridge_delivery_view(uint8_t qos, bool retain, struct engine_store_delivery *out)
{
	memset(out, 0, sizeof *out);
	out->qos = qos;
	out->retain = retain;
}

/* ---- the queue ---------------------------------------------------------- */

/* Appends m (taking a reference) within the queue's bounds. Returns 0, or
 * -1 when it did not fit (dropped, with an event). */
static int bridge_enqueue(struct engine_bridge *b, struct emsg *m, uint8_t qos, bool retain,
			  bool report)
{
	struct engine *e = b->e;
	size_t sz = emsg_size(m);
	uint32_t max = e->cfg.max_queued_messages ? e->cfg.max_queued_messages : ENGINE_MAX_QUEUED;
	bool full = b->queue_len >= max ||
		    (e->cfg.max_queued_bytes && b->queue_bytes + sz > e->cfg.max_queued_bytes);
	if (!full && b->queue_len == b->queue_cap) {
		uint32_t cap = b->queue_cap ? b->queue_cap * 2 : 16;
		if (cap > max)
			cap = max;
		if (ring_regrow(&b->queue, sizeof *b->queue, &b->queue_cap, &b->queue_head, b->queue_len,
				cap) < 0)
			full = true;
	}
	if (full) {
		e->st.msgs_dropped++;
		event_message(e, MIDGE_EV_DROP, &b->client, m, NULL, qos, 0, false,
			      MIDGE_DROP_QUEUE_FULL,
			      "bridge queue full (max_queued_messages / max_queued_bytes)");
		return -1;
	}
	if (report && qos > 0 && bridge_store(b)) {
		struct engine_store_msg v;
		struct engine_store_delivery dv;
		store_msg_view(m, &v);
		bridge_delivery_view(qos, retain, &dv);
		STORE_CALL(e, message_queued, b->store, &v, &dv);
	}
	struct bqueued *q = &b->queue[(b->queue_head + b->queue_len) % b->queue_cap];
	q->m = emsg_ref(m);
	q->qos = qos;
	q->retain = retain;
	b->queue_len++;
	b->queue_bytes += sz;
	e->st.stored_count++;
	e->st.stored_bytes += sz;
	return 0;
}

/* Takes the oldest queued message (its reference passes to *out). */
static void bridge_dequeue(struct engine_bridge *b, struct bqueued *out)
{
	struct engine *e = b->e;
	*out = b->queue[b->queue_head];
	b->queue_head = (b->queue_head + 1) % b->queue_cap;
	b->queue_len--;
	size_t sz = emsg_size(out->m);
	b->queue_bytes -= sz;
	e->st.stored_count--;
	e->st.stored_bytes -= sz;
	if (out->qos > 0 && b->store)
		STORE_CALL(e, message_unqueued, b->store, out->m->id);
}

/* route.c: m matched the bridge's filters; qos is the highest of them. */
void bridge_deliver(struct engine *e, struct subscriber *sb, struct emsg *m, uint8_t qos)
{
	struct engine_bridge *b = bridge_of(sb);
	if (m->qos < qos)
		qos = m->qos;
	if (b->ghost || bridge_enqueue(b, m, qos, m->retain, true) < 0)
		return;
	e->st.msgs_sent++;
	if (b->ready)
		b->ready(b->ctx);
}

/* route.c: a bridge among the hits, merged by generation like a
 * session's subscriptions. Returns false when m came from the bridge. */
bool bridge_match(struct engine *e, struct subscriber *sb, const struct emsg *m, struct hit **h,
		  bool *merged)
{
	struct engine_bridge *b = bridge_of(sb);
	if (m->origin == b->serial) /* no-local: what the remote sent us */
		return false;
	if (b->route_gen == e->route_gen && b->route_hit < e->nhits && e->hits[b->route_hit].to == sb) {
		*h = &e->hits[b->route_hit];
		*merged = true;
		return true;
	}
	*merged = false;
	b->route_gen = e->route_gen;
	b->route_hit = e->nhits; /* where the caller's hit goes */
	return true;
}

/* ---- the window ------------------------------------------------------- */

/* Makes room for packet ids up to n (slots and the free stack). Returns 0
 * or -1 on OOM. */
static int bridge_slots_grow(struct engine_bridge *b, uint32_t n)
{
	if (n <= b->n_slots)
		return 0;
	if (n > UINT16_MAX)
		n = UINT16_MAX;
	struct bslot *s = realloc(b->slots, n * sizeof *s);
	if (!s)
		return -1;
	b->slots = s;
	uint16_t *f = realloc(b->free_ids, n * sizeof *f);
	if (!f)
		return -1;
	b->free_ids = f;
	memset(&s[b->n_slots], 0, (n - b->n_slots) * sizeof *s);
	/* the new ids go on the stack highest first, so the lowest comes next */
	for (uint32_t id = n; id > b->n_slots; id--)
		b->free_ids[b->n_free++] = (uint16_t)id;
	b->n_slots = n;
	return 0;
}

/* Takes id (a restored one) off the free stack. */
static void bridge_take_id(struct engine_bridge *b, uint16_t id)
{
	for (uint32_t i = 0; i < b->n_free; i++)
		if (b->free_ids[i] == id) {
			b->free_ids[i] = b->free_ids[--b->n_free];
			return;
		}
}

static void bridge_link_tail(struct engine_bridge *b, uint32_t k)
{
	struct bslot *s = &b->slots[k];
	s->prev = b->tail;
	s->next = BRIDGE_NIL;
	if (b->tail != BRIDGE_NIL)
		b->slots[b->tail].next = k;
	else
		b->head = k;
	b->tail = k;
	b->n_inflight++;
	b->e->st.inflight_count++;
}

/* Ends the exchange of slot k: its message goes, its id is free again. */
static void bridge_slot_free(struct engine_bridge *b, uint32_t k)
{
	struct bslot *s = &b->slots[k];
	if (b->cursor == k)
		b->cursor = s->next;
	if (s->prev != BRIDGE_NIL)
		b->slots[s->prev].next = s->next;
	else
		b->head = s->next;
	if (s->next != BRIDGE_NIL)
		b->slots[s->next].prev = s->prev;
	else
		b->tail = s->prev;
	emsg_unref(s->m);
	memset(s, 0, sizeof *s);
	b->free_ids[b->n_free++] = (uint16_t)(k + 1);
	b->n_inflight--;
	b->e->st.inflight_count--;
}

void engine_bridge_up(struct engine_bridge *b, uint16_t window)
{
	b->up = true;
	b->window = window ? window : 1;
	for (uint32_t k = b->head; k != BRIDGE_NIL; k = b->slots[k].next)
		b->slots[k].resend = true;
	b->cursor = b->head;
	(void)bridge_store(b);
}

void engine_bridge_down(struct engine_bridge *b)
{
	b->up = false;
	/* they answered that connection: the remote sends again what it did
	 * not hear acknowledged */
	b->ans_head = b->ans_n = 0;
}

/* ---- acknowledgements towards the remote -------------------------------- */

int engine_bridge_answer(struct engine_bridge *b, uint8_t type, uint16_t packet_id, uint8_t rc)
{
	struct engine *e = b->e;
	/* everything reported so far: the message this answers among it */
	uint64_t ticket = hold_ticket(e, e->store_changes, true);
	uint64_t cticket = b->cticket > e->cluster_sent ? b->cticket : 0;
	if (!ticket && !cticket && !b->ans_n) {
		if (b->answer)
			b->answer(b->answer_ctx, type, packet_id, rc);
		return 0;
	}
	/* bounded by the protocol: an answer per packet id the remote has in
	 * flight towards us (PUBACK or PUBREC, then PUBCOMP) */
	if (b->ans_n == b->ans_cap &&
	    ring_regrow(&b->answers, sizeof *b->answers, &b->ans_cap, &b->ans_head, b->ans_n,
			b->ans_cap ? b->ans_cap * 2 : 16) < 0)
		return -1;
	struct banswer *a = &b->answers[(b->ans_head + b->ans_n) % b->ans_cap];
	a->ticket = ticket;
	a->cticket = cticket;
	a->pid = packet_id;
	a->type = type;
	a->rc = rc;
	b->ans_n++;
	return 0;
}

void bridge_release_answers(struct engine *e)
{
	for (struct engine_bridge *b = e->bridges; b; b = b->next)
		while (b->ans_n && b->answers[b->ans_head].ticket <= e->durable &&
		       b->answers[b->ans_head].cticket <= e->cluster_sent) {
			struct banswer a = b->answers[b->ans_head];
			b->ans_head = (b->ans_head + 1) % b->ans_cap;
			b->ans_n--;
			if (b->answer)
				b->answer(b->answer_ctx, a.type, a.pid, a.rc);
		}
}

uint32_t engine_bridge_pending(const struct engine_bridge *b)
{
	return b->queue_len + b->n_inflight;
}

/* Fills out for message m. */
static void bridge_out_message(struct engine_bridge *b, struct emsg *m, uint8_t qos, bool retain,
			       uint16_t pid, bool dup, struct engine_bridge_out *out)
{
	memset(out, 0, sizeof *out);
	out->type = CODEC_PUBLISH;
	out->qos = qos;
	out->retain = retain;
	out->dup = dup;
	out->packet_id = pid;
	out->topic = m->topic;
	out->topic_len = m->topic_len;
	out->payload = m->payload->data;
	out->payload_len = m->payload->len;
	if (m->props)
		out->props = *m->props;
	if (emsg_has_expiry(m)) {
		out->props.present |= CODEC_PROP_BIT(CODEC_PROP_MESSAGE_EXPIRY);
		out->props.message_expiry = emsg_remaining_expiry(b->e, m);
	}
	emsg_unref(b->last);
	b->last = emsg_ref(m);
}

/* The next slot to send again after a reconnect. Returns 1 with *out. */
static int bridge_next_resend(struct engine_bridge *b, struct engine_bridge_out *out)
{
	while (b->cursor != BRIDGE_NIL) {
		uint32_t k = b->cursor;
		struct bslot *s = &b->slots[k];
		b->cursor = s->next;
		if (!s->resend)
			continue;
		s->resend = false;
		if (s->state == SLOT_PUBCOMP) { /* [MQTT-4.4.0-1]: PUBREL again */
			memset(out, 0, sizeof *out);
			out->type = CODEC_PUBREL;
			out->packet_id = (uint16_t)(k + 1);
			return 1;
		}
		bridge_out_message(b, s->m, s->qos, s->retain, (uint16_t)(k + 1), true, out);
		return 1;
	}
	return 0;
}

int engine_bridge_next(struct engine_bridge *b, uint64_t now_ms, struct engine_bridge_out *out)
{
	struct engine *e = b->e;
	if (!b->up)
		return 0;
	e->now = now_ms;
	if (bridge_next_resend(b, out))
		return 1;
	while (b->queue_len) {
		struct bqueued *q = &b->queue[b->queue_head];
		if (q->qos > 0) {
			if (b->n_inflight >= b->window)
				return 0;
			if (!b->n_free && bridge_slots_grow(b, b->n_slots + 64) < 0)
				return 0;
			if (!b->n_free) /* 65535 in flight */
				return 0;
		}
		struct bqueued d;
		bridge_dequeue(b, &d);
		if (emsg_has_expiry(d.m) && d.m->expiry.at <= e->now) { /* [MQTT-3.3.2-5] */
			event_message(e, MIDGE_EV_DROP, &b->client, d.m, NULL, d.qos, 0, false,
				      MIDGE_DROP_EXPIRED, "message expired while queued for a bridge");
			e->st.msgs_dropped++;
			emsg_unref(d.m);
			continue;
		}
		uint16_t pid = 0;
		if (d.qos > 0) {
			pid = b->free_ids[--b->n_free];
			struct bslot *s = &b->slots[pid - 1];
			s->m = d.m; /* ownership: the slot holds the queue's reference */
			s->qos = d.qos;
			s->retain = d.retain;
			s->state = d.qos == 1 ? SLOT_PUBACK : SLOT_PUBREC;
			s->resend = false;
			bridge_link_tail(b, pid - 1u);
			if (b->store) {
				struct engine_store_msg v;
				struct engine_store_delivery dv;
				store_msg_view(d.m, &v);
				bridge_delivery_view(d.qos, d.retain, &dv);
				STORE_CALL(e, flight_sent, b->store, pid, &v, &dv);
			}
			bridge_out_message(b, d.m, d.qos, d.retain, pid, false, out);
		} else {
			bridge_out_message(b, d.m, 0, d.retain, 0, false, out);
			emsg_unref(d.m); /* b->last holds it for the views */
		}
		return 1;
	}
	return 0;
}

int engine_bridge_ack(struct engine_bridge *b, uint8_t type, uint16_t pid, uint8_t rc)
{
	struct engine *e = b->e;
	struct bslot *s = pid && pid <= b->n_slots ? &b->slots[pid - 1] : NULL;
	if (s && !s->state)
		s = NULL;
	switch (type) {
	case CODEC_PUBACK:
		if (s && s->state == SLOT_PUBACK) {
			if (b->store)
				STORE_CALL(e, flight_done, b->store, pid, s->m->id);
			bridge_slot_free(b, pid - 1u);
		}
		return 0;
	case CODEC_PUBREC:
		if (!s)
			return 1; /* [MQTT-4.3.3-4]: the remote's exchange needs its PUBREL */
		if (s->state == SLOT_PUBREC) {
			if (rc >= 0x80) { /* refused: the exchange ends */
				if (b->store)
					STORE_CALL(e, flight_done, b->store, pid, s->m->id);
				bridge_slot_free(b, pid - 1u);
				return 0;
			}
			if (b->store)
				STORE_CALL(e, flight_released, b->store, pid, s->m->id);
			emsg_unref(s->m);
			s->m = NULL;
			s->state = SLOT_PUBCOMP;
			return 1;
		}
		return s->state == SLOT_PUBCOMP ? 1 : 0;
	case CODEC_PUBCOMP:
		if (s && s->state == SLOT_PUBCOMP) {
			if (b->store)
				STORE_CALL(e, flight_done, b->store, pid, 0);
			bridge_slot_free(b, pid - 1u);
		}
		return 0;
	}
	return 0;
}

/* ---- messages from the remote ----------------------------------------- */

uint8_t engine_bridge_publish(struct engine_bridge *b, const uint8_t *topic, size_t topic_len,
			      const uint8_t *payload, size_t payload_len, const uint8_t *props,
			      size_t props_len, uint8_t qos, bool retain, uint64_t now_ms)
{
	struct engine *e = b->e;
	e->now = now_ms;
	if (topic_len > UINT16_MAX || !codec_topic_name_valid(topic, topic_len))
		return MQTT_RC_TOPIC_NAME_INVALID;
	if (qos > 2)
		return MQTT_RC_PROTOCOL_ERROR;
	/* the broker's own bounds, as for a client; no ACL: the bridge is the
	 * administrator's (as in Mosquitto) */
	if (e->cfg.message_size_limit && payload_len > e->cfg.message_size_limit)
		return MQTT_RC_QUOTA_EXCEEDED;
	if (limits_topic_too_deep(e, topic, topic_len))
		return MQTT_RC_TOPIC_NAME_INVALID;
	if (e->memory_full)
		return MQTT_RC_QUOTA_EXCEEDED;
	if (qos > e->cfg.max_qos)
		qos = e->cfg.max_qos;
	struct emsg *m = emsg_new(e, topic, topic_len, payload, payload_len, props, props_len, qos,
				  retain && e->cfg.retain_available, b->serial, (const uint8_t *)b->cid,
				  b->client.client_id.len, false);
	if (!m)
		return props_len ? MQTT_RC_MALFORMED : MQTT_RC_IMPLEMENTATION_SPECIFIC;
	publish_accept(e, m, &b->client, 0, false);
	if (e->cluster_ticket) /* its acknowledgement waits for NATS too */
		b->cticket = e->cluster_ticket;
	e->cluster_ticket = 0;
	emsg_unref(m);
	return 0;
}

/* ---- restore --------------------------------------------------------- */

int bridge_restore_session(struct engine *e, const struct engine_store_session *rs, void *handle,
			   const char **why)
{
	struct engine_bridge *b = bridge_find_key(e, rs->client_id.p, rs->client_id.len);
	if (!b) {
		/* no longer configured: a ghost keeps the handle so the store
		 * hears its records go at the end */
		b = bridge_alloc(e, rs->client_id.p, rs->client_id.len, "");
		if (!b) {
			*why = "out of memory";
			return -1;
		}
		b->ghost = true;
	}
	if (b->store_asked) {
		*why = "two bridge queues have the same name";
		return -1;
	}
	b->store = handle;
	b->store_asked = true;
	return 0;
}

struct engine_bridge *bridge_restored(struct engine *e, const struct midge_str *cid,
				      const char **why)
{
	struct engine_bridge *b = bridge_find_key(e, cid->p, cid->len);
	if (!b || !b->store_asked) {
		*why = "a record names a bridge queue that is not stored";
		return NULL;
	}
	return b;
}

int bridge_restore_queued(struct engine *e, struct engine_bridge *b, struct emsg *m,
			  const struct engine_store_delivery *d, const char **why)
{
	(void)e;
	if (d->qos < 1 || d->qos > 2) {
		*why = "a stored bridge delivery has an invalid QoS";
		return -1;
	}
	if (b->ghost)
		return 1; /* the store forgets it */
	return bridge_enqueue(b, m, d->qos, d->retain, false) < 0 ? 1 : 0;
}

int bridge_restore_flight(struct engine *e, struct engine_bridge *b, uint16_t pid, uint8_t state,
			  struct emsg *m, const struct engine_store_delivery *d, const char **why)
{
	(void)e;
	if (!pid || (pid <= b->n_slots && b->slots[pid - 1].state)) {
		*why = "bridge in-flight packet ids are repeated or 0";
		return -1;
	}
	if (bridge_slots_grow(b, pid) < 0) {
		*why = "out of memory";
		return -1;
	}
	bridge_take_id(b, pid);
	struct bslot *s = &b->slots[pid - 1];
	s->m = m ? emsg_ref(m) : NULL;
	s->qos = d->qos;
	s->retain = d->retain;
	s->state = state;
	bridge_link_tail(b, pid - 1u);
	return 0;
}

/* restore_end: ghosts leave the store with everything they held. */
void bridge_restore_end(struct engine *e)
{
	for (struct engine_bridge **pp = &e->bridges; *pp;) {
		struct engine_bridge *b = *pp;
		if (!b->ghost) {
			pp = &b->next;
			continue;
		}
		*pp = b->next;
		if (b->store) {
			STORE_CALL(e, session_removed, b->store);
			for (uint32_t k = b->head; k != BRIDGE_NIL; k = b->slots[k].next)
				if (b->slots[k].m)
					STORE_CALL(e, message_released, b->slots[k].m->id);
		}
		b->store = NULL;
		bridge_free(e, b);
	}
}

void bridge_free(struct engine *e, struct engine_bridge *b)
{
	while (b->queue_len) {
		struct bqueued d;
		b->store = NULL; /* freeing is not forgetting: nothing is reported */
		bridge_dequeue(b, &d);
		emsg_unref(d.m);
	}
	while (b->head != BRIDGE_NIL)
		bridge_slot_free(b, b->head);
	emsg_unref(b->last);
	free(b->answers);
	free(b->queue);
	free(b->slots);
	free(b->free_ids);
	free(b->key);
	(void)e;
	free(b);
}

void bridge_free_all(struct engine *e)
{
	while (e->bridges) {
		struct engine_bridge *b = e->bridges;
		e->bridges = b->next;
		bridge_free(e, b);
	}
}
