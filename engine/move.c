/*
 * move.c - a session moving between cluster nodes (docs/cluster.md,
 * "Sessions across nodes"). A CONNECT waits, once authenticated, while
 * the cluster claims its client id for this node (engine_cluster.claim;
 * the CONNECT is held as for an authentication decision). The node that
 * had the id closes its connection (0x8E) and encodes the session: its
 * terms, its subscriptions and the QoS 1/2 messages it still owes (the
 * in-flight window first, then the queue); this node decodes that before
 * the CONNECT goes on, so the client resumes where it was.
 *
 * The encoding (version 3, integers big-endian, every length checked
 * against what is left: the bytes come from another node through NATS):
 *   "MS" 3, protocol u8, expiry u32, listener u16, user: u8 present,
 *   u16 length, bytes;
 *   u32 subscriptions: u16 length, filter, options u8, sub_id u32;
 *   u32 deliveries: qos u8, flags u8 (1 retain, 2 shared), n u8, n x u32
 *   subscription ids, then the message: u16 topic length, topic, u32
 *   payload length, payload, u32 properties length, properties, u16
 *   origin length, origin client id, qos u8, retain u8, expiry_at u64;
 *   the journal (journal.c): resume u8, time u64 (wall-clock ms), u16
 *   marks: run u64, seq u64; ended u64 (wall-clock ms: when the session's
 *   last connection ended, 0 while it is connected or nothing counts from
 *   it).
 * Versions 1 and 2 (what older nodes wrote) end before the journal's part
 * and before ended.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- the claim: a CONNECT waiting for the cluster ---------------------- */

bool move_claim(struct engine *e, struct engine_conn *c, const uint8_t *cid, size_t len)
{
	if (!e->has_cluster || !e->cluster.claim || c->bridge)
		return false;
	uint64_t id = ++e->claim_seq;
	if (e->cluster.claim(e->cluster.ctx, id, cid, len) < 0)
		return false; /* NATS unreachable: this node serves it alone */
	c->claim = id;
	c->claim_next = e->claims;
	e->claims = c;
	return true;
}

void move_claim_cancel(struct engine *e, struct engine_conn *c)
{
	if (!c->claim)
		return;
	for (struct engine_conn **p = &e->claims; *p; p = &(*p)->claim_next) {
		if (*p == c) {
			*p = c->claim_next;
			break;
		}
	}
	c->claim = 0;
	c->claim_next = NULL;
}

/* ---- encoding ---------------------------------------------------------- */

/* Makes room for n more bytes within max. Returns false when they do not
 * fit (b->oom also set when memory ran out). */
static bool wb_room(struct move_buf *b, size_t n)
{
	if (b->len + n > b->max)
		return false;
	if (b->len + n <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 1024;
	while (cap < b->len + n)
		cap *= 2;
	if (cap > b->max)
		cap = b->max;
	uint8_t *q = realloc(b->p, cap);
	if (!q) {
		b->oom = true;
		return false;
	}
	b->p = q;
	b->cap = cap;
	return true;
}

static void wb_uint(struct move_buf *b, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--)
		b->p[b->len++] = (uint8_t)(v >> (8 * i));
}

