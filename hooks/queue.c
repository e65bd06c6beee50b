/*
 * queue.c - the single-producer single-consumer ring of event records
 * between the engine thread and the hooks thread (see queue.h).
 *
 * Memory order: the producer fills a record, then stores head with
 * release; the consumer loads head with acquire before reading records up
 * to it. The consumer stores tail with release when it is done with
 * records; the producer loads tail with acquire before reusing their bytes
 * and releasing what they hold. Nothing else is shared.
 */
#include "hooks/queue.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "hooks/render.h"

/* The strings a record carries, in this order after its head. */
enum {
	S_CID,     /* client.client_id */
	S_USER,    /* client.username */
	S_PEER,    /* client.peer_addr (with its NUL) */
	S_WHY,     /* the event's `why` (with its NUL) */
	S_VIEW,    /* subscribe.filter, message.to or acl.topic */
	S_TOPIC,   /* a copied message (no holder): topic, */
	S_PAYLOAD, /* payload, */
	S_PROPS,   /* properties, */
	S_ORIGIN,  /* origin */
	S__COUNT
};

#define S_NONE UINT32_MAX /* a NULL pointer */

enum {
	R_CLIENT = 1, /* the event names a client */
	R_TLS = 2,
	R_MSG = 4,    /* a message event with its message */
	R_HELD = 8,   /* the message is held (else copied: S_TOPIC...) */
	R_DUP = 16,
	R_RETAIN = 32, /* of a copied message */
};

typedef char ev_union[sizeof(((struct midge_event *)0)->u)];

/*
 * An event record: the scalars of the event (its union is copied whole;
 * the pointers in it are stale and rewritten by the reader), then the
 * strings. Kept small: the engine thread writes one per event, and the
 * other thread reads it from another core's cache.
 */
struct rec_head {
	uint32_t size; /* the whole record, a multiple of 8 */
	uint8_t kind;
	uint8_t type;
	uint8_t flags;
	uint8_t protocol;
	uint64_t seq;
	uint64_t time_ms;
	void *msg;
	uint32_t held_bytes; /* what the held message counts against max_held */
	uint16_t peer_port;
	uint16_t msg_pid;    /* the view's packet_id; also a copied message's qos below */
	uint8_t msg_qos;     /* of a copied message */
	uint8_t pad[7];
	_Alignas(8) ev_union u;
	uint32_t len[S__COUNT];
};

struct rec_drops {
	uint32_t size;
	uint8_t kind;
	uint8_t pad[3];
	uint64_t drops[HOOKS_MAX_ENDPOINTS];
};

/* Refusals of a full ring before it looks at the consumer's tail again. */
#define QUEUE_FULL_SKIP 64

#define ALIGN8(n) (((n) + 7) & ~(size_t)7)

int hooks_queue_init(struct hooks_queue *q, size_t bytes, const struct hooks_holder *holder)
{
	memset(q, 0, sizeof *q);
	size_t size = 64 * 1024;
	while (size < bytes && size < ((size_t)1 << 40))
		size *= 2;
	q->buf = malloc(size);
	if (!q->buf)
		return -1;
	q->size = size;
	q->max_held = size;
	if (holder)
		q->holder = *holder;
	atomic_init(&q->head, 0);
	atomic_init(&q->tail, 0);
	atomic_init(&q->sleeping, false);
	return 0;
}

static struct rec_head *rec_at(const struct hooks_queue *q, uint64_t pos)
{
	return (struct rec_head *)(void *)(q->buf + (pos & (q->size - 1)));
}

/* Releases what the records in [reclaim, upto) hold. */
static void queue_release(struct hooks_queue *q, uint64_t upto)
{
	while (q->reclaim < upto) {
		struct rec_head *r = rec_at(q, q->reclaim);
		if (r->kind == HOOKS_REC_EVENT && (r->flags & R_HELD)) {
			q->holder.release(r->msg);
			q->held -= r->held_bytes;
		}
		q->reclaim += r->size;
	}
}

void hooks_queue_reclaim(struct hooks_queue *q)
{
	if (!q->buf)
		return;
	q->full_skip = 0;
	queue_release(q, atomic_load_explicit(&q->tail, memory_order_acquire));
}

bool hooks_queue_busy(struct hooks_queue *q)
{
	return q->buf && atomic_load_explicit(&q->tail, memory_order_acquire) != q->wpos;
}

void hooks_queue_free(struct hooks_queue *q)
{
	if (!q->buf)
		return;
	/* The consumer has stopped: whatever it did not read is given back
	 * too. */
	queue_release(q, q->wpos);
	free(q->buf);
	q->buf = NULL;
}

