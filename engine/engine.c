/*
 * engine.c - MQTT broker semantics, sans I/O (see engine.h).
 *
 * Objects:
 *   struct emsg     one accepted message, immutable and refcounted: topic,
 *                   payload frame, forwardable v5 properties. Every queue,
 *                   inflight slot and the retained store hold references.
 *   struct session  what survives a connection: subscriptions, outgoing
 *                   inflight window, offline queue, incoming QoS 2 ids,
 *                   the pending will. Kept in a hash table by client id.
 *   struct engine_conn  one network connection; attached to at most one
 *                   session once CONNECT is accepted.
 * Deadlines (keepalive, will delay, session expiry) live in one binary heap;
 * keepalive is checked lazily: a packet only stores its arrival time and the
 * heap entry is moved when it fires early.
 */
#include "engine/engine.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "engine/topic.h"

/* Subscription identifiers kept per queued or inflight delivery. */
#define ENGINE_SUBIDS 4
/* QoS 0 heads cached per fan-out: (v5?2:0) | retain. */
#define HEAD_SHAPES 4
#define HEAD_CACHE_MAX 320

#define container_of(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

#define SUB_QOS(o) ((uint8_t)((o)&3u))
#define SUB_NO_LOCAL 0x04u
#define SUB_RAP 0x08u
#define SUB_RH(o) ((uint8_t)(((o) >> 4) & 3u))

#define EXPIRY_NEVER UINT32_MAX
/* The largest packet MQTT can express: advertised only when lower. */
#define ENGINE_PROTOCOL_MAX_PACKET (CODEC_MAX_REMAINING + CODEC_MAX_FIXED_HEADER)

/* Properties a PUBLISH or will carries on to receivers unchanged. */
#define FORWARD_PROPS                                                                            \
	(CODEC_PROP_BIT(CODEC_PROP_PAYLOAD_FORMAT) | CODEC_PROP_BIT(CODEC_PROP_CONTENT_TYPE) |    \
	 CODEC_PROP_BIT(CODEC_PROP_RESPONSE_TOPIC) | CODEC_PROP_BIT(CODEC_PROP_CORRELATION_DATA) | \
	 CODEC_PROP_BIT(CODEC_PROP_USER_PROPERTY))

enum tkind {
	T_KEEPALIVE = 1,
	T_WILL = 2,
	T_EXPIRY = 3,
};

struct timer_node {
	uint64_t at;
	uint32_t idx; /* position in the heap + 1; 0 when not scheduled */
	uint8_t kind;
};

struct emsg {
	uint32_t refs;
	uint8_t qos;
	bool retain;
	bool has_expiry;
	uint16_t topic_len;
	uint32_t props_len;
	uint32_t origin_len;
	uint64_t expire_at; /* ms, when has_expiry */
	uint64_t origin;    /* serial of the publishing session; 0 for the broker */
	struct frame *payload;
	struct codec_props props; /* forwardable ones; views into data */
	uint8_t *topic;
	uint8_t *raw_props;
	char *origin_id;
	uint8_t data[];
};

/* A pending will: allocated only for sessions that have one. */
struct will {
	struct timer_node t; /* T_WILL: the will delay */
	struct emsg *m;
	struct session *s;
	uint32_t delay;
};

struct sub {
	struct sub *next;
	uint8_t options;
	uint32_t sub_id;
	uint16_t len;
	uint8_t filter[];
};

enum slot_state {
	SLOT_PUBACK = 1,  /* QoS 1 sent, waiting for PUBACK */
	SLOT_PUBREC = 2,  /* QoS 2 sent, waiting for PUBREC */
	SLOT_PUBCOMP = 3, /* PUBREL sent, waiting for PUBCOMP */
};

struct delivery {
	struct emsg *m;
	uint8_t qos;
	bool retain;
	uint8_t n_sub_ids;
	uint32_t sub_ids[ENGINE_SUBIDS];
};

struct slot {
	struct delivery d; /* d.m is NULL once PUBREL was sent */
	uint16_t pid;
	uint8_t state;
};

/* Ordered by size so that an idle session wastes no padding (one per
 * client id: thousands of idle ones are the common case). */
struct session {
	struct session *hash_next;
	uint64_t serial;
	struct engine_conn *conn;
	struct will *will; /* NULL: no pending will */
	struct sub *subs;
	struct slot *inflight;
	struct delivery *queue; /* ring */
	uint16_t *awaiting_rel;      /* incoming QoS 2 packet ids awaiting PUBREL */
	uint64_t queue_bytes;
	struct timer_node expiry_timer;
	uint32_t cid_len;
	uint32_t hash;
	uint32_t expiry; /* seconds; EXPIRY_NEVER; 0 ends with the connection */
	uint32_t nsubs;
	uint32_t queue_cap, queue_head, queue_len;
	uint16_t n_inflight, cap_inflight; /* at most 65535 packet ids in flight either way */
	uint16_t n_awaiting_rel, cap_awaiting_rel;
	uint32_t route_gen; /* route generation of the hit below */
	uint32_t route_hit; /* index in engine.hits for this generation */
	uint16_t next_pid;
	uint8_t version;
	char cid[]; /* cid_len bytes and a NUL, in the same allocation */
};

struct alias {
	uint8_t *p;
	uint16_t len;
	uint16_t cap;
};

/* A topic alias midge set towards a client. */
struct out_alias {
	uint32_t hash;
	uint16_t len;
	uint8_t *topic;
};

/* Outgoing aliases used per connection at most: lookups are linear. */
#define OUT_ALIAS_CAP 32

/* A connection's topic aliases (MQTT 5 only, and rare): out of line, so
 * the connection record of every other client is a pointer smaller. */
struct conn_aliases {
	struct alias *in;       /* alias_max entries once the client uses one */
	struct out_alias *out;  /* OUT_ALIAS_CAP entries when the client accepts aliases */
};

enum conn_state {
	CONN_NEW = 0,
	CONN_UP = 1,
	CONN_CLOSING = 2,
};

#define PEER_TEXT_MAX 46 /* INET6_ADDRSTRLEN */

/* Ordered by size so that an idle connection wastes no padding. */
struct engine_conn {
	struct engine *e;
	struct engine_conn *prev, *next;
	void *handle;
	struct session *s;
	const char *close_why;
	struct conn_aliases *aliases; /* NULL until a topic alias is used either way */
	uint64_t last_packet_ms;
	struct timer_node keepalive_timer;
	struct midge_client info;
	uint32_t client_max_packet; /* the client's maximum packet size, 0 = none */
	uint16_t keepalive;
	uint16_t client_receive_max;   /* the client's receive maximum: our outgoing window */
	uint16_t in_alias_max;  /* aliases we accept */
	uint16_t receive_max;     /* our receive maximum, as advertised */
	uint16_t out_alias_max; /* aliases we use towards the client (its maximum, capped) */
	uint16_t out_alias_used;   /* aliases assigned so far, 1..out_alias_n */
	uint8_t state;
	uint8_t version;
	uint8_t close_rc;
	bool counted_connected;   /* counted in clients_connected */
	bool problem_info;       /* v5 request problem information */
	bool normal_disconnect;    /* normal DISCONNECT: no will */
	bool close_cause_set;     /* d_rc / d_why hold the disconnect cause */
	bool close_by_client;
	bool expiry_zero;    /* CONNECT had session expiry 0 [MQTT-3.14.2-2] */
	bool cid_own;        /* info.client_id is our own copy (the session is gone), not s->cid */
	char peer[];         /* NUL-terminated, sized to the text: "127.0.0.1" takes 10 bytes, not 46 */
};

struct hit {
	struct session *s;
	uint8_t qos;
	bool retain_as_published;
	bool shared;
	uint8_t n_sub_ids;
	uint32_t sub_ids[ENGINE_SUBIDS];
};

struct head_cache {
	const struct emsg *m;
	bool valid[HEAD_SHAPES];
	uint16_t len[HEAD_SHAPES];
	uint32_t total[HEAD_SHAPES];
	uint8_t buf[HEAD_SHAPES][HEAD_CACHE_MAX];
};

struct engine {
	struct engine_config cfg;
	struct engine_io io;
	struct engine_auth auth;
	bool has_auth;
	uint64_t now;
	struct topic_tree *tree;
	struct retain_store *retained;
	struct session **session_table;
	uint32_t table_size, table_count;
	struct engine_conn *conns;
	struct timer_node **heap;
	uint32_t nheap, cap_heap;
	uint64_t serial;
	uint64_t ids_assigned;
	uint32_t route_gen;
	struct hit *hits;
	uint32_t nhits, cap_hits;
	struct emsg **retained_matches; /* retained matches of one SUBSCRIBE entry */
	uint32_t n_retained_matches, cap_retained_matches;
	uint8_t *scratch;
	size_t cap_scratch;
	const struct emsg *fanout; /* the message being routed; its heads may be cached */
	struct head_cache head_cache;
	struct engine_stats st;
};

static void session_drain(struct engine *e, struct session *s);
static void session_destroy(struct engine *e, struct session *s);
static void will_publish(struct engine *e, struct session *s);
static uint32_t route(struct engine *e, struct emsg *m);

/* ---- deadlines: a binary min-heap of struct timer_node ---- */

static void heap_swap(struct engine *e, uint32_t a, uint32_t b)
{
	struct timer_node *t = e->heap[a];
	e->heap[a] = e->heap[b];
	e->heap[b] = t;
	e->heap[a]->idx = a + 1;
	e->heap[b]->idx = b + 1;
}

static void heap_up(struct engine *e, uint32_t i)
{
	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (e->heap[p]->at <= e->heap[i]->at)
			break;
		heap_swap(e, p, i);
		i = p;
	}
}

static void heap_down(struct engine *e, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < e->nheap && e->heap[l]->at < e->heap[m]->at)
			m = l;
		if (r < e->nheap && e->heap[r]->at < e->heap[m]->at)
			m = r;
		if (m == i)
			break;
		heap_swap(e, i, m);
		i = m;
	}
}

static void timer_cancel(struct engine *e, struct timer_node *t)
{
	if (!t->idx)
		return;
	uint32_t i = t->idx - 1;
	t->idx = 0;
	e->nheap--;
	if (i == e->nheap)
		return;
	e->heap[i] = e->heap[e->nheap];
	e->heap[i]->idx = i + 1;
	heap_down(e, i);
	heap_up(e, i);
}

/* Schedules (or moves) t at `at`. Returns 0 or -1 on OOM (t unscheduled). */
static int timer_set(struct engine *e, struct timer_node *t, uint64_t at)
{
	if (t->idx) {
		uint32_t i = t->idx - 1;
		t->at = at;
		heap_down(e, i);
		heap_up(e, t->idx - 1);
		return 0;
	}
	if (e->nheap == e->cap_heap) {
		uint32_t cap = e->cap_heap ? e->cap_heap * 2 : 64;
		struct timer_node **h = realloc(e->heap, cap * sizeof *h);
		if (!h)
			return -1;
		e->heap = h;
		e->cap_heap = cap;
	}
	t->at = at;
	e->heap[e->nheap] = t;
	t->idx = ++e->nheap;
	heap_up(e, e->nheap - 1);
	return 0;
}

/* ---- client-id table ---- */