static void wb_bytes(struct move_buf *b, const void *p, size_t n)
{
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

/* Appends one delivery. Returns false when it does not fit. */
static bool move_put_delivery(struct move_buf *b, const struct delivery *d)
{
	const struct emsg *m = d->m;
	size_t need = 3 + 4u * d->n_sub_ids + 2 + m->topic_len + 4 + m->payload->len + 4 +
		      m->props_len + 2 + m->origin_len + 2 + 8;
	if (!wb_room(b, need))
		return false;
	wb_uint(b, d->qos, 1);
	wb_uint(b, (d->retain ? 1 : 0) | (d->shared ? 2 : 0), 1);
	wb_uint(b, d->n_sub_ids, 1);
	for (uint8_t i = 0; i < d->n_sub_ids; i++)
		wb_uint(b, d->sub_ids[i], 4);
	wb_uint(b, m->topic_len, 2);
	wb_bytes(b, m->topic, m->topic_len);
	wb_uint(b, m->payload->len, 4);
	wb_bytes(b, m->payload->data, m->payload->len);
	wb_uint(b, m->props_len, 4);
	wb_bytes(b, m->raw_props, m->props_len);
	wb_uint(b, m->origin_len, 2);
	wb_bytes(b, m->origin_id, m->origin_len);
	wb_uint(b, m->qos, 1);
	wb_uint(b, m->retain, 1);
	wb_uint(b, emsg_has_expiry(m) ? m->expiry.at : 0, 8);
	return true;
}

/* When the connection of s ended, as its armed deadlines tell (they
 * count from it: session_detach), or 0 while it is connected or when
 * neither is armed (then nothing depends on it). */
uint64_t move_ended_at(const struct session *s)
{
	if (s->conn)
		return 0;
	if (s->expiry != EXPIRY_NEVER && s->expiry_timer.idx)
		return s->expiry_timer.at - (uint64_t)s->expiry * 1000;
	if (s->will && s->will->t.idx)
		return s->will->t.at - (uint64_t)s->will->delay * 1000;
	return 0;
}

int move_encode(struct engine *e, struct session *s, struct move_buf *b, bool report)
{
	/* a checkpoint (not a hand-over: nothing is missed there) says where
	 * a node that resumes it reads the journal from; its room is kept
	 * before the deliveries take theirs */
	struct journal_trailer t;
	journal_marks(e, s, !report, &t);
	size_t tsize = 1 + 8 + 2 + 16u * t.n + 8;
	size_t need = 3 + 1 + 4 + 2 + 3 + s->user_len + 4 + tsize;
	for (const struct sub *x = s->subs; x; x = x->next)
		need += 2 + x->len + 1 + 4;
	if (!wb_room(b, need))
		return -1;
	wb_bytes(b, "MS\3", 3);
	wb_uint(b, s->version, 1);
	wb_uint(b, s->expiry, 4);
	wb_uint(b, s->listener, 2);
	wb_uint(b, s->user ? 1 : 0, 1);
	wb_uint(b, s->user_len, 2);
	wb_bytes(b, s->user, s->user_len);
	wb_uint(b, s->n_subs, 4);
	/* oldest first, so the new node's list keeps the order */
	const struct sub *last = s->subs;
	while (last && last->next)
		last = last->next;
	for (const struct sub *x = last; x; x = x->prev) {
		wb_uint(b, x->len, 2);
		wb_bytes(b, x->filter, x->len);
		wb_uint(b, x->options, 1);
		wb_uint(b, x->sub_id, 4);
	}
	size_t count_at = b->len;
	if (!wb_room(b, 4 + tsize))
		return -1;
	wb_uint(b, 0, 4);
	b->max -= tsize;
	uint32_t n = 0;
	/* what was in flight and not completed goes again, before the queue */
	for (uint32_t k = 0; k < s->flight_span; k++) {
		const struct slot *sl = flight_at(s, k);
		if (!sl->state || !sl->d.m || sl->state == SLOT_PUBCOMP)
			continue;
		if (move_put_delivery(b, &sl->d))
			n++;
		else if (report)
			event_drop(e, s, sl->d.m, sl->d.qos, MIDGE_DROP_QUEUE_FULL,
				   "larger than a moved session may be (NATS max_payload)");
	}
	for (uint32_t i = 0; i < s->queue_len; i++) {
		const struct delivery *d = &s->queue[(s->queue_head + i) % s->queue_cap];
		if (move_put_delivery(b, d))
			n++;
		else if (report)
			event_drop(e, s, d->m, d->qos, MIDGE_DROP_QUEUE_FULL,
				   "larger than a moved session may be (NATS max_payload)");
	}
	b->max += tsize;
	if (!wb_room(b, tsize))
		return -1;
	wb_uint(b, t.resume, 1);
	wb_uint(b, t.from_ms, 8);
	wb_uint(b, t.n, 2);
	for (uint32_t i = 0; i < t.n; i++) {
		wb_uint(b, t.marks[i].run, 8);
		wb_uint(b, t.marks[i].seq, 8);
	}
	wb_uint(b, move_ended_at(s), 8);
	if (b->oom)
		return -1;
	for (int i = 0; i < 4; i++)
		b->p[count_at + (size_t)i] = (uint8_t)(n >> (24 - 8 * i));
	return 0;
}

int engine_cluster_release(struct engine *e, const uint8_t *cid, size_t len, size_t max,
			   uint8_t **out, size_t *out_len, uint64_t now_ms)
{
	e->now = now_ms;
	*out = NULL;
	*out_len = 0;
	struct session *s = session_find(e, cid, len);
	if (!s)
		return 0;
	if (s->conn) {
		/* [MQTT-3.1.4-3] the same path as a takeover on this node; the
		 * session continues elsewhere, so its will is dropped */
		session_take_over(e, s, false);
	} else {
		event_session(e, MIDGE_EV_SESSION_TAKEOVER, s, NULL, "client id connected on another node");
	}
	int rc = 0;
	if (s->expiry != 0) {
		struct move_buf b = {NULL, 0, 0, max, false};
		if (move_encode(e, s, &b, true) == 0) {
			*out = b.p;
			*out_len = b.len;
		} else {
			free(b.p);
			rc = b.oom ? -1 : 0;
		}
	}
	e->releasing = true;
	session_destroy(e, s);
	e->releasing = false;
	return rc;
}

/* ---- decoding ---------------------------------------------------------- */

struct rbuf_view {
	const uint8_t *p;
	size_t left;
	bool bad;
};

static uint64_t rd_uint(struct rbuf_view *r, int bytes)
{
	if (r->bad || r->left < (size_t)bytes) {
		r->bad = true;
		return 0;
	}
	uint64_t v = 0;
	for (int i = 0; i < bytes; i++)
		v = v << 8 | r->p[i];
	r->p += bytes;
	r->left -= (size_t)bytes;
	return v;
}

static const uint8_t *rd_bytes(struct rbuf_view *r, size_t n)
{
	if (r->bad || r->left < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

/* One delivery into s's queue (checked as a PUBLISH from a client would
 * be). Returns 0, or -1 when the record is invalid or on OOM. */
static int move_get_delivery(struct engine *e, struct session *s, struct rbuf_view *r)
{
	struct delivery d;
	memset(&d, 0, sizeof d);
	d.qos = (uint8_t)rd_uint(r, 1);
	uint8_t flags = (uint8_t)rd_uint(r, 1);
	d.retain = flags & 1;
	d.shared = flags & 2;
	d.n_sub_ids = (uint8_t)rd_uint(r, 1);
	if (r->bad || d.qos < 1 || d.qos > 2 || d.n_sub_ids > ENGINE_SUBIDS)
		return -1;
	for (uint8_t i = 0; i < d.n_sub_ids; i++) {
		d.sub_ids[i] = (uint32_t)rd_uint(r, 4);
		if (!d.sub_ids[i] || d.sub_ids[i] > 268435455u)
			return -1;
	}
	size_t tl = (size_t)rd_uint(r, 2);
	const uint8_t *topic = rd_bytes(r, tl);
	size_t pl = (size_t)rd_uint(r, 4);
	const uint8_t *payload = rd_bytes(r, pl);
	size_t xl = (size_t)rd_uint(r, 4);
	const uint8_t *props = rd_bytes(r, xl);
	size_t ol = (size_t)rd_uint(r, 2);
	const uint8_t *origin = rd_bytes(r, ol);
	uint8_t qos = (uint8_t)rd_uint(r, 1);
	uint8_t retain = (uint8_t)rd_uint(r, 1);
	uint64_t expiry_at = rd_uint(r, 8);
	if (r->bad || qos > 2 || retain > 1 || !tl || !codec_topic_name_valid(topic, tl) ||
	    pl > CODEC_MAX_REMAINING || xl > CODEC_MAX_REMAINING)
		return -1;
	struct codec_props cp;
	if (xl && codec_props_decode(props, (uint32_t)xl, CODEC_PUBLISH, &cp) < 0)
		return -1;
	if (expiry_at && expiry_at <= e->now)
		return 0; /* [MQTT-3.3.2-5] expired on the way */
	d.m = emsg_new(e, topic, tl, payload, pl, xl ? props : NULL, xl, qos, retain, 0, origin, ol,
		       false);
	if (!d.m)
		return -1;
	if (emsg_has_expiry(d.m) && expiry_at)
		d.m->expiry.at = expiry_at; /* the deadline the first node set */
	session_enqueue(e, s, &d); /* takes the reference; past the bounds it drops, with an event */
	return 0;
}

int move_install(struct engine *e, const uint8_t *cid, size_t cid_len, const uint8_t *blob,
		 size_t len, struct session **out, uint64_t *ended_at)
{
	struct rbuf_view r = {blob, len, false};
	const uint8_t *magic = rd_bytes(&r, 3);
	if (!magic || memcmp(magic, "MS", 2) != 0 || magic[2] < 1 || magic[2] > 3)
		return -1;
	bool v2 = magic[2] >= 2;
	struct session *old = session_find(e, cid, cid_len);
	if (old && old->conn)
		return -1;
	if (old) {
		event_session(e, MIDGE_EV_SESSION_DISCARDED, old, NULL, "moved from another node");
		session_destroy(e, old);
	}
	uint8_t version = (uint8_t)rd_uint(&r, 1);
	uint32_t expiry = (uint32_t)rd_uint(&r, 4);
	struct midge_client owner;
	memset(&owner, 0, sizeof owner);
	owner.listener = (uint16_t)rd_uint(&r, 2);
	bool has_user = rd_uint(&r, 1) != 0;
	size_t ul = (size_t)rd_uint(&r, 2);
	const uint8_t *user = rd_bytes(&r, ul);
	if (r.bad || version < CODEC_V31 || version > CODEC_V5 || expiry == 0 ||
	    (has_user && !codec_utf8_valid(user, ul)))
		return -1;
	owner.username.p = has_user ? (const char *)user : NULL;
	owner.username.len = has_user ? ul : 0;
	struct session *s = session_new(e, cid, cid_len);
	if (!s)
		return -1;
	s->version = version;
	s->expiry = expiry;
	uint32_t nsubs = (uint32_t)rd_uint(&r, 4);
	if (r.bad || session_set_owner(s, &owner) < 0)
		goto bad;
	for (uint32_t i = 0; i < nsubs; i++) {
		size_t fl = (size_t)rd_uint(&r, 2);
		const uint8_t *f = rd_bytes(&r, fl);
		uint8_t options = (uint8_t)rd_uint(&r, 1);
		uint32_t sub_id = (uint32_t)rd_uint(&r, 4);
		if (r.bad || !fl || !codec_topic_filter_valid(f, fl) || SUB_QOS(options) > 2 ||
		    (options & 0xC0) || SUB_RH(options) > 2 || sub_id > 268435455u)
			goto bad;
		if (sub_apply(e, s, f, fl, options, sub_id) < 0)
			goto bad;
	}
	uint32_t n = (uint32_t)rd_uint(&r, 4);
	for (uint32_t i = 0; !r.bad && i < n; i++)
		if (move_get_delivery(e, s, &r) < 0)
			goto bad;
	bool resume = v2 && rd_uint(&r, 1) != 0;
	uint64_t from_ms = v2 ? rd_uint(&r, 8) : 0;
	uint32_t nm = v2 ? (uint32_t)rd_uint(&r, 2) : 0;
	const uint8_t *mk = rd_bytes(&r, 16u * nm);
	uint64_t ended = magic[2] >= 3 ? rd_uint(&r, 8) : 0;
	if (r.bad || r.left || nm > JOURNAL_RUNS_MAX + 1)
		goto bad;
	if (resume) {
		struct journal_mark marks[JOURNAL_RUNS_MAX + 1];
		for (uint32_t i = 0; i < nm; i++) {
			struct rbuf_view m = {mk + 16u * i, 16, false};
			marks[i].run = rd_uint(&m, 8);
			marks[i].seq = rd_uint(&m, 8);
		}
		if (journal_resume(e, s, from_ms, marks, nm) < 0)
			goto bad;
	}
	e->st.subscriptions_count = topic_tree_count(e->tree);
	move_touch(e, s); /* this node's checkpoint of it from now on */
	if (out)
		*out = s;
	if (ended_at)
		*ended_at = ended;
	return 0;
bad:
	session_destroy(e, s);
	e->st.subscriptions_count = topic_tree_count(e->tree);
	return -1;
}

int engine_cluster_claimed(struct engine *e, uint64_t claim, const uint8_t *session, size_t len,
			   uint64_t now_ms)
{
	e->now = now_ms;
	struct engine_conn *c = e->claims;
	while (c && c->claim != claim)
		c = c->claim_next;
	if (!c)
		return -1; /* the connection went meanwhile */
	move_claim_cancel(e, c);
	size_t cid_len = 0;
	const uint8_t *cid = connect_held_cid(c, &cid_len);
	if (session && len && cid)
		move_install(e, cid, cid_len, session, len, NULL, NULL); /* invalid: a new session */
	int r = connect_held_finish(e, c, 0, NULL);
	if (e->io.resume)
		e->io.resume(e->io.ctx, c->handle);
	return r;
}