/* Room for n contiguous bytes at the write position (after a wrap record
 * if they do not fit before the end of the ring): a pointer, or NULL. */
static uint8_t *queue_reserve(struct hooks_queue *q, size_t n)
{
	size_t off = (size_t)(q->wpos & (q->size - 1));
	size_t need = off + n > q->size ? q->size - off + n : n;
	if (n > q->size / 2)
		return NULL;
	if (q->size - (q->wpos - q->reclaim) < need) {
		/* Full. Looking at the consumer's tail is a cache miss on a
		 * line it writes: while it is this far behind, look at most
		 * every QUEUE_FULL_SKIP refusals (and on hooks_queue_reclaim()). */
		if (q->full_skip) {
			q->full_skip--;
			return NULL;
		}
		queue_release(q, atomic_load_explicit(&q->tail, memory_order_acquire));
		if (q->size - (q->wpos - q->reclaim) < need) {
			q->full_skip = QUEUE_FULL_SKIP;
			return NULL;
		}
	}
	if (off + n > q->size) {
		struct rec_head *w = rec_at(q, q->wpos);
		w->size = (uint32_t)(q->size - off);
		w->kind = HOOKS_REC_WRAP;
		q->wpos += q->size - off;
	}
	return q->buf + (q->wpos & (q->size - 1));
}

/*
 * Where each event type keeps its `why` (a C string) and its view (the
 * subscription filter, the receiver of a message, the topic an ACL
 * refused), as offsets into
 * struct midge_event; 0 where it has none. Tables, not a switch: put runs
 * for every event the sockets want.
 */
#define EV_OFF(field) ((uint8_t)offsetof(struct midge_event, field))
static const uint8_t why_at[MIDGE_EV__COUNT] = {
	[MIDGE_EV_CONNECT] = EV_OFF(u.connect.why),
	[MIDGE_EV_CONNECT_REFUSED] = EV_OFF(u.connect.why),
	[MIDGE_EV_DISCONNECT] = EV_OFF(u.disconnect.why),
	[MIDGE_EV_PROTOCOL_ERROR] = EV_OFF(u.disconnect.why),
	[MIDGE_EV_SESSION_CREATED] = EV_OFF(u.session.why),
	[MIDGE_EV_SESSION_RESUMED] = EV_OFF(u.session.why),
	[MIDGE_EV_SESSION_TAKEOVER] = EV_OFF(u.session.why),
	[MIDGE_EV_SESSION_EXPIRED] = EV_OFF(u.session.why),
	[MIDGE_EV_SESSION_DISCARDED] = EV_OFF(u.session.why),
	[MIDGE_EV_PUBLISH] = EV_OFF(u.message.why),
	[MIDGE_EV_DELIVER] = EV_OFF(u.message.why),
	[MIDGE_EV_ACKED] = EV_OFF(u.message.why),
	[MIDGE_EV_DROP] = EV_OFF(u.message.why),
	[MIDGE_EV_WILL] = EV_OFF(u.message.why),
	[MIDGE_EV_RETAIN_SET] = EV_OFF(u.message.why),
	[MIDGE_EV_RETAIN_CLEAR] = EV_OFF(u.message.why),
	[MIDGE_EV_ACL_DENIED] = EV_OFF(u.acl.why),
	[MIDGE_EV_STORE] = EV_OFF(u.store.why),
};
static const uint8_t view_at[MIDGE_EV__COUNT] = {
	[MIDGE_EV_SUBSCRIBE] = EV_OFF(u.subscribe.filter),
	[MIDGE_EV_UNSUBSCRIBE] = EV_OFF(u.subscribe.filter),
	[MIDGE_EV_PUBLISH] = EV_OFF(u.message.to),
	[MIDGE_EV_DELIVER] = EV_OFF(u.message.to),
	[MIDGE_EV_ACKED] = EV_OFF(u.message.to),
	[MIDGE_EV_DROP] = EV_OFF(u.message.to),
	[MIDGE_EV_WILL] = EV_OFF(u.message.to),
	[MIDGE_EV_RETAIN_SET] = EV_OFF(u.message.to),
	[MIDGE_EV_RETAIN_CLEAR] = EV_OFF(u.message.to),
	[MIDGE_EV_ACL_DENIED] = EV_OFF(u.acl.topic),
};

/* Lengths above what a record may hold are refused (the event is
 * dropped) rather than cut: a record is the event, whole. */
#define STR_MAX (UINT32_MAX / 2)

/* A string to copy: bytes and length, S_NONE for a NULL pointer. */
struct str_src {
	const void *p;
	uint32_t len;
};