static uint32_t hash_bytes(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

static struct session *session_find(struct engine *e, const uint8_t *cid, size_t len)
{
	if (!e->table_size)
		return NULL;
	uint32_t h = hash_bytes(cid, len);
	for (struct session *s = e->session_table[h & (e->table_size - 1)]; s; s = s->hash_next)
		if (s->hash == h && s->cid_len == len && memcmp(s->cid, cid, len) == 0)
			return s;
	return NULL;
}

static int session_table_add(struct engine *e, struct session *s)
{
	if (e->table_count >= e->table_size) {
		uint32_t n = e->table_size ? e->table_size * 2 : 64;
		struct session **t = calloc(n, sizeof *t);
		if (!t)
			return -1;
		for (uint32_t i = 0; i < e->table_size; i++) {
			struct session *x = e->session_table[i], *nx;
			for (; x; x = nx) {
				nx = x->hash_next;
				x->hash_next = t[x->hash & (n - 1)];
				t[x->hash & (n - 1)] = x;
			}
		}
		free(e->session_table);
		e->session_table = t;
		e->table_size = n;
	}
	struct session **b = &e->session_table[s->hash & (e->table_size - 1)];
	s->hash_next = *b;
	*b = s;
	e->table_count++;
	return 0;
}

static void session_table_del(struct engine *e, struct session *s)
{
	struct session **p = &e->session_table[s->hash & (e->table_size - 1)];
	for (; *p; p = &(*p)->hash_next) {
		if (*p == s) {
			*p = s->hash_next;
			e->table_count--;
			return;
		}
	}
}

/* ---- messages ---- */

/*
 * A message record lives in the data of a struct frame, so it comes from
 * the frame size-class cache like its payload: a warm broker makes no
 * malloc per received PUBLISH. Frame data is 8-byte aligned, enough for
 * struct emsg.
 */
static struct emsg *emsg_alloc(size_t n)
{
	struct frame *f = frame_new((uint32_t)n);
	return f ? (struct emsg *)(void *)f->data : NULL;
}

static void emsg_release(struct emsg *m)
{
	frame_unref((struct frame *)(void *)((uint8_t *)m - offsetof(struct frame, data)));
}

static void emsg_unref(struct emsg *m)
{
	if (!m || --m->refs > 0)
		return;
	frame_unref(m->payload);
	emsg_release(m);
}

static void emsg_unref_cb(void *m)
{
	emsg_unref(m);
}

static struct emsg *emsg_ref(struct emsg *m)
{
	m->refs++;
	return m;
}

static size_t emsg_size(const struct emsg *m)
{
	return (size_t)m->topic_len + m->payload->len + m->props_len;
}

/*
 * A new message with one reference: copies topic, payload and the raw v5
 * property block (decoded again from the copy so the views point into it;
 * will properties when `will`). Only forwardable properties stay marked
 * present; message expiry becomes an absolute deadline. NULL on OOM or a
 * property block that does not decode.
 */
static struct emsg *emsg_new(struct engine *e, const uint8_t *topic, size_t tlen,
			     const uint8_t *payload, size_t plen, const uint8_t *props,
			     size_t props_len, uint8_t qos, bool retain, uint64_t origin,
			     const uint8_t *origin_id, size_t olen, bool will)
{
	struct emsg *m = emsg_alloc(sizeof *m + tlen + props_len + olen + 1);
	if (!m)
		return NULL;
	memset(m, 0, sizeof *m);
	m->payload = frame_new((uint32_t)plen);
	if (!m->payload) {
		emsg_release(m);
		return NULL;
	}
	if (plen)
		memcpy(m->payload->data, payload, plen);
	m->refs = 1;
	m->qos = qos;
	m->retain = retain;
	m->topic = m->data;
	m->topic_len = (uint16_t)tlen;
	memcpy(m->topic, topic, tlen);
	m->raw_props = m->data + tlen;
	m->props_len = (uint32_t)props_len;
	if (props_len)
		memcpy(m->raw_props, props, props_len);
	m->origin_id = (char *)m->raw_props + props_len;
	m->origin_len = (uint32_t)olen;
	if (olen)
		memcpy(m->origin_id, origin_id, olen);
	m->origin_id[olen] = '\0';
	m->origin = origin;
	if (props_len) {
		int rc = will ? codec_props_decode_will(m->raw_props, m->props_len, &m->props)
			      : codec_props_decode(m->raw_props, m->props_len, CODEC_PUBLISH, &m->props);
		if (rc < 0) {
			emsg_unref(m);
			return NULL;
		}
		if (CODEC_HAS_PROP(&m->props, CODEC_PROP_MESSAGE_EXPIRY)) {
			m->has_expiry = true;
			m->expire_at = e->now + (uint64_t)m->props.message_expiry * 1000;
		}
		m->props.present &= FORWARD_PROPS;
		m->props.sub_id_count = 0;
	}
	return m;
}

static void emsg_view(const struct emsg *m, struct midge_message *v, uint16_t pid, bool dup)
{
	memset(v, 0, sizeof *v);
	v->topic.p = (const char *)m->topic;
	v->topic.len = m->topic_len;
	v->payload = m->payload->data;
	v->payload_len = m->payload->len;
	v->qos = m->qos;
	v->retain = m->retain;
	v->dup = dup;
	v->packet_id = pid;
	v->props = m->raw_props;
	v->props_len = m->props_len;
	v->origin.p = m->origin_id;
	v->origin.len = m->origin_len;
}

/* ---- events ---- */

static void event_init(struct engine *e, struct midge_event *ev, enum midge_event_type type,
		       const struct midge_client *client)
{
	memset(ev, 0, sizeof *ev);
	ev->type = type;
	ev->time_ms = e->now;
	ev->client = client;
}

static void emit(struct engine *e, struct midge_event *ev)
{
	if (e->io.event)
		e->io.event(e->io.ctx, ev);
}

/* Who a session is, for events about a session that may be offline. */
static void session_client(const struct session *s, struct midge_client *out)
{
	memset(out, 0, sizeof *out);
	if (s->conn) {
		*out = s->conn->info;
		return;
	}
	out->client_id.p = s->cid;
	out->client_id.len = s->cid_len;
	out->protocol = s->version;
}

static void emit_message(struct engine *e, enum midge_event_type type, const struct midge_client *cl,
			 const struct emsg *m, const struct session *to, uint8_t qos, uint16_t pid,
			 bool dup, enum midge_drop_reason drop, const char *why)
{
	if (!e->io.event)
		return;
	struct midge_event ev;
	struct midge_message v;
	event_init(e, &ev, type, cl);
	emsg_view(m, &v, pid, dup);
	ev.u.message.msg = &v;
	if (to) {
		ev.u.message.to.p = to->cid;
		ev.u.message.to.len = to->cid_len;
	}
	ev.u.message.qos = qos;
	ev.u.message.packet_id = pid;
	ev.u.message.drop = drop;
	ev.u.message.why = why;
	emit(e, &ev);
}

static void emit_drop(struct engine *e, const struct session *s, const struct emsg *m, uint8_t qos,
		      enum midge_drop_reason drop, const char *why)
{
	struct midge_client cl;
	e->st.msgs_dropped++;
	if (!e->io.event)
		return;
	if (s)
		session_client(s, &cl);
	emit_message(e, MIDGE_EV_DROP, s ? &cl : NULL, m, s, qos, 0, false, drop, why);
}

static void emit_session(struct engine *e, enum midge_event_type type, const struct session *s,
			 const struct midge_client *cl, const char *why)
{
	struct midge_event ev;
	struct midge_client tmp;
	if (!e->io.event)
		return;
	if (!cl) {
		session_client(s, &tmp);
		cl = &tmp;
	}
	event_init(e, &ev, type, cl);
	ev.u.session.expiry = s->expiry;
	ev.u.session.queued = s->queue_len + s->n_inflight;
	ev.u.session.why = why;
	emit(e, &ev);
}

static char *dup_bytes(const void *p, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, p, n);
		d[n] = '\0';
	}
	return d;
}

/* ---- output ---- */

static int scratch_reserve(struct engine *e, size_t n)
{
	if (n <= e->cap_scratch)
		return 0;
	size_t cap = e->cap_scratch ? e->cap_scratch : 1024;
	while (cap < n)
		cap *= 2;
	uint8_t *b = realloc(e->scratch, cap);
	if (!b)
		return -1;
	e->scratch = b;
	e->cap_scratch = cap;
	return 0;
}

static int conn_write(struct engine *e, struct engine_conn *c, const uint8_t *b, size_t n,
		      struct frame *tail, bool droppable)
{
	int rc = e->io.send(e->io.ctx, c->handle, b, n, tail, droppable);
	if (rc == 0)
		e->st.bytes_sent += n + (tail ? tail->len : 0);
	return rc;
}

/*
 * Adds a reason string to a v5 packet's properties when the client may
 * receive one: always on CONNACK and DISCONNECT, on other packets only when
 * it did not set Request Problem Information to 0 [MQTT-3.1.2-29].
 */
static void props_reason(const struct engine_conn *c, struct codec_props *p, uint8_t type,
			 const char *why)
{
	if (!why || c->version != CODEC_V5)
		return;
	if (!c->problem_info && type != CODEC_CONNACK && type != CODEC_DISCONNECT)
		return;
	p->present |= CODEC_PROP_BIT(CODEC_PROP_REASON_STRING);
	p->reason_string.p = (const uint8_t *)why;
	p->reason_string.len = (uint32_t)strlen(why);
}

/*
 * Encodes and queues a non-PUBLISH packet. A packet over the client's
 * maximum packet size first loses its reason string [MQTT-3.1.2-25]; if it
 * still does not fit it is not sent. Returns 0 or -1.
 */
static int send_packet(struct engine *e, struct engine_conn *c, struct codec_packet *p,
		       struct codec_props *props)
{
	p->version = c->version ? c->version : CODEC_V311;
	size_t n = codec_encode_size(p);
	if (n && c->client_max_packet && n > c->client_max_packet && props &&
	    CODEC_HAS_PROP(props, CODEC_PROP_REASON_STRING)) {
		props->present &= ~CODEC_PROP_BIT(CODEC_PROP_REASON_STRING);
		n = codec_encode_size(p);
	}
	if (!n || (c->client_max_packet && n > c->client_max_packet) || scratch_reserve(e, n) < 0)
		return -1;
	if (codec_encode(p, e->scratch, e->cap_scratch) != n)
		return -1;
	return conn_write(e, c, e->scratch, n, NULL, false);
}

static void send_ack(struct engine *e, struct engine_conn *c, uint8_t type, uint16_t pid, uint8_t rc,
		     const char *why)
{
	struct codec_packet p;
	memset(&p, 0, sizeof p);
	p.type = type;
	p.u.ack.packet_id = pid;
	p.u.ack.rc = c->version == CODEC_V5 ? rc : 0;
	props_reason(c, &p.u.ack.props, type, why);
	send_packet(e, c, &p, &p.u.ack.props);
}

static void send_disconnect(struct engine *e, struct engine_conn *c, uint8_t rc, const char *why)
{
	if (c->version != CODEC_V5)
		return;
	struct codec_packet p;
	memset(&p, 0, sizeof p);
	p.type = CODEC_DISCONNECT;
	p.u.disconnect.rc = rc;
	props_reason(c, &p.u.disconnect.props, CODEC_DISCONNECT, why);
	send_packet(e, c, &p, &p.u.disconnect.props);
}

/* Asks the transport to close c (once); records the cause for the
 * disconnect event unless one is recorded already. */