/* A view (may be empty); adds its length to *total. */
static void str_view(struct str_src *s, const void *p, size_t n, size_t *total)
{
	s->p = p;
	s->len = p ? (n > STR_MAX ? STR_MAX + 1 : (uint32_t)n) : S_NONE;
	*total += p ? n : 0;
}

/* A C string, copied with its NUL. */
static void str_c(struct str_src *s, const char *p, size_t *total)
{
	str_view(s, p, p ? strlen(p) + 1 : 0, total);
}

int hooks_queue_put(struct hooks_queue *q, const struct midge_event *ev, void *msg,
		    uint64_t seq)
{
	unsigned t = (unsigned)ev->type;
	if (t >= MIDGE_EV__COUNT)
		return -1;
	const struct midge_client *cl = ev->client;
	const struct midge_message *m = hooks_event_has_message(ev->type) ? ev->u.message.msg : NULL;
	bool held = m && msg && q->holder.hold;
	struct str_src s[S__COUNT];
	size_t strings = 0;
	for (int i = 0; i < S__COUNT; i++)
		s[i].len = S_NONE;
	if (cl) {
		str_view(&s[S_CID], cl->client_id.p, cl->client_id.len, &strings);
		str_view(&s[S_USER], cl->username.p, cl->username.len, &strings);
		str_c(&s[S_PEER], cl->peer_addr, &strings);
	}
	if (why_at[t])
		str_c(&s[S_WHY], *(const char *const *)(const void *)((const char *)ev + why_at[t]),
		      &strings);
	if (view_at[t]) {
		const struct midge_str *v =
		    (const struct midge_str *)(const void *)((const char *)ev + view_at[t]);
		str_view(&s[S_VIEW], v->p, v->len, &strings);
	}
	if (m && !held) {
		str_view(&s[S_TOPIC], m->topic.p, m->topic.len, &strings);
		str_view(&s[S_PAYLOAD], m->payload, m->payload_len, &strings);
		str_view(&s[S_PROPS], m->props, m->props_len, &strings);
		str_view(&s[S_ORIGIN], m->origin.p, m->origin.len, &strings);
	}
	if (strings > STR_MAX)
		return -1;
	uint64_t held_bytes = held ? m->topic.len + m->payload_len + m->props_len : 0;
	if (held && (held_bytes > UINT32_MAX || q->held + held_bytes > q->max_held)) {
		hooks_queue_reclaim(q);
		if (held_bytes > UINT32_MAX || q->held + held_bytes > q->max_held)
			return -1;
	}
	size_t size = ALIGN8(sizeof(struct rec_head) + strings);
	size_t dsize = q->has_drops_pending ? sizeof(struct rec_drops) : 0;
	/* Both in one reservation: the drops must reach the consumer before
	 * the next event, or its `dropped` field would run late. */
	uint8_t *p = queue_reserve(q, dsize + size);
	if (!p)
		return -1;
	if (dsize) {
		struct rec_drops *d = (struct rec_drops *)(void *)p;
		d->size = (uint32_t)dsize;
		d->kind = HOOKS_REC_DROPS;
		memcpy(d->drops, q->drops_pending, sizeof d->drops);
		memset(q->drops_pending, 0, sizeof q->drops_pending);
		q->has_drops_pending = false;
		p += dsize;
	}
	struct rec_head *r = (struct rec_head *)(void *)p;
	r->size = (uint32_t)size;
	r->kind = HOOKS_REC_EVENT;
	r->type = (uint8_t)t;
	r->flags = (uint8_t)((cl ? R_CLIENT : 0) | (cl && cl->tls ? R_TLS : 0) | (m ? R_MSG : 0) |
			     (held ? R_HELD : 0) | (m && m->dup ? R_DUP : 0) |
			     (m && m->retain ? R_RETAIN : 0));
	r->protocol = cl ? cl->protocol : 0;
	r->seq = seq;
	r->time_ms = ev->time_ms;
	r->msg = held ? msg : NULL;
	r->held_bytes = (uint32_t)held_bytes;
	r->peer_port = cl ? cl->peer_port : 0;
	r->msg_pid = m ? m->packet_id : 0;
	r->msg_qos = m ? m->qos : 0;
	memcpy(r->u, &ev->u, sizeof r->u);
	uint8_t *o = p + sizeof *r;
	for (int i = 0; i < S__COUNT; i++) {
		r->len[i] = s[i].len;
		if (s[i].len != S_NONE && s[i].len) {
			memcpy(o, s[i].p, s[i].len);
			o += s[i].len;
		}
	}
	if (held) {
		q->holder.hold(msg);
		q->held += held_bytes;
	}
	q->wpos += dsize + size;
	atomic_store_explicit(&q->head, q->wpos, memory_order_release);
	return 0;
}

void hooks_queue_drop(struct hooks_queue *q, uint32_t sockets)
{
	for (int i = 0; i < HOOKS_MAX_ENDPOINTS; i++) {
		if (sockets & (1u << i)) {
			q->drops_pending[i]++;
			q->has_drops_pending = true;
		}
	}
}

bool hooks_queue_ready(struct hooks_queue *q)
{
	if (q->rpos != q->head_seen)
		return true;
	q->head_seen = atomic_load_explicit(&q->head, memory_order_acquire);
	return q->rpos != q->head_seen;
}

bool hooks_queue_ready_sc(struct hooks_queue *q)
{
	q->head_seen = atomic_load_explicit(&q->head, memory_order_seq_cst);
	return q->rpos != q->head_seen;
}

/* Points *v at the next string of the record (NULL when absent). */
static const uint8_t *str_take(const uint8_t *o, uint32_t len, const void **v)
{
	*v = len == S_NONE ? NULL : o;
	return len == S_NONE ? o : o + len;
}

bool hooks_queue_peek(struct hooks_queue *q, struct hooks_rec_view *out)
{
	for (;;) {
		if (!hooks_queue_ready(q))
			return false;
		const struct rec_head *r = rec_at(q, q->rpos);
		if (r->kind == HOOKS_REC_WRAP) {
			q->rpos += r->size;
			continue;
		}
		out->kind = r->kind;
		if (r->kind == HOOKS_REC_DROPS) {
			out->drops = ((const struct rec_drops *)(const void *)r)->drops;
			return true;
		}
		const void *s[S__COUNT];
		const uint8_t *o = (const uint8_t *)(r + 1);
		for (int i = 0; i < S__COUNT; i++)
			o = str_take(o, r->len[i], &s[i]);
		out->seq = r->seq;
		memset(&out->ev, 0, sizeof out->ev);
		out->ev.type = (enum midge_event_type)r->type;
		out->ev.time_ms = r->time_ms;
		memcpy(&out->ev.u, r->u, sizeof r->u);
		out->ev.client = NULL;
		if (r->flags & R_CLIENT) {
			memset(&out->client, 0, sizeof out->client);
			out->client.client_id.p = s[S_CID];
			out->client.client_id.len = s[S_CID] ? r->len[S_CID] : 0;
			out->client.username.p = s[S_USER];
			out->client.username.len = s[S_USER] ? r->len[S_USER] : 0;
			out->client.peer_addr = s[S_PEER];
			out->client.peer_port = r->peer_port;
			out->client.protocol = r->protocol;
			out->client.tls = (r->flags & R_TLS) != 0;
			out->ev.client = &out->client;
		}
		if (why_at[r->type])
			*(const char **)(void *)((char *)&out->ev + why_at[r->type]) = s[S_WHY];
		if (view_at[r->type])
			((struct midge_str *)(void *)((char *)&out->ev + view_at[r->type]))->p =
			    s[S_VIEW];
		if (hooks_event_has_message(out->ev.type))
			out->ev.u.message.msg = r->flags & R_MSG ? &out->msg : NULL;
		if (r->flags & R_HELD) {
			q->holder.view(r->msg, &out->msg);
		} else if (r->flags & R_MSG) {
			memset(&out->msg, 0, sizeof out->msg);
			out->msg.topic.p = s[S_TOPIC];
			out->msg.topic.len = s[S_TOPIC] ? r->len[S_TOPIC] : 0;
			out->msg.payload = s[S_PAYLOAD];
			out->msg.payload_len = s[S_PAYLOAD] ? r->len[S_PAYLOAD] : 0;
			out->msg.props = s[S_PROPS];
			out->msg.props_len = s[S_PROPS] ? r->len[S_PROPS] : 0;
			out->msg.origin.p = s[S_ORIGIN];
			out->msg.origin.len = s[S_ORIGIN] ? r->len[S_ORIGIN] : 0;
			out->msg.qos = r->msg_qos;
			out->msg.retain = (r->flags & R_RETAIN) != 0;
		}
		out->msg.packet_id = r->msg_pid;
		out->msg.dup = (r->flags & R_DUP) != 0;
		return true;
	}
}

void hooks_queue_pop(struct hooks_queue *q, bool publish)
{
	q->rpos += rec_at(q, q->rpos)->size;
	if (publish)
		atomic_store_explicit(&q->tail, q->rpos, memory_order_release);
}

void hooks_queue_publish(struct hooks_queue *q)
{
	atomic_store_explicit(&q->tail, q->rpos, memory_order_release);
}