static void conn_request_close(struct engine *e, struct engine_conn *c, uint8_t rc, bool by_client,
		       const char *why)
{
	if (!c->close_cause_set) {
		c->close_cause_set = true;
		c->close_rc = rc;
		c->close_by_client = by_client;
		c->close_why = why;
	}
	if (c->state == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	timer_cancel(e, &c->keepalive_timer);
	e->io.close(e->io.ctx, c->handle);
}

/*
 * A protocol violation or a refusal after CONNECT: event, v5 DISCONNECT
 * with the reason code, close. Returns -1 for engine_conn_frame().
 */
static int conn_fail(struct engine *e, struct engine_conn *c, uint8_t rc, const char *why)
{
	if (c->state == CONN_CLOSING)
		return -1;
	struct midge_event ev;
	event_init(e, &ev, MIDGE_EV_PROTOCOL_ERROR, &c->info);
	ev.u.disconnect.rc = rc;
	ev.u.disconnect.will = c->s && c->s->will;
	ev.u.disconnect.why = why;
	emit(e, &ev);
	send_disconnect(e, c, rc, why);
	conn_request_close(e, c, rc, false, why);
	return -1;
}

static uint32_t remaining_expiry(const struct engine *e, const struct emsg *m)
{
	if (m->expire_at <= e->now)
		return 1;
	return (uint32_t)((m->expire_at - e->now + 999) / 1000);
}

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
static int send_publish(struct engine *e, struct engine_conn *c, const struct emsg *m,
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
			thash = hash_bytes(m->topic, m->topic_len);
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
				pub->props.message_expiry = remaining_expiry(e, m);
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
		if (scratch_reserve(e, total - m->payload->len) < 0)
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
		oa->topic = (uint8_t *)dup_bytes(m->topic, m->topic_len);
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
		emit_message(e, MIDGE_EV_DELIVER, &c->info, m, c->s, d->qos, pid, dup, 0, NULL);
	return SENT;
}

/* ---- per-session delivery: inflight window and queue ---- */

static bool conn_up(const struct engine_conn *c)
{
	return c && c->state == CONN_UP;
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

static struct slot *slot_find(struct session *s, uint16_t pid)
{
	for (uint32_t i = 0; i < s->n_inflight; i++)
		if (s->inflight[i].pid == pid)
			return &s->inflight[i];
	return NULL;
}

static void slot_remove(struct engine *e, struct session *s, struct slot *sl)
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
 * Makes room for element n of an array counted in 16 bits (packet ids
 * bound both session arrays to 65535): doubles *cap from 8, up to 65535.
 * Returns 0, or -1 when n is already 65535 or on OOM.
 */
static int grow16(void **arr, uint16_t *cap, uint16_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	if (n == UINT16_MAX)
		return -1;
	uint32_t ncap = *cap ? (*cap >= 32768 ? UINT16_MAX : *cap * 2u) : 8;
	void *p = realloc(*arr, ncap * elem);
	if (!p)
		return -1;
	*arr = p;
	*cap = (uint16_t)ncap;
	return 0;
}

/*
 * Sends d as a QoS 1/2 PUBLISH in a new inflight slot. Takes d->m's
 * reference. Returns 0, or -1 when it was not sent (too large for the
 * client: dropped and reported; or OOM).
 */
static int session_send_inflight(struct engine *e, struct session *s, struct delivery *d)
{
	if (grow16((void **)&s->inflight, &s->cap_inflight, s->n_inflight, sizeof *s->inflight) < 0) {
		emit_drop(e, s, d->m, d->qos, MIDGE_DROP_QUEUE_FULL, "out of memory");
		emsg_unref(d->m);
		return -1;
	}
	uint16_t before = s->next_pid;
	uint16_t pid = session_next_pid(s);
	int rc = send_publish(e, s->conn, d->m, d, pid, false);
	if (rc == SEND_TOO_LARGE) {
		s->next_pid = before; /* the id was never used on the wire */
		emit_drop(e, s, d->m, d->qos, MIDGE_DROP_TOO_LARGE,
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
static void session_enqueue(struct engine *e, struct session *s, struct delivery *d)
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
		emit_drop(e, s, d->m, d->qos, MIDGE_DROP_QUEUE_FULL,
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

static void session_dequeue(struct engine *e, struct session *s, struct delivery *out)
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
static void session_deliver(struct engine *e, struct session *s, struct emsg *m,
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
	if (conn_up(c)) {
		if (d->qos == 0) {
			int rc = send_publish(e, c, m, d, 0, false);
			if (rc == SEND_TOO_LARGE)
				emit_drop(e, s, m, 0, MIDGE_DROP_TOO_LARGE,
					  "larger than the client's maximum packet size");
			else if (rc == SEND_REFUSED)
				emit_drop(e, s, m, 0, MIDGE_DROP_SLOW_CONSUMER,
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
static void session_drain(struct engine *e, struct session *s)
{
	while (s->queue_len && conn_up(s->conn)) {
		struct delivery *head = &s->queue[s->queue_head];
		if (head->qos > 0 && s->n_inflight >= session_window(e, s))
			return;
		struct delivery d;
		session_dequeue(e, s, &d);
		if (d.m->has_expiry && d.m->expire_at <= e->now) {
			emit_drop(e, s, d.m, d.qos, MIDGE_DROP_EXPIRED, "message expired while queued");
			emsg_unref(d.m);
			continue;
		}
		if (d.qos == 0) {
			int rc = send_publish(e, s->conn, d.m, &d, 0, false);
			if (rc == SEND_TOO_LARGE)
				emit_drop(e, s, d.m, 0, MIDGE_DROP_TOO_LARGE,
					  "larger than the client's maximum packet size");
			else if (rc == SEND_REFUSED)
				emit_drop(e, s, d.m, 0, MIDGE_DROP_SLOW_CONSUMER,
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
static void session_resend(struct engine *e, struct session *s)
{
	struct engine_conn *c = s->conn;
	uint32_t i = 0;
	while (i < s->n_inflight && conn_up(c)) {
		struct slot *sl = &s->inflight[i];
		if (sl->state == SLOT_PUBCOMP) {
			send_ack(e, c, CODEC_PUBREL, sl->pid, 0, NULL);
			i++;
			continue;
		}
		int rc = send_publish(e, c, sl->d.m, &sl->d, sl->pid, true);
		if (rc == SEND_TOO_LARGE) {
			emit_drop(e, s, sl->d.m, sl->d.qos, MIDGE_DROP_TOO_LARGE,
				  "larger than the client's maximum packet size");
			slot_remove(e, s, sl);
			continue;
		}
		i++;
	}
	session_drain(e, s);
}

/* ---- routing ---- */

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
};

static bool acl_allows(struct engine *e, const struct midge_client *cl, const uint8_t *topic,
		       size_t len, enum engine_access access)
{
	if (!e->has_auth || !e->auth.acl)
		return true;
	return e->auth.acl(e->auth.ctx, cl, topic, len, access) == 0;
}

/*
 * topic_tree_match callback: records one matching subscription. Several
 * subscriptions of one session merge into one hit, found through the
 * session's generation stamp: the highest QoS and every subscription
 * identifier [MQTT-3.3.4-2] [MQTT-3.3.4-3]. A shared group takes the first
 * connected member offered.
 */
static bool route_match(void *ctx, void *subscriber, uint8_t options, uint32_t sub_id, bool shared)
{
	struct route_ctx *r = ctx;
	struct engine *e = r->e;
	struct session *s = subscriber;
	struct hit *h;
	if (shared) {
		if (!conn_up(s->conn))
			return false;
		if (hits_push(e, &h) < 0)
			return true;
		h->s = s;
		h->qos = SUB_QOS(options);
		h->retain_as_published = (options & SUB_RAP) != 0;
		h->shared = true;
		h->n_sub_ids = sub_id ? 1 : 0;
		h->sub_ids[0] = sub_id;
		return true;
	}
	if ((options & SUB_NO_LOCAL) && r->m->origin == s->serial) /* [MQTT-3.8.3-3] */
		return false;
	/* A delivery carries at most ENGINE_SUBIDS identifiers; the rest go in
	 * a further copy, which the specification allows, each copy carrying
	 * the identifiers of the subscriptions it stands for [MQTT-3.3.4-4]. */
	if (s->route_gen == e->route_gen && s->route_hit < e->nhits && e->hits[s->route_hit].s == s &&
	    !e->hits[s->route_hit].shared &&
	    !(sub_id && e->hits[s->route_hit].n_sub_ids == ENGINE_SUBIDS)) {
		h = &e->hits[s->route_hit];
		if (SUB_QOS(options) > h->qos)
			h->qos = SUB_QOS(options);
		if (options & SUB_RAP)
			h->retain_as_published = true;
	} else {
		if (hits_push(e, &h) < 0)
			return false;
		s->route_gen = e->route_gen;
		s->route_hit = (uint32_t)(h - e->hits);
		h->s = s;
		h->qos = SUB_QOS(options);
		h->retain_as_published = (options & SUB_RAP) != 0;
		h->shared = false;
		h->n_sub_ids = 0;
	}
	if (sub_id && h->n_sub_ids < ENGINE_SUBIDS)
		h->sub_ids[h->n_sub_ids++] = sub_id;
	return false;
}

/*
 * Delivers m to every matching subscription. Collects first (no callback
 * runs while the tree is walked), then delivers, so an event callback that
 * publishes again (engine_publish) nests safely: it works above this
 * call's slice of the hit stack. Returns the number of receivers.
 */
static uint32_t route(struct engine *e, struct emsg *m)
{
	uint32_t base = e->nhits;
	const struct emsg *outer = e->fanout;
	struct route_ctx r = {e, m};
	e->route_gen++;
	topic_tree_match(e->tree, m->topic, m->topic_len, route_match, &r);
	uint32_t end = e->nhits;
	e->fanout = m;
	e->head_cache.m = NULL;
	for (uint32_t i = base; i < end; i++) {
		/* by index: a nested route may move the array */
		const struct hit *h = &e->hits[i];
		struct session *s = h->s;
		struct delivery d;
		d.qos = h->qos;
		/* [MQTT-3.3.1-9] [MQTT-3.3.1-12] [MQTT-3.3.1-13] */
		d.retain = h->retain_as_published ? m->retain : false;
		d.n_sub_ids = s->version == CODEC_V5 ? h->n_sub_ids : 0;
		if (d.n_sub_ids)
			memcpy(d.sub_ids, h->sub_ids, d.n_sub_ids * sizeof d.sub_ids[0]);
		if (e->has_auth && e->auth.acl) {
			struct midge_client cl;
			session_client(s, &cl);
			if (!acl_allows(e, &cl, m->topic, m->topic_len, ENGINE_ACCESS_RECEIVE)) {
				emit_drop(e, s, m, d.qos, MIDGE_DROP_NOT_AUTHORIZED,
					  "receive denied by ACL");
				continue;
			}
		}
		session_deliver(e, s, m, &d);
	}
	e->fanout = outer;
	e->head_cache.m = NULL;
	e->nhits = base;
	return end - base;
}

/*
 * Accepts m from a client or the broker: retained store, event, routing.
 * Takes no reference of its own beyond what it stores.
 */
static uint32_t publish_accept(struct engine *e, struct emsg *m, const struct midge_client *from,
			       uint16_t pid, bool dup)
{
	e->st.msgs_received++;
	e->st.publish_received++;
	if (m->retain && e->cfg.retain_available) {
		if (m->payload->len == 0) {
			/* [MQTT-3.3.1-6] [MQTT-3.3.1-7] */
			if (retain_store_set(e->retained, m->topic, m->topic_len, NULL) > 0)
				emit_message(e, MIDGE_EV_RETAIN_CLEAR, from, m, NULL, m->qos, pid, dup, 0,
					     NULL);
		} else if (retain_store_set(e->retained, m->topic, m->topic_len, emsg_ref(m)) >= 0) {
			/* [MQTT-3.3.1-5] ownership: the store holds the new reference */
			emit_message(e, MIDGE_EV_RETAIN_SET, from, m, NULL, m->qos, pid, dup, 0, NULL);
		} else {
			emsg_unref(m);
		}
		e->st.retained_count = retain_store_count(e->retained);
	}
	emit_message(e, MIDGE_EV_PUBLISH, from, m, NULL, m->qos, pid, dup, 0, NULL);
	uint32_t n = route(e, m);
	if (!n && e->io.event)
		emit_message(e, MIDGE_EV_DROP, from, m, NULL, m->qos, pid, dup,
			     MIDGE_DROP_NO_SUBSCRIBERS, "no matching subscribers");
	return n;
}

/* ---- sessions ---- */

/*
 * A connection's client id views its session's copy (one allocation per
 * client instead of two). When the connection outlives its session
 * (taken over, or the session destroyed under it) it takes its own copy
 * so its closing events still name the client; without memory it is
 * named by the empty string rather than by freed memory.
 */
static void conn_keep_cid(struct engine_conn *c)
{
	if (c->cid_own || !c->s || c->info.client_id.p != c->s->cid)
		return;
	char *cid = dup_bytes(c->s->cid, c->s->cid_len);
	c->info.client_id.p = cid ? cid : "";
	if (cid)
		c->cid_own = true;
	else
		c->info.client_id.len = 0;
}

static struct session *session_new(struct engine *e, const uint8_t *cid, size_t len)
{
	size_t size = offsetof(struct session, cid) + len + 1;
	struct session *s = calloc(1, size > sizeof *s ? size : sizeof *s);
	if (!s)
		return NULL;
	memcpy(s->cid, cid, len);
	s->cid[len] = '\0';
	s->cid_len = (uint32_t)len;
	s->hash = hash_bytes(cid, len);
	s->serial = ++e->serial;
	s->expiry_timer.kind = T_EXPIRY;
	if (session_table_add(e, s) < 0) {
		free(s);
		return NULL;
	}
	e->st.clients_total++;
	return s;
}

/* Frees a will record that is not (or no longer) scheduled. */
static void will_free(struct will *w)
{
	if (!w)
		return;
	emsg_unref(w->m);
	free(w);
}

static void will_clear(struct engine *e, struct session *s)
{
	struct will *w = s->will;
	if (!w)
		return;
	s->will = NULL;
	timer_cancel(e, &w->t);
	will_free(w);
}

/* Publishes the session's pending will now and forgets it. */
static void will_publish(struct engine *e, struct session *s)
{
	struct will *w = s->will;
	if (!w)
		return;
	struct emsg *m = w->m;
	s->will = NULL;
	timer_cancel(e, &w->t);
	free(w);
	struct midge_client cl;
	session_client(s, &cl);
	/* the will's expiry counts from when it is published */
	if (m->has_expiry)
		m->expire_at = e->now + (uint64_t)m->props.message_expiry * 1000;
	emit_message(e, MIDGE_EV_WILL, &cl, m, NULL, m->qos, 0, false, 0, NULL);
	publish_accept(e, m, &cl, 0, false);
	emsg_unref(m);
}

/* Removes every subscription of s from the tree. */
static void session_unsubscribe_all(struct engine *e, struct session *s)
{
	struct sub *x, *nx;
	for (x = s->subs; x; x = nx) {
		nx = x->next;
		topic_tree_unsubscribe(e->tree, x->filter, x->len, s);
		free(x);
	}
	s->subs = NULL;
	s->nsubs = 0;
	e->st.subscriptions_count = topic_tree_count(e->tree);
}

/* Frees s and everything it holds. Does not publish the will (callers
 * decide) and emits nothing. */
static void session_destroy(struct engine *e, struct session *s)
{
	session_unsubscribe_all(e, s);
	timer_cancel(e, &s->expiry_timer);
	will_clear(e, s);
	while (s->n_inflight)
		slot_remove(e, s, &s->inflight[s->n_inflight - 1]);
	while (s->queue_len) {
		struct delivery d;
		session_dequeue(e, s, &d);
		emsg_unref(d.m);
	}
	if (s->conn) {
		conn_keep_cid(s->conn);
		s->conn->s = NULL;
	}
	session_table_del(e, s);
	e->st.clients_total--;
	free(s->inflight);
	free(s->queue);
	free(s->awaiting_rel);
	free(s);
}

/* Session expiry: the will (if still pending) goes out as the session
 * ends [MQTT-3.1.2-8], then the session is gone. */
static void session_expire(struct engine *e, struct session *s)
{
	will_publish(e, s);
	emit_session(e, MIDGE_EV_SESSION_EXPIRED, s, NULL, "session expiry interval elapsed");
	e->st.clients_expired++;
	session_destroy(e, s);
}

/*
 * The connection of s is gone. publish: the end was abnormal, so the will
 * goes out now or after its delay [MQTT-3.1.3-9]; otherwise it is
 * discarded [MQTT-3.1.2-10]. A session with expiry 0 ends here.
 */
static void session_detach(struct engine *e, struct session *s, bool publish)
{
	s->conn = NULL;
	if (!publish)
		will_clear(e, s);
	if (s->expiry == 0) {
		will_publish(e, s);
		session_destroy(e, s);
		return;
	}
	if (s->will) {
		if (s->will->delay == 0 ||
		    timer_set(e, &s->will->t, e->now + (uint64_t)s->will->delay * 1000) < 0)
			will_publish(e, s);
	}
	if (s->expiry != EXPIRY_NEVER &&
	    timer_set(e, &s->expiry_timer, e->now + (uint64_t)s->expiry * 1000) < 0)
		session_expire(e, s);
}

/* ---- CONNECT ---- */

/* The one table from internal (v5) reason codes to 3.1 / 3.1.1 CONNACK
 * return codes; anything else is "server unavailable". */
static const struct {
	uint8_t rc5;
	uint8_t rc3;
} connack_v3_map[] = {
	{MQTT_RC_SUCCESS, MQTT_CONNACK_V3_ACCEPTED},
	{MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION, MQTT_CONNACK_V3_BAD_PROTOCOL},
	{MQTT_RC_CLIENT_ID_NOT_VALID, MQTT_CONNACK_V3_ID_REJECTED},
	{MQTT_RC_BAD_USERNAME_OR_PASSWORD, MQTT_CONNACK_V3_BAD_CREDENTIALS},
	{MQTT_RC_BAD_AUTH_METHOD, MQTT_CONNACK_V3_BAD_CREDENTIALS},
	{MQTT_RC_NOT_AUTHORIZED, MQTT_CONNACK_V3_NOT_AUTHORIZED},
	{MQTT_RC_BANNED, MQTT_CONNACK_V3_NOT_AUTHORIZED},
	{MQTT_RC_QOS_NOT_SUPPORTED, MQTT_CONNACK_V3_NOT_AUTHORIZED},
	{MQTT_RC_RETAIN_NOT_SUPPORTED, MQTT_CONNACK_V3_NOT_AUTHORIZED},
	{MQTT_RC_TOPIC_NAME_INVALID, MQTT_CONNACK_V3_NOT_AUTHORIZED},
	/* as Mosquitto answers a will over message_size_limit */
	{MQTT_RC_PACKET_TOO_LARGE, MQTT_CONNACK_V3_NOT_AUTHORIZED},
};

static uint8_t connack_code(uint8_t version, uint8_t rc5)
{
	if (version == CODEC_V5)
		return rc5;
	for (size_t i = 0; i < sizeof connack_v3_map / sizeof connack_v3_map[0]; i++)
		if (connack_v3_map[i].rc5 == rc5)
			return connack_v3_map[i].rc3;
	return MQTT_CONNACK_V3_SERVER_UNAVAILABLE;
}

static void connect_event_fields(struct midge_event *ev, const struct codec_connect *k)
{
	if (!k)
		return;
	ev->u.connect.clean_start = k->clean_start;
	ev->u.connect.keep_alive = k->keep_alive;
	ev->u.connect.has_will = k->will;
	if (CODEC_HAS_PROP(&k->props, CODEC_PROP_SESSION_EXPIRY))
		ev->u.connect.session_expiry = k->props.session_expiry;
}

/*
 * Refuses a CONNECT: CONNACK with the code in the client's version
 * [MQTT-3.2.2-4] [MQTT-3.2.2-5], event, close. k may be NULL when the
 * CONNECT did not decode. Returns -1.
 */
static int connect_refuse(struct engine *e, struct engine_conn *c, uint8_t version, uint8_t rc5,
			  const struct codec_connect *k, const char *why)
{
	struct codec_packet p;
	struct midge_event ev;
	struct midge_client cl = c->info;
	uint8_t code = connack_code(version, rc5);
	c->version = version;
	memset(&p, 0, sizeof p);
	p.type = CODEC_CONNACK;
	p.u.connack.rc = code;
	props_reason(c, &p.u.connack.props, CODEC_CONNACK, why);
	send_packet(e, c, &p, &p.u.connack.props);
	cl.protocol = version;
	if (k) {
		cl.client_id.p = (const char *)k->client_id.p;
		cl.client_id.len = k->client_id.len;
		if (!c->info.username.p && k->has_username) {
			cl.username.p = (const char *)k->username.p;
			cl.username.len = k->username.len;
		}
	}
	event_init(e, &ev, MIDGE_EV_CONNECT_REFUSED, &cl);
	connect_event_fields(&ev, k);
	ev.u.connect.rc = code;
	ev.u.connect.why = why;
	emit(e, &ev);
	conn_request_close(e, c, rc5, false, why);
	/* the views pointed into the CONNECT being refused */
	memset(&c->info.client_id, 0, sizeof c->info.client_id);
	return -1;
}

static uint32_t topic_levels(const uint8_t *p, size_t n)
{
	uint32_t levels = 1;
	for (size_t i = 0; i < n; i++)
		if (p[i] == '/')
			levels++;
	return levels;
}

static bool too_deep(const struct engine *e, const uint8_t *p, size_t n)
{
	return e->cfg.max_topic_levels && topic_levels(p, n) > e->cfg.max_topic_levels;
}

/* An identifier for a client that sent none [MQTT-3.1.3-6]: not in use. */
static size_t client_id_assign(struct engine *e, char *buf, size_t cap)
{
	for (;;) {
		uint64_t x = (++e->ids_assigned + e->serial) * UINT64_C(0x9E3779B97F4A7C15) ^ e->now;
		x ^= x >> 29;
		int n = snprintf(buf, cap, "midge-%016llx", (unsigned long long)x);
		if (!session_find(e, (const uint8_t *)buf, (size_t)n))
			return (size_t)n;
	}
}

/*
 * Another connection CONNECTs with the client id of s while s is
 * connected: the old connection gets DISCONNECT 0x8E (v5) and is closed
 * [MQTT-3.1.4-3]. Its will goes out when the session ends (old session
 * not persistent, or the new one starts clean); otherwise it is dropped
 * because the session continues [MQTT-3.1.3-9].
 */
static void session_take_over(struct engine *e, struct session *s, bool clean_start)
{
	struct engine_conn *old = s->conn;
	bool normal = old->normal_disconnect;
	emit_session(e, MIDGE_EV_SESSION_TAKEOVER, s, &old->info, "client id connected again");
	if (old->state != CONN_CLOSING) {
		send_disconnect(e, old, MQTT_RC_SESSION_TAKEN_OVER, "session taken over");
		conn_request_close(e, old, MQTT_RC_SESSION_TAKEN_OVER, false, "session taken over");
	}
	conn_keep_cid(old);
	old->s = NULL;
	s->conn = NULL;
	if (!normal && (s->expiry == 0 || clean_start))
		will_publish(e, s);
	else
		will_clear(e, s);
}

static int handle_connect(struct engine *e, struct engine_conn *c, struct codec_packet *p, int rc)
{
	struct codec_connect *k = &p->u.connect;
	if (rc < 0) {
		uint8_t v = p->version == CODEC_V5 ? CODEC_V5 : CODEC_V311;
		if (-rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION) /* [MQTT-3.1.2-2] */
			return connect_refuse(e, c, v, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION, NULL,
					      "unsupported protocol name or level");
		if (v == CODEC_V5)
			return connect_refuse(e, c, v, (uint8_t)-rc, NULL, "malformed CONNECT");
		c->version = v;
		return conn_fail(e, c, (uint8_t)-rc, "malformed CONNECT");
	}
	uint8_t v = k->level;
	const struct engine_config *cfg = &e->cfg;
	c->version = v;
	c->info.protocol = v;
	c->problem_info = true;
	c->client_receive_max = 65535;
	if (v == CODEC_V5) {
		if (CODEC_HAS_PROP(&k->props, CODEC_PROP_REQUEST_PROBLEM_INFO))
			c->problem_info = k->props.request_problem_info != 0;
		if (CODEC_HAS_PROP(&k->props, CODEC_PROP_RECEIVE_MAX))
			c->client_receive_max = k->props.receive_max;
		if (CODEC_HAS_PROP(&k->props, CODEC_PROP_MAX_PACKET_SIZE))
			c->client_max_packet = k->props.max_packet_size;
		if (CODEC_HAS_PROP(&k->props, CODEC_PROP_TOPIC_ALIAS_MAX) && k->props.topic_alias_max) {
			if (!c->aliases)
				c->aliases = calloc(1, sizeof *c->aliases);
			if (c->aliases && !c->aliases->out)
				c->aliases->out = calloc(OUT_ALIAS_CAP, sizeof *c->aliases->out);
			if (c->aliases && c->aliases->out)
				c->out_alias_max = k->props.topic_alias_max < OUT_ALIAS_CAP
							   ? k->props.topic_alias_max
							   : OUT_ALIAS_CAP;
		}
	}
	if (!c->info.username.p && k->has_username) {
		char *u = dup_bytes(k->username.p, k->username.len);
		if (!u)
			return connect_refuse(e, c, v, MQTT_RC_SERVER_UNAVAILABLE, k, "out of memory");
		c->info.username.p = u; /* owned: freed with c */
		c->info.username.len = k->username.len;
	}

	char assigned[40];
	const uint8_t *cid = k->client_id.p;
	size_t cid_len = k->client_id.len;
	bool is_assigned = false;
	if (cid_len == 0) {
		/* [MQTT-3.1.3-7] [MQTT-3.1.3-8] */
		if (!cfg->allow_zero_length_clientid || !(v == CODEC_V5 || (v == CODEC_V311 && k->clean_start)))
			return connect_refuse(e, c, v, MQTT_RC_CLIENT_ID_NOT_VALID, k,
					      "empty client identifier not allowed");
		cid_len = client_id_assign(e, assigned, sizeof assigned);
		cid = (const uint8_t *)assigned;
		is_assigned = true;
	} else if (cfg->max_client_id_len && cid_len > cfg->max_client_id_len) {
		return connect_refuse(e, c, v, MQTT_RC_CLIENT_ID_NOT_VALID, k, "client identifier too long");
	}
	c->info.client_id.p = (const char *)cid;
	c->info.client_id.len = cid_len;

	if (v == CODEC_V5 && CODEC_HAS_PROP(&k->props, CODEC_PROP_AUTH_METHOD))
		return connect_refuse(e, c, v, MQTT_RC_BAD_AUTH_METHOD, k,
				      "no authentication method is configured");
	if (!c->info.username.p && !cfg->allow_anonymous)
		return connect_refuse(e, c, v, MQTT_RC_NOT_AUTHORIZED, k, "anonymous clients not allowed");
	if (e->has_auth && e->auth.connect) {
		struct midge_str user = c->info.username;
		struct midge_str pass = {(const char *)k->password.p, k->has_password ? k->password.len : 0};
		int arc = e->auth.connect(e->auth.ctx, &c->info, &user, &pass);
		if (arc)
			return connect_refuse(e, c, v, (uint8_t)arc, k, "refused by authentication");
	}

	struct emsg *will = NULL;
	struct will *wr = NULL;
	if (k->will) {
		if (cfg->message_size_limit && k->will_payload.len > cfg->message_size_limit)
			return connect_refuse(e, c, v, MQTT_RC_PACKET_TOO_LARGE, k,
					      "will payload over message_size_limit");
		if (k->will_qos > cfg->max_qos) /* [MQTT-3.2.2-12] */
			return connect_refuse(e, c, v, MQTT_RC_QOS_NOT_SUPPORTED, k, "will QoS not supported");
		if (k->will_retain && !cfg->retain_available) /* [MQTT-3.2.2-13] */
			return connect_refuse(e, c, v, MQTT_RC_RETAIN_NOT_SUPPORTED, k,
					      "retained will not supported");
		if (too_deep(e, k->will_topic.p, k->will_topic.len))
			return connect_refuse(e, c, v, MQTT_RC_TOPIC_NAME_INVALID, k,
					      "will topic has too many levels");
		if (!acl_allows(e, &c->info, k->will_topic.p, k->will_topic.len, ENGINE_ACCESS_PUBLISH))
			return connect_refuse(e, c, v, MQTT_RC_NOT_AUTHORIZED, k, "will topic not authorized");
		bool v5 = v == CODEC_V5;
		will = emsg_new(e, k->will_topic.p, k->will_topic.len, k->will_payload.p,
				k->will_payload.len, v5 ? k->will_props.raw.p : NULL,
				v5 ? k->will_props.raw.len : 0, k->will_qos, k->will_retain, 0, cid, cid_len,
				true);
		if (!will)
			return connect_refuse(e, c, v, MQTT_RC_SERVER_UNAVAILABLE, k, "out of memory");
		wr = calloc(1, sizeof *wr);
		if (!wr) {
			emsg_unref(will);
			return connect_refuse(e, c, v, MQTT_RC_SERVER_UNAVAILABLE, k, "out of memory");
		}
		wr->m = will;
		wr->t.kind = T_WILL;
		if (v5 && CODEC_HAS_PROP(&k->will_props, CODEC_PROP_WILL_DELAY))
			wr->delay = k->will_props.will_delay;
	}

	uint16_t keepalive = k->keep_alive;
	bool server_ka = false;
	if (v == CODEC_V5 && cfg->max_keepalive && (keepalive == 0 || keepalive > cfg->max_keepalive)) {
		keepalive = cfg->max_keepalive; /* [MQTT-3.2.2-21] */
		server_ka = true;
	}
	uint32_t expiry;
	bool expiry_capped = false;
	if (v == CODEC_V5) {
		expiry = CODEC_HAS_PROP(&k->props, CODEC_PROP_SESSION_EXPIRY) ? k->props.session_expiry : 0;
		if (cfg->max_session_expiry && expiry > cfg->max_session_expiry) {
			expiry = cfg->max_session_expiry;
			expiry_capped = true;
		}
	} else if (k->clean_start) {
		expiry = 0;
	} else {
		expiry = cfg->persistent_client_expiration ? cfg->persistent_client_expiration : EXPIRY_NEVER;
	}

	struct session *s = session_find(e, cid, cid_len);
	bool present = false, discarded = false;
	if (s) {
		if (s->conn)
			session_take_over(e, s, k->clean_start);
		if (k->clean_start || s->expiry == 0) {
			will_publish(e, s);
			if (k->clean_start)
				discarded = true;
			if (discarded)
				emit_session(e, MIDGE_EV_SESSION_DISCARDED, s, NULL, "clean start");
			session_destroy(e, s);
			s = NULL;
		} else {
			/* the session resumes in time: its pending will is not sent [MQTT-3.1.3-9] */
			will_clear(e, s);
			timer_cancel(e, &s->expiry_timer);
			present = v != CODEC_V31;
		}
	}
	bool created = !s;
	if (!s) {
		s = session_new(e, cid, cid_len);
		if (!s) {
			will_free(wr);
			return connect_refuse(e, c, v, MQTT_RC_SERVER_UNAVAILABLE, k, "out of memory");
		}
	}
	c->info.client_id.p = s->cid;
	s->conn = c;
	c->s = s;
	s->version = v;
	s->expiry = expiry;
	c->expiry_zero = expiry == 0;
	if (wr) {
		wr->m->origin = s->serial;
		wr->s = s;
		s->will = wr;
	}
	c->state = CONN_UP;
	c->counted_connected = true;
	c->keepalive = keepalive;
	c->receive_max = cfg->receive_max ? cfg->receive_max : 65535;
	c->in_alias_max = v == CODEC_V5 ? cfg->topic_alias_max : 0;
	e->st.clients_connected++;
	if (e->st.clients_connected > e->st.clients_maximum)
		e->st.clients_maximum = e->st.clients_connected;
	if (keepalive)
		timer_set(e, &c->keepalive_timer, e->now + (uint64_t)keepalive * 1500);

	struct codec_packet ack;
	memset(&ack, 0, sizeof ack);
	ack.type = CODEC_CONNACK;
	ack.u.connack.session_present = present; /* [MQTT-3.2.2-1] [MQTT-3.2.2-2] [MQTT-3.2.2-3] */
	if (v == CODEC_V5) {
		struct codec_props *pr = &ack.u.connack.props;
		if (c->receive_max != 65535) {
			pr->present |= CODEC_PROP_BIT(CODEC_PROP_RECEIVE_MAX);
			pr->receive_max = c->receive_max;
		}
		if (cfg->max_qos < 2) {
			pr->present |= CODEC_PROP_BIT(CODEC_PROP_MAX_QOS);
			pr->max_qos = cfg->max_qos;
		}
		if (!cfg->retain_available) {
			pr->present |= CODEC_PROP_BIT(CODEC_PROP_RETAIN_AVAILABLE);
			pr->retain_available = 0;
		}
		if (cfg->max_packet_size && cfg->max_packet_size < ENGINE_PROTOCOL_MAX_PACKET) {
			pr->present |= CODEC_PROP_BIT(CODEC_PROP_MAX_PACKET_SIZE);
			pr->max_packet_size = cfg->max_packet_size;
		}
		if (is_assigned) {
			pr->present |= CODEC_PROP_BIT(CODEC_PROP_ASSIGNED_CLIENT_ID);
			pr->assigned_client_id.p = (const uint8_t *)s->cid;
			pr->assigned_client_id.len = (uint32_t)cid_len;
		}
		if (c->in_alias_max) {
			pr->present |= CODEC_PROP_BIT(CODEC_PROP_TOPIC_ALIAS_MAX);
			pr->topic_alias_max = c->in_alias_max;
		}
		if (!cfg->wildcard_sub_available) {
			pr->present |= CODEC_PROP_BIT(CODEC_PROP_WILDCARD_SUB_AVAILABLE);
			pr->wildcard_sub_available = 0;
		}
		if (!cfg->sub_id_available) {
			pr->present |= CODEC_PROP_BIT(CODEC_PROP_SUB_ID_AVAILABLE);
			pr->sub_id_available = 0;
		}
		if (!cfg->shared_sub_available) {
			pr->present |= CODEC_PROP_BIT(CODEC_PROP_SHARED_SUB_AVAILABLE);
			pr->shared_sub_available = 0;
		}
		if (server_ka) {
			pr->present |= CODEC_PROP_BIT(CODEC_PROP_SERVER_KEEP_ALIVE);
			pr->server_keep_alive = keepalive;
		}
		if (expiry_capped) {
			pr->present |= CODEC_PROP_BIT(CODEC_PROP_SESSION_EXPIRY);
			pr->session_expiry = expiry;
		}
	}
	send_packet(e, c, &ack, NULL);

	if (created)
		emit_session(e, MIDGE_EV_SESSION_CREATED, s, &c->info, discarded ? "clean start" : NULL);
	else
		emit_session(e, MIDGE_EV_SESSION_RESUMED, s, &c->info, NULL);
	struct midge_event ev;
	event_init(e, &ev, MIDGE_EV_CONNECT, &c->info);
	connect_event_fields(&ev, k);
	ev.u.connect.keep_alive = keepalive;
	ev.u.connect.session_expiry = expiry;
	ev.u.connect.session_present = present;
	emit(e, &ev);
	if (present)
		session_resend(e, s);
	return 0;
}

/* ---- PUBLISH and acknowledgements ---- */

static bool rel_find(const struct session *s, uint16_t pid, uint32_t *at)
{
	for (uint32_t i = 0; i < s->n_awaiting_rel; i++) {
		if (s->awaiting_rel[i] == pid) {
			if (at)
				*at = i;
			return true;
		}
	}
	return false;
}

static int rel_add(struct session *s, uint16_t pid)
{
	if (grow16((void **)&s->awaiting_rel, &s->cap_awaiting_rel, s->n_awaiting_rel, sizeof *s->awaiting_rel) < 0)
		return -1;
	s->awaiting_rel[s->n_awaiting_rel++] = pid;
	return 0;
}

/*
 * Resolves a v5 topic alias [MQTT-3.3.2-7]: a PUBLISH with a topic sets
 * the alias, one without uses it. Returns 0 with *topic / *len set, or a
 * reason code for DISCONNECT.
 */
static uint8_t alias_resolve(struct engine_conn *c, uint16_t a, const uint8_t **topic, size_t *len,
			     const char **why)
{
	if (a == 0 || a > c->in_alias_max) { /* [MQTT-3.3.2-8] [MQTT-3.3.2-9] */
		*why = "topic alias out of range";
		return MQTT_RC_TOPIC_ALIAS_INVALID;
	}
	if (!c->aliases)
		c->aliases = calloc(1, sizeof *c->aliases);
	if (c->aliases && !c->aliases->in)
		c->aliases->in = calloc(c->in_alias_max, sizeof *c->aliases->in);
	if (!c->aliases || !c->aliases->in) {
		*why = "out of memory";
		return MQTT_RC_IMPLEMENTATION_SPECIFIC;
	}
	struct alias *al = &c->aliases->in[a - 1];
	if (*len == 0) {
		if (!al->len) {
			*why = "unknown topic alias";
			return MQTT_RC_PROTOCOL_ERROR;
		}
		*topic = al->p;
		*len = al->len;
		return 0;
	}
	if (*len > al->cap) {
		uint8_t *n = realloc(al->p, *len);
		if (!n) {
			*why = "out of memory";
			return MQTT_RC_IMPLEMENTATION_SPECIFIC;
		}
		al->p = n;
		al->cap = (uint16_t)*len;
	}
	memcpy(al->p, *topic, *len);
	al->len = (uint16_t)*len;
	return 0;
}

static int handle_publish(struct engine *e, struct engine_conn *c, struct codec_packet *p)
{
	struct codec_publish *pub = &p->u.publish;
	struct session *s = c->s;
	const struct engine_config *cfg = &e->cfg;
	const uint8_t *topic = pub->topic.p;
	size_t tlen = pub->topic.len;
	const char *why = NULL;
	bool v5 = c->version == CODEC_V5;

	if (v5 && CODEC_HAS_PROP(&pub->props, CODEC_PROP_TOPIC_ALIAS)) {
		uint8_t arc = alias_resolve(c, pub->props.topic_alias, &topic, &tlen, &why);
		if (arc)
			return conn_fail(e, c, arc, why);
	} else if (tlen == 0) {
		return conn_fail(e, c, MQTT_RC_PROTOCOL_ERROR, "PUBLISH without topic");
	}
	if (pub->qos > cfg->max_qos) /* [MQTT-3.2.2-11] */
		return conn_fail(e, c, MQTT_RC_QOS_NOT_SUPPORTED, "QoS not supported");
	if (pub->retain && !cfg->retain_available) /* [MQTT-3.2.2-14] */
		return conn_fail(e, c, MQTT_RC_RETAIN_NOT_SUPPORTED, "retain not supported");
	if (pub->qos == 2 && rel_find(s, pub->packet_id, NULL)) {
		/* a resent QoS 2 PUBLISH is acknowledged, not delivered again [MQTT-4.3.3-9] */
		send_ack(e, c, CODEC_PUBREC, pub->packet_id, 0, NULL);
		return 0;
	}
	if (v5 && pub->qos > 0 && s->n_awaiting_rel >= c->receive_max) /* [MQTT-3.3.4-9] */
		return conn_fail(e, c, MQTT_RC_RECEIVE_MAX_EXCEEDED, "receive maximum exceeded");

	uint8_t rc = 0;
	enum midge_drop_reason drop = MIDGE_DROP_NOT_AUTHORIZED;
	if (cfg->message_size_limit && pub->payload.len > cfg->message_size_limit) {
		/* Not forwarded, but the QoS flow completes. Mosquitto answers
		 * 0x95, which PUBACK/PUBREC may not carry; 0x97 is the code for
		 * an administrative limit. */
		rc = MQTT_RC_QUOTA_EXCEEDED;
		why = "payload over message_size_limit";
		drop = MIDGE_DROP_TOO_LARGE;
	} else if (too_deep(e, topic, tlen)) {
		rc = MQTT_RC_TOPIC_NAME_INVALID;
		why = "topic has too many levels";
	} else if (!acl_allows(e, &c->info, topic, tlen, ENGINE_ACCESS_PUBLISH)) {
		rc = MQTT_RC_NOT_AUTHORIZED;
		why = "publish not authorized";
	}
	struct emsg *m = emsg_new(e, topic, tlen, pub->payload.p, pub->payload.len,
				  v5 ? pub->props.raw.p : NULL, v5 ? pub->props.raw.len : 0, pub->qos,
				  pub->retain, s->serial, (const uint8_t *)s->cid, s->cid_len, false);
	if (!m)
		return conn_fail(e, c, MQTT_RC_IMPLEMENTATION_SPECIFIC, "out of memory");
	if (rc) {
		emit_drop(e, NULL, m, pub->qos, drop, why);
	} else {
		uint32_t n = publish_accept(e, m, &c->info, pub->packet_id, pub->dup);
		if (!n && pub->qos > 0)
			rc = MQTT_RC_NO_MATCHING_SUBSCRIBERS;
	}
	emsg_unref(m);
	if (c->state != CONN_UP)
		return -1;
	if (pub->qos == 1) {
		send_ack(e, c, CODEC_PUBACK, pub->packet_id, rc, why);
	} else if (pub->qos == 2) {
		/* [MQTT-4.3.3-8]: remember the id until PUBREL; a refusal ends the exchange */
		if (rc < 0x80 && rel_add(s, pub->packet_id) < 0)
			return conn_fail(e, c, MQTT_RC_IMPLEMENTATION_SPECIFIC, "out of memory");
		send_ack(e, c, CODEC_PUBREC, pub->packet_id, rc, why);
	}
	return 0;
}

static void emit_acked(struct engine *e, struct engine_conn *c, const struct slot *sl,
		       const struct emsg *m)
{
	if (m)
		emit_message(e, MIDGE_EV_ACKED, &c->info, m, c->s, sl->d.qos, sl->pid, false, 0, NULL);
}

static int handle_ack(struct engine *e, struct engine_conn *c, struct codec_packet *p)
{
	struct session *s = c->s;
	uint16_t pid = p->u.ack.packet_id;
	struct slot *sl = slot_find(s, pid);
	switch (p->type) {
	case CODEC_PUBACK:
		if (sl && sl->state == SLOT_PUBACK) {
			emit_acked(e, c, sl, sl->d.m);
			slot_remove(e, s, sl);
		}
		break;
	case CODEC_PUBREC:
		if (!sl || sl->state == SLOT_PUBACK) {
			send_ack(e, c, CODEC_PUBREL, pid, MQTT_RC_PACKET_ID_NOT_FOUND, "packet id not found");
			return 0;
		}
		if (p->u.ack.rc >= 0x80) { /* the receiver refused: the exchange ends */
			slot_remove(e, s, sl);
			break;
		}
		if (sl->state == SLOT_PUBREC) {
			emit_acked(e, c, sl, sl->d.m);
			emsg_unref(sl->d.m);
			sl->d.m = NULL;
			sl->state = SLOT_PUBCOMP;
		}
		send_ack(e, c, CODEC_PUBREL, pid, 0, NULL); /* [MQTT-4.3.3-4] */
		return 0;
	case CODEC_PUBCOMP:
		if (sl && sl->state == SLOT_PUBCOMP)
			slot_remove(e, s, sl);
		break;
	case CODEC_PUBREL: {
		uint32_t at;
		bool found = rel_find(s, pid, &at);
		if (found)
			s->awaiting_rel[at] = s->awaiting_rel[--s->n_awaiting_rel];
		/* [MQTT-4.3.3-11] */
		send_ack(e, c, CODEC_PUBCOMP, pid, found ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND,
			 found ? NULL : "packet id not found");
		return 0;
	}
	}
	session_drain(e, s);
	return 0;
}

/* ---- SUBSCRIBE / UNSUBSCRIBE ---- */

static struct sub *sub_find(struct session *s, const uint8_t *f, size_t len, struct sub ***prev)
{
	struct sub **pp = &s->subs;
	for (; *pp; pp = &(*pp)->next) {
		if ((*pp)->len == len && memcmp((*pp)->filter, f, len) == 0) {
			if (prev)
				*prev = pp;
			return *pp;
		}
	}
	return NULL;
}

static bool is_shared(const uint8_t *f, size_t len)
{
	return len > 7 && memcmp(f, "$share/", 7) == 0;
}

/*
 * Applies one SUBSCRIBE entry. Returns the granted QoS or a failure code
 * (0x80 in 3.1.1), or -1 for a protocol error that closes the connection.
 * *fresh tells whether the subscription is new.
 */
static int subscribe_one(struct engine *e, struct engine_conn *c, const struct codec_sub_entry *en,
			 uint32_t sub_id, bool *fresh)
{
	struct session *s = c->s;
	const struct engine_config *cfg = &e->cfg;
	const uint8_t *f = en->filter.p;
	size_t len = en->filter.len;
	bool shared = is_shared(f, len);
	bool wild = memchr(f, '+', len) || memchr(f, '#', len);
	int rc;
	*fresh = false;
	if (shared && en->no_local) /* [MQTT-3.8.3-4] */
		return -1;
	if (shared && !cfg->shared_sub_available)
		rc = MQTT_RC_SHARED_SUB_NOT_SUPPORTED;
	else if (wild && !cfg->wildcard_sub_available)
		rc = MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED;
	else if (too_deep(e, f, len))
		rc = MQTT_RC_TOPIC_FILTER_INVALID;
	else if (!acl_allows(e, &c->info, f, len, ENGINE_ACCESS_SUBSCRIBE))
		rc = MQTT_RC_NOT_AUTHORIZED;
	else {
		struct sub *x = sub_find(s, f, len, NULL);
		bool isnew = !x;
		uint8_t qos = en->qos > cfg->max_qos ? cfg->max_qos : en->qos;
		uint8_t options = c->version == CODEC_V5 ? (uint8_t)((en->options & ~3u) | qos) : qos;
		if (isnew && cfg->max_subscriptions && s->nsubs >= cfg->max_subscriptions) {
			rc = MQTT_RC_QUOTA_EXCEEDED;
		} else if (isnew && !(x = malloc(sizeof *x + len))) {
			rc = MQTT_RC_UNSPECIFIED;
		} else if (topic_tree_subscribe(e->tree, f, len, s, options, sub_id) < 0) {
			if (isnew)
				free(x);
			rc = MQTT_RC_UNSPECIFIED;
		} else {
			/* [MQTT-3.8.4-3]: a subscription to the same filter is replaced */
			if (isnew) {
				x->len = (uint16_t)len;
				memcpy(x->filter, f, len);
				x->next = s->subs;
				s->subs = x;
				s->nsubs++;
				*fresh = true;
			}
			x->options = options;
			x->sub_id = sub_id;
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
		struct midge_client cl;
		session_client(s, &cl);
		if (m->has_expiry && m->expire_at <= e->now) {
			/* the store is not being walked here: safe to clear */
			if (retain_store_set(e->retained, m->topic, m->topic_len, NULL) > 0)
				emit_message(e, MIDGE_EV_RETAIN_CLEAR, NULL, m, NULL, m->qos, 0, false, 0,
					     "expired");
			emit_drop(e, s, m, qos, MIDGE_DROP_EXPIRED, "retained message expired");
		} else if (!acl_allows(e, &cl, m->topic, m->topic_len, ENGINE_ACCESS_RECEIVE)) {
			emit_drop(e, s, m, qos, MIDGE_DROP_NOT_AUTHORIZED, "receive denied by ACL");
		} else if (s->conn) {
			struct delivery d = {0};
			d.qos = qos;
			d.retain = true;
			if (sub_id && s->version == CODEC_V5) {
				d.n_sub_ids = 1;
				d.sub_ids[0] = sub_id;
			}
			session_deliver(e, s, m, &d);
		}
		emsg_unref(m);
	}
	e->n_retained_matches = base;
}

static int handle_subscribe(struct engine *e, struct engine_conn *c, struct codec_packet *p)
{
	struct codec_subscribe *sb = &p->u.subscribe;
	uint32_t sub_id = 0;
	if (c->version == CODEC_V5 && CODEC_HAS_PROP(&sb->props, CODEC_PROP_SUBSCRIPTION_ID)) {
		if (!e->cfg.sub_id_available)
			return conn_fail(e, c, MQTT_RC_SUB_IDS_NOT_SUPPORTED,
					 "subscription identifiers not supported");
		sub_id = sb->props.sub_id;
	}
	uint32_t n = sb->count;
	uint8_t *codes = malloc(n ? n * 2 : 1);
	if (!codes)
		return conn_fail(e, c, MQTT_RC_IMPLEMENTATION_SPECIFIC, "out of memory");
	uint8_t *fresh = codes + n;
	struct codec_sub_entry en;
	uint32_t pos = 0, i = 0;
	while (i < n && codec_subscribe_next(sb, &pos, &en) == 1) {
		bool f;
		int rc = subscribe_one(e, c, &en, sub_id, &f);
		if (rc < 0) {
			free(codes);
			e->st.subscriptions_count = topic_tree_count(e->tree);
			return conn_fail(e, c, MQTT_RC_PROTOCOL_ERROR, "no-local on a shared subscription");
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
		emit(e, &ev);
		i++;
	}
	e->st.subscriptions_count = topic_tree_count(e->tree);
	struct codec_packet ack;
	memset(&ack, 0, sizeof ack);
	ack.type = CODEC_SUBACK;
	ack.u.suback.packet_id = sb->packet_id; /* [MQTT-3.8.4-2] */
	ack.u.suback.codes = codes;
	ack.u.suback.count = i; /* [MQTT-3.8.4-6] one code per filter, in order */
	send_packet(e, c, &ack, NULL);

	pos = 0;
	for (uint32_t j = 0; j < i && codec_subscribe_next(sb, &pos, &en) == 1; j++) {
		if (codes[j] >= 0x80 || !e->cfg.retain_available || is_shared(en.filter.p, en.filter.len))
			continue;
		uint8_t rh = c->version == CODEC_V5 ? en.retain_handling : 0;
		if (rh == 2 || (rh == 1 && !fresh[j])) /* [MQTT-3.3.1-10] [MQTT-3.3.1-11] */
			continue;
		retained_send(e, c->s, en.filter.p, en.filter.len, codes[j], sub_id);
		if (!conn_up(c))
			break;
	}
	free(codes);
	return conn_up(c) ? 0 : -1;
}

static int handle_unsubscribe(struct engine *e, struct engine_conn *c, struct codec_packet *p)
{
	struct codec_unsubscribe *un = &p->u.unsubscribe;
	struct session *s = c->s;
	uint32_t n = un->count;
	uint8_t *codes = malloc(n ? n : 1);
	if (!codes)
		return conn_fail(e, c, MQTT_RC_IMPLEMENTATION_SPECIFIC, "out of memory");
	struct codec_buf f;
	uint32_t pos = 0, i = 0;
	while (i < n && codec_unsubscribe_next(un, &pos, &f) == 1) {
		struct sub **prev;
		struct sub *x = sub_find(s, f.p, f.len, &prev);
		uint8_t rc = MQTT_RC_NO_SUBSCRIPTION_EXISTED;
		if (x) {
			topic_tree_unsubscribe(e->tree, f.p, f.len, s);
			*prev = x->next;
			free(x);
			s->nsubs--;
			rc = 0;
		}
		codes[i++] = rc;
		struct midge_event ev;
		event_init(e, &ev, MIDGE_EV_UNSUBSCRIBE, &c->info);
		ev.u.subscribe.filter.p = (const char *)f.p;
		ev.u.subscribe.filter.len = f.len;
		ev.u.subscribe.rc = rc;
		ev.u.subscribe.packet_id = un->packet_id;
		emit(e, &ev);
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
	send_packet(e, c, &ack, NULL);
	free(codes);
	return 0;
}

/* ---- DISCONNECT, PING, dispatch ---- */

static int handle_disconnect(struct engine *e, struct engine_conn *c, struct codec_packet *p)
{
	struct codec_disconnect *d = &p->u.disconnect;
	struct session *s = c->s;
	if (c->version == CODEC_V5 && CODEC_HAS_PROP(&d->props, CODEC_PROP_SESSION_EXPIRY)) {
		if (c->expiry_zero && d->props.session_expiry != 0) /* [MQTT-3.14.2-2] */
			return conn_fail(e, c, MQTT_RC_PROTOCOL_ERROR,
					 "session expiry set on DISCONNECT after 0 on CONNECT");
		uint32_t x = d->props.session_expiry;
		if (e->cfg.max_session_expiry && x > e->cfg.max_session_expiry)
			x = e->cfg.max_session_expiry;
		s->expiry = x;
	}
	/* [MQTT-3.14.4-3] the will is discarded, unless v5 reason 0x04 asks for it */
	c->normal_disconnect = !(c->version == CODEC_V5 && d->rc == MQTT_RC_DISCONNECT_WITH_WILL);
	conn_request_close(e, c, d->rc, true, "client disconnected");
	return -1;
}

/* Why a connection whose first packet is not CONNECT is closed, by the
 * type it sent (static strings: the event's why outlives no call). */
static const char *const first_not_connect[16] = {
	"first packet is reserved type 0, not CONNECT", "first packet is CONNECT",
	"first packet is CONNACK, not CONNECT",     "first packet is PUBLISH, not CONNECT",
	"first packet is PUBACK, not CONNECT",      "first packet is PUBREC, not CONNECT",
	"first packet is PUBREL, not CONNECT",      "first packet is PUBCOMP, not CONNECT",
	"first packet is SUBSCRIBE, not CONNECT",   "first packet is SUBACK, not CONNECT",
	"first packet is UNSUBSCRIBE, not CONNECT", "first packet is UNSUBACK, not CONNECT",
	"first packet is PINGREQ, not CONNECT",     "first packet is PINGRESP, not CONNECT",
	"first packet is DISCONNECT, not CONNECT",  "first packet is AUTH, not CONNECT",
};

int engine_conn_frame(struct engine *e, struct engine_conn *c, uint8_t first, const uint8_t *body,
		      uint32_t len, uint64_t now_ms)
{
	e->now = now_ms;
	if (c->state == CONN_CLOSING)
		return -1;
	e->st.bytes_received += 1 + codec_varint_size(len) + len;
	c->last_packet_ms = now_ms; /* [MQTT-3.1.2-23] any packet resets the keepalive */
	struct codec_packet p;
	memset(&p, 0, sizeof p);
	int rc = codec_decode(first, body, len, c->version, &p);
	uint8_t type = first >> 4;
	if (c->state == CONN_NEW) {
		if (type != CODEC_CONNECT) /* [MQTT-3.1.0-1] */
			return conn_fail(e, c, MQTT_RC_PROTOCOL_ERROR, first_not_connect[type]);
		return handle_connect(e, c, &p, rc);
	}
	if (type == CODEC_CONNECT) /* [MQTT-3.1.0-2] */
		return conn_fail(e, c, MQTT_RC_PROTOCOL_ERROR, "second CONNECT");
	if (rc < 0)
		return conn_fail(e, c, (uint8_t)-rc, codec_rc_name((uint8_t)-rc));
	switch (type) {
	case CODEC_PUBLISH:
		return handle_publish(e, c, &p);
	case CODEC_PUBACK:
	case CODEC_PUBREC:
	case CODEC_PUBREL:
	case CODEC_PUBCOMP:
		return handle_ack(e, c, &p);
	case CODEC_SUBSCRIBE:
		return handle_subscribe(e, c, &p);
	case CODEC_UNSUBSCRIBE:
		return handle_unsubscribe(e, c, &p);
	case CODEC_PINGREQ: {
		static const uint8_t pingresp[2] = {0xD0, 0x00};
		struct midge_event ev;
		event_init(e, &ev, MIDGE_EV_PING, &c->info);
		emit(e, &ev);
		conn_write(e, c, pingresp, sizeof pingresp, NULL, false); /* [MQTT-3.12.4-1] */
		return 0;
	}
	case CODEC_DISCONNECT:
		return handle_disconnect(e, c, &p);
	case CODEC_AUTH:
		return conn_fail(e, c, MQTT_RC_PROTOCOL_ERROR, "AUTH without an authentication method");
	default:
		return conn_fail(e, c, MQTT_RC_PROTOCOL_ERROR, "packet type a client must not send");
	}
}

void engine_conn_framing_error(struct engine *e, struct engine_conn *c, uint8_t rc, uint64_t now_ms)
{
	e->now = now_ms;
	conn_fail(e, c, rc,
		  rc == MQTT_RC_PACKET_TOO_LARGE ? "packet larger than the maximum packet size"
						 : "malformed packet");
}

struct input_pass {
	struct engine *e;
	struct engine_conn *c;
	uint64_t now;
	uint32_t limit; /* the framer's limit for the next packet */
};

static int input_packet(void *ctx, const struct codec_frame *fr, const uint8_t *body)
{
	struct input_pass *in = ctx;
	if (engine_conn_frame(in->e, in->c, fr->first, body, fr->remaining, in->now) < 0)
		return 1;
	/* CONNECT accepted: from the next packet on, the full limit. */
	in->limit = engine_conn_max_packet(in->c);
	return 0;
}

int engine_conn_input(struct engine *e, struct engine_conn *c, const uint8_t *buf, size_t n,
		      uint64_t now_ms, struct codec_feed *out)
{
	if (c->state == CONN_CLOSING) {
		out->used = n;
		out->need = 0;
		return -1;
	}
	struct input_pass in = {e, c, now_ms, engine_conn_max_packet(c)};
	int rc = codec_frames(buf, n, &in.limit, input_packet, &in, out);
	if (rc < 0)
		engine_conn_framing_error(e, c, (uint8_t)-rc, now_ms);
	if (rc != 0) {
		/* Closing: whatever else arrived is never read. */
		out->used = n;
		out->need = 0;
		return -1;
	}
	return 0;
}

/* ---- connections ---- */

struct engine_conn *engine_conn_open(struct engine *e, void *handle, const char *peer_addr,
				     uint16_t peer_port, bool tls, uint64_t now_ms)
{
	size_t n = peer_addr ? strnlen(peer_addr, PEER_TEXT_MAX - 1) : 0;
	size_t size = offsetof(struct engine_conn, peer) + n + 1;
	struct engine_conn *c = calloc(1, size > sizeof *c ? size : sizeof *c);
	if (!c)
		return NULL;
	c->e = e;
	c->handle = handle;
	c->last_packet_ms = now_ms;
	c->keepalive_timer.kind = T_KEEPALIVE;
	memcpy(c->peer, peer_addr ? peer_addr : "", n);
	c->info.peer_addr = c->peer;
	c->info.peer_port = peer_port;
	c->info.tls = tls;
	c->next = e->conns;
	if (e->conns)
		e->conns->prev = c;
	e->conns = c;
	return c;
}

int engine_conn_set_identity(struct engine_conn *c, const char *username)
{
	size_t n = strlen(username);
	char *u = dup_bytes(username, n);
	if (!u)
		return -1;
	free((char *)c->info.username.p);
	c->info.username.p = u;
	c->info.username.len = n;
	return 0;
}

/*
 * The framer's limit for the next packet. Before CONNECT it is the
 * smaller of the two bounds: the pre-CONNECT limit exists to make an
 * unauthenticated peer cheaper, never to let it past max_packet_size.
 */
uint32_t engine_conn_max_packet(const struct engine_conn *c)
{
	const struct engine_config *cfg = &c->e->cfg;
	uint32_t max = cfg->max_packet_size;
	if (c->state == CONN_NEW && cfg->max_packet_before_connect &&
	    (!max || cfg->max_packet_before_connect < max))
		max = cfg->max_packet_before_connect;
	return max;
}

uint8_t engine_conn_version(const struct engine_conn *c)
{
	return c->state == CONN_NEW ? 0 : c->version;
}

static void conn_teardown(struct engine *e, struct engine_conn *c)
{
	timer_cancel(e, &c->keepalive_timer);
	if (c->prev)
		c->prev->next = c->next;
	else
		e->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->aliases) {
		if (c->aliases->in) {
			for (uint32_t i = 0; i < c->in_alias_max; i++)
				free(c->aliases->in[i].p);
			free(c->aliases->in);
		}
		for (uint32_t i = 0; i < c->out_alias_used; i++)
			free(c->aliases->out[i].topic);
		free(c->aliases->out);
		free(c->aliases);
	}
	if (c->cid_own)
		free((char *)c->info.client_id.p);
	free((char *)c->info.username.p);
	free(c);
}

void engine_conn_closed(struct engine *e, struct engine_conn *c, const char *why, uint64_t now_ms)
{
	e->now = now_ms;
	struct session *s = c->s;
	if (c->state != CONN_CLOSING)
		timer_cancel(e, &c->keepalive_timer);
	c->state = CONN_CLOSING;
	if (c->counted_connected) {
		struct midge_event ev;
		event_init(e, &ev, MIDGE_EV_DISCONNECT, &c->info);
		if (c->close_cause_set) {
			ev.u.disconnect.rc = c->close_rc;
			ev.u.disconnect.by_client = c->close_by_client;
			ev.u.disconnect.why = c->close_why;
		} else {
			ev.u.disconnect.rc = MQTT_RC_UNSPECIFIED;
			ev.u.disconnect.by_client = true;
			ev.u.disconnect.why = why ? why : "connection closed";
		}
		ev.u.disconnect.will = s && s->will && !c->normal_disconnect;
		emit(e, &ev);
		e->st.clients_connected--;
	}
	if (s)
		session_detach(e, s, !c->normal_disconnect);
	conn_teardown(e, c);
}

/* ---- time ---- */

static void keepalive_fire(struct engine *e, struct engine_conn *c)
{
	uint64_t deadline = c->last_packet_ms + (uint64_t)c->keepalive * 1500;
	if (c->state != CONN_UP || !c->keepalive)
		return;
	if (e->now < deadline) {
		timer_set(e, &c->keepalive_timer, deadline);
		return;
	}
	/* [MQTT-3.1.2-24] (3.1.1) / [MQTT-3.1.2-22] (5.0) */
	send_disconnect(e, c, MQTT_RC_KEEP_ALIVE_TIMEOUT, "keep alive timeout");
	conn_request_close(e, c, MQTT_RC_KEEP_ALIVE_TIMEOUT, false, "keepalive timeout");
}

uint64_t engine_tick(struct engine *e, uint64_t now_ms)
{
	e->now = now_ms;
	while (e->nheap && e->heap[0]->at <= now_ms) {
		struct timer_node *t = e->heap[0];
		timer_cancel(e, t);
		switch (t->kind) {
		case T_KEEPALIVE:
			keepalive_fire(e, container_of(t, struct engine_conn, keepalive_timer));
			break;
		case T_WILL:
			will_publish(e, container_of(t, struct will, t)->s);
			break;
		case T_EXPIRY:
			session_expire(e, container_of(t, struct session, expiry_timer));
			break;
		}
	}
	return e->nheap ? e->heap[0]->at : UINT64_MAX;
}

void engine_shutdown(struct engine *e, uint64_t now_ms)
{
	e->now = now_ms;
	for (struct engine_conn *c = e->conns; c; c = c->next) {
		if (c->state == CONN_CLOSING)
			continue;
		if (c->state == CONN_UP)
			send_disconnect(e, c, MQTT_RC_SERVER_SHUTTING_DOWN, "server shutting down");
		conn_request_close(e, c, MQTT_RC_SERVER_SHUTTING_DOWN, false, "server shutting down");
	}
}

/* ---- engine ---- */

void engine_config_default(struct engine_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->max_packet_size = ENGINE_PROTOCOL_MAX_PACKET;
	cfg->max_packet_before_connect = 65536;
	cfg->max_inflight = 20;
	cfg->receive_max = 20;
	cfg->max_queued_messages = 1000;
	cfg->max_queued_bytes = 0;
	cfg->queue_qos0_messages = false;
	cfg->max_keepalive = 65535;
	cfg->max_client_id_len = 65535;
	cfg->allow_zero_length_clientid = true;
	cfg->allow_anonymous = true;
	cfg->max_subscriptions = 0;
	cfg->max_topic_levels = 128;
	cfg->max_qos = 2;
	cfg->retain_available = true;
	cfg->wildcard_sub_available = true;
	cfg->sub_id_available = true;
	cfg->shared_sub_available = true;
	cfg->topic_alias_max = 10;
	cfg->persistent_client_expiration = 0;
	cfg->max_session_expiry = 0;
	cfg->retry_interval_ms = 20000;
	cfg->upgrade_outgoing_qos = false;
	cfg->message_size_limit = 0;
}

/* Copies cfg, turning Mosquitto's "0 = unlimited" queue length into the
 * hard bound so that session_enqueue() needs no special case. */
static void config_apply(struct engine *e, const struct engine_config *cfg)
{
	e->cfg = *cfg;
	if (!e->cfg.max_queued_messages)
		e->cfg.max_queued_messages = ENGINE_MAX_QUEUED;
}

struct engine *engine_new(const struct engine_config *cfg, const struct engine_io *io,
			  const struct engine_auth *auth)
{
	struct engine *e = calloc(1, sizeof *e);
	if (!e)
		return NULL;
	config_apply(e, cfg);
	e->io = *io;
	if (auth) {
		e->auth = *auth;
		e->has_auth = true;
	}
	e->tree = topic_tree_new();
	e->retained = retain_store_new(emsg_unref_cb);
	if (!e->tree || !e->retained) {
		engine_free(e);
		return NULL;
	}
	return e;
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	while (e->conns) {
		struct engine_conn *c = e->conns;
		if (c->s)
			c->s->conn = NULL;
		conn_teardown(e, c);
	}
	for (uint32_t i = 0; i < e->table_size; i++)
		while (e->session_table[i])
			session_destroy(e, e->session_table[i]);
	topic_tree_free(e->tree);
	retain_store_free(e->retained);
	free(e->session_table);
	free(e->heap);
	free(e->hits);
	free(e->retained_matches);
	free(e->scratch);
	free(e);
}

void engine_reconfigure(struct engine *e, const struct engine_config *cfg)
{
	config_apply(e, cfg);
}

int engine_publish(struct engine *e, const uint8_t *topic, size_t topic_len, const void *payload,
		   size_t payload_len, uint8_t qos, bool retain, uint64_t now_ms)
{
	e->now = now_ms;
	if (qos > 2 || !codec_topic_name_valid(topic, topic_len) || payload_len > CODEC_MAX_REMAINING)
		return -1;
	struct emsg *m = emsg_new(e, topic, topic_len, payload, payload_len, NULL, 0, qos, retain, 0,
				  NULL, 0, false);
	if (!m)
		return -1;
	publish_accept(e, m, NULL, 0, false);
	emsg_unref(m);
	return 0;
}

void engine_stats(const struct engine *e, struct engine_stats *out)
{
	*out = e->st;
	out->clients_total = e->table_count;
	out->retained_count = retain_store_count(e->retained);
	out->subscriptions_count = topic_tree_count(e->tree);
}
