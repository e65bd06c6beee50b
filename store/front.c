/*
 * front.c - the engine's store interface (engine/store.h) on the engine's
 * thread: each call becomes an operation of the open batch.
 *
 * Cancellation: a delivery put in flight and acknowledged, a message
 * queued and sent, an incoming QoS 2 id recorded and released, a log
 * entry added and pushed out, all within one open batch, leave nothing to
 * write: the second operation finds the first through an index of the
 * open batch (struct openkey, keyed by kind, session and packet id or
 * sequence) and both are dropped. On a loaded broker most deliveries to
 * connected persistent sessions are acknowledged within the time one
 * commit takes, so most of them never reach the disk, while every one of
 * them that was acknowledged to its publisher was covered by a commit.
 *
 * Message bodies: one row per message id, written when the first
 * reference appears (a queue row, a window row, retained, a log entry)
 * and deleted when the last goes; the references are counted here (struct
 * msgref), so a body written and dropped within one batch is never
 * written either.
 */
#include "store/internal.h"

#include <stdlib.h>
#include <string.h>

static struct store *front_of(void *ctx)
{
	return ctx;
}

/* ---- batch numbers and operations --------------------------------------- */

struct op *front_op(struct store *st, uint8_t kind)
{
	struct batch *b = st->open;
	if (!b->num)
		b->num = ++st->last_num;
	st->stats.changes++;
	return batch_push(b, kind);
}

/* Out of memory in the front: the change is lost for the store. It is
 * counted (store_stats.lost) and the transport logs it: the database may
 * then differ from what was acknowledged. */
static void front_oom(struct store *st)
{
	st->stats.lost++;
}

/* ---- the open batch's index ---------------------------------------------- */

enum { KEY_Q = 1, KEY_F = 2, KEY_IN = 3, KEY_H = 4 };

static uint32_t key_hash(uint8_t kind, int64_t sid, uint64_t n)
{
	uint64_t x = ((uint64_t)sid * UINT64_C(0x9E3779B97F4A7C15)) ^ (n * UINT64_C(0xC2B2AE3D27D4EB4F)) ^
		     kind;
	x ^= x >> 29;
	return (uint32_t)(x ^ (x >> 32));
}

static struct openkey *key_find(struct store *st, uint8_t kind, int64_t sid, uint64_t n)
{
	if (!st->keys_cap || st->keys_gen != st->open->num)
		return NULL;
	uint32_t mask = st->keys_cap - 1;
	for (uint32_t i = key_hash(kind, sid, n) & mask;; i = (i + 1) & mask) {
		struct openkey *k = &st->keys[i];
		if (k->gen != st->keys_gen)
			return NULL;
		if (k->kind == kind && k->sid == sid && k->n == n)
			return k;
	}
}

/* Rebuilds the index in a table of cap cells (the live cells only). */
static int key_rehash(struct store *st, uint32_t cap)
{
	struct openkey *t = calloc(cap, sizeof *t);
	if (!t)
		return -1;
	uint64_t gen = st->open->num;
	for (uint32_t i = 0; i < st->keys_cap; i++) {
		struct openkey *k = &st->keys[i];
		if (k->gen != gen)
			continue;
		uint32_t j = key_hash(k->kind, k->sid, k->n) & (cap - 1);
		while (t[j].gen == gen)
			j = (j + 1) & (cap - 1);
		t[j] = *k;
	}
	free(st->keys);
	st->keys = t;
	st->keys_cap = cap;
	return 0;
}

/* Records that operation op of the open batch is (kind, sid, n). */
static void key_put(struct store *st, uint8_t kind, int64_t sid, uint64_t n, uint32_t op)
{
	uint64_t gen = st->open->num;
	if (st->keys_gen != gen) { /* a new batch: every cell is free again */
		st->keys_gen = gen;
		st->keys_n = 0;
	}
	if (2 * (st->keys_n + 1) > st->keys_cap &&
	    key_rehash(st, st->keys_cap ? st->keys_cap * 2 : 1024) < 0)
		return; /* not cancellable: written, then deleted; still right */
	uint32_t mask = st->keys_cap - 1;
	uint32_t i = key_hash(kind, sid, n) & mask;
	for (;; i = (i + 1) & mask) {
		struct openkey *k = &st->keys[i];
		if (k->gen != gen) {
			st->keys_n++;
			break;
		}
		if (k->kind == kind && k->sid == sid && k->n == n)
			break; /* a later operation on the same key replaces it */
	}
	struct openkey *k = &st->keys[i];
	k->gen = gen;
	k->kind = kind;
	k->sid = sid;
	k->n = n;
	k->op = op;
}

/* The live operation of the open batch keyed (kind, sid, n), or NULL. */
static struct op *key_op(struct store *st, uint8_t kind, int64_t sid, uint64_t n)
{
	struct openkey *k = key_find(st, kind, sid, n);
	if (!k)
		return NULL;
	struct op *op = &st->open->ops[k->op];
	return op->dead ? NULL : op;
}

/* ---- message references ---------------------------------------------------- */

static uint32_t ref_home(uint64_t id, uint32_t cap)
{
	return (uint32_t)((id * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (cap - 1);
}

static struct msgref *ref_find(struct store *st, uint64_t id)
{
	if (!st->refs_n)
		return NULL;
	uint32_t mask = st->refs_cap - 1;
	for (uint32_t i = ref_home(id, st->refs_cap);; i = (i + 1) & mask) {
		if (st->refs[i].id == id)
			return &st->refs[i];
		if (!st->refs[i].id)
			return NULL;
	}
}

static int ref_grow(struct store *st)
{
	uint32_t cap = st->refs_cap ? st->refs_cap * 2 : 1024;
	struct msgref *t = calloc(cap, sizeof *t);
	if (!t)
		return -1;
	for (uint32_t i = 0; i < st->refs_cap; i++) {
		if (!st->refs[i].id)
			continue;
		uint32_t j = ref_home(st->refs[i].id, cap);
		while (t[j].id)
			j = (j + 1) & (cap - 1);
		t[j] = st->refs[i];
	}
	free(st->refs);
	st->refs = t;
	st->refs_cap = cap;
	return 0;
}

/* A new entry for id (not present). NULL on OOM. */
static struct msgref *ref_insert(struct store *st, uint64_t id)
{
	if (2 * (st->refs_n + 1) > st->refs_cap && ref_grow(st) < 0)
		return NULL;
	uint32_t mask = st->refs_cap - 1;
	uint32_t i = ref_home(id, st->refs_cap);
	while (st->refs[i].id)
		i = (i + 1) & mask;
	struct msgref *r = &st->refs[i];
	memset(r, 0, sizeof *r);
	r->id = id;
	st->refs_n++;
	return r;
}

/* Removes r (backward-shift deletion: no tombstones). */
static void ref_remove(struct store *st, struct msgref *r)
{
	uint32_t mask = st->refs_cap - 1;
	uint32_t i = (uint32_t)(r - st->refs);
	for (uint32_t j = (i + 1) & mask; st->refs[j].id; j = (j + 1) & mask) {
		uint32_t h = ref_home(st->refs[j].id, st->refs_cap);
		if (((j - h) & mask) >= ((j - i) & mask)) {
			st->refs[i] = st->refs[j];
			i = j;
		}
	}
	st->refs[i].id = 0;
	st->refs_n--;
}

/* One more reference to m: its body is written with the first. */
static void ref_take(struct store *st, const struct engine_store_msg *m)
{
	struct msgref *r = ref_find(st, m->id);
	if (r) {
		r->refs++;
		return;
	}
	r = ref_insert(st, m->id);
	struct op *op = r ? front_op(st, OP_MSG_PUT) : NULL;
	if (!op || batch_message(st->open, op, &m->v, m->source.client ? &m->source.user : NULL) < 0) {
		if (op)
			batch_kill(st->open, op);
		if (r)
			ref_remove(st, r);
		front_oom(st);
		return;
	}
	op->a = m->id;
	op->qos = m->v.qos;
	op->flags = m->v.retain ? OP_RETAIN : 0;
	if (m->source.client) {
		op->flags |= OP_CLIENT;
		if (m->source.user.p)
			op->flags |= OP_USER;
		op->pid = m->source.listener;
	}
	op->b = m->expiry_at;
	st->open->msgs++;
	r->refs = 1;
	r->batch = st->open->num;
	r->op = (uint32_t)(op - st->open->ops);
}

/* One reference to id less: with the last, the body goes (or is never
 * written, when it still waits in the open batch). */
static void ref_drop(struct store *st, uint64_t id)
{
	struct msgref *r = ref_find(st, id);
	if (!r || !r->refs) {
		st->ref_errors++;
		return;
	}
	if (--r->refs)
		return;
	if (r->batch == st->open->num && r->op < st->open->n &&
	    st->open->ops[r->op].kind == OP_MSG_PUT && st->open->ops[r->op].a == id) {
		batch_kill(st->open, &st->open->ops[r->op]);
		st->open->msgs--;
		st->stats.cancelled += 2;
	} else {
		struct op *op = front_op(st, OP_MSG_DEL);
		if (op)
			op->a = id;
		else
			front_oom(st);
	}
	ref_remove(st, r);
}

int front_refs_load(struct store *st, const struct front_ref *v, size_t n)
{
	size_t live = 0;
	for (size_t i = 0; i < n; i++)
		live += v[i].refs > 0;
	uint32_t cap = 1024;
	while ((size_t)cap < 2 * live + 2)
		cap *= 2;
	free(st->refs);
	st->refs = calloc(cap, sizeof *st->refs);
	if (!st->refs)
		return -1;
	st->refs_cap = cap;
	st->refs_n = 0;
	for (size_t i = 0; i < n; i++) {
		if (!v[i].refs) { /* a body nothing refers to any more: it goes */
			struct op *op = front_op(st, OP_MSG_DEL);
			if (!op)
				return -1;
			op->a = v[i].id;
			continue;
		}
		struct msgref *r = ref_insert(st, v[i].id); /* cannot grow: sized above */
		r->refs = v[i].refs;
		r->batch = 0; /* written long ago */
	}
	return 0;
}

/* ---- sessions ---------------------------------------------------------------- */

struct sess *front_sess_new(struct store *st, int64_t sid)
{
	struct sess *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->sid = sid;
	s->next = st->sessions;
	if (st->sessions)
		st->sessions->prev = s;
	st->sessions = s;
	if (sid >= st->next_sid)
		st->next_sid = sid + 1;
	return s;
}

static void front_sess_free(struct store *st, struct sess *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		st->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	free(s);
}

static void *f_session_saved(void *ctx, void *sess, const struct engine_store_session *rec)
{
	struct store *st = front_of(ctx);
	struct sess *s = sess;
	if (!s && !(s = front_sess_new(st, st->next_sid))) {
		front_oom(st);
		return NULL;
	}
	struct op *op = front_op(st, OP_SESS_PUT);
	if (!op || batch_bytes2(st->open, op, rec->client_id.p, rec->client_id.len, rec->user.p,
				rec->user.p ? rec->user.len : 0) < 0) {
		if (op)
			batch_kill(st->open, op);
		front_oom(st);
		return s;
	}
	op->sid = s->sid;
	op->a = rec->client_id.len;
	op->flags = rec->user.p ? OP_USER : 0;
	op->pid = rec->listener;
	op->c = rec->expiry;
	op->qos = rec->protocol;
	op->b = rec->disconnected_at;
	return s;
}

static void f_session_removed(void *ctx, void *sess)
{
	struct store *st = front_of(ctx);
	struct sess *s = sess;
	struct op *op = front_op(st, OP_SESS_DEL);
	if (op)
		op->sid = s->sid;
	else
		front_oom(st);
	front_sess_free(st, s);
}

static void f_subscription(struct store *st, uint8_t kind, struct sess *s,
			   const struct midge_str *filter, uint8_t options, uint32_t sub_id)
{
	struct op *op = front_op(st, kind);
	if (!op || batch_bytes(st->open, op, filter->p, filter->len) < 0) {
		if (op)
			batch_kill(st->open, op);
		front_oom(st);
		return;
	}
	op->sid = s->sid;
	op->qos = options;
	op->c = sub_id;
}

static void f_subscription_added(void *ctx, void *sess, const struct midge_str *filter,
				 uint8_t options, uint32_t sub_id)
{
	f_subscription(front_of(ctx), OP_SUB_PUT, sess, filter, options, sub_id);
}

static void f_subscription_removed(void *ctx, void *sess, const struct midge_str *filter)
{
	f_subscription(front_of(ctx), OP_SUB_DEL, sess, filter, 0, 0);
}

static void op_delivery(struct op *op, const struct engine_store_delivery *d)
{
	op->qos = d->qos;
	op->flags = (uint8_t)((d->retain ? OP_RETAIN : 0) | (d->shared ? OP_SHARED : 0));
	op->n_sub_ids = d->n_sub_ids;
	memcpy(op->sub_ids, d->sub_ids, sizeof op->sub_ids);
}

static void f_message_queued(void *ctx, void *sess, const struct engine_store_msg *m,
			     const struct engine_store_delivery *d)
{
	struct store *st = front_of(ctx);
	struct sess *s = sess;
	ref_take(st, m);
	uint64_t seq = s->qtail++;
	struct op *op = front_op(st, OP_Q_PUT);
	if (!op) {
		front_oom(st);
		return;
	}
	op->sid = s->sid;
	op->b = seq;
	op->a = m->id;
	op_delivery(op, d);
	key_put(st, KEY_Q, s->sid, seq, (uint32_t)(op - st->open->ops));
}

static void f_message_unqueued(void *ctx, void *sess, uint64_t msg_id)
{
	struct store *st = front_of(ctx);
	struct sess *s = sess;
	uint64_t seq = s->qhead++;
	struct op *put = key_op(st, KEY_Q, s->sid, seq);
	if (put) {
		batch_kill(st->open, put);
		st->stats.cancelled += 2;
	} else {
		struct op *op = front_op(st, OP_Q_DEL);
		if (op) {
			op->sid = s->sid;
			op->b = seq;
		} else {
			front_oom(st);
		}
	}
	ref_drop(st, msg_id);
}

static void f_flight_sent(void *ctx, void *sess, uint16_t pid, const struct engine_store_msg *m,
			  const struct engine_store_delivery *d)
{
	struct store *st = front_of(ctx);
	struct sess *s = sess;
	ref_take(st, m);
	struct op *op = front_op(st, OP_F_PUT);
	if (!op) {
		front_oom(st);
		return;
	}
	op->sid = s->sid;
	op->pid = pid;
	op->b = ++st->flight_seq;
	op->a = m->id;
	op_delivery(op, d);
	op->state = d->qos == 1 ? ENGINE_STORE_AWAIT_PUBACK : ENGINE_STORE_AWAIT_PUBREC;
	key_put(st, KEY_F, s->sid, pid, (uint32_t)(op - st->open->ops));
}

static void f_flight_released(void *ctx, void *sess, uint16_t pid, uint64_t msg_id)
{
	struct store *st = front_of(ctx);
	struct sess *s = sess;
	struct op *put = key_op(st, KEY_F, s->sid, pid);
	if (put) { /* not written yet: written as released */
		put->state = ENGINE_STORE_AWAIT_PUBCOMP;
		put->a = 0;
	} else {
		struct op *op = front_op(st, OP_F_REL);
		if (op) {
			op->sid = s->sid;
			op->pid = pid;
		} else {
			front_oom(st);
		}
	}
	ref_drop(st, msg_id);
}

static void f_flight_done(void *ctx, void *sess, uint16_t pid, uint64_t msg_id)
{
	struct store *st = front_of(ctx);
	struct sess *s = sess;
	struct op *put = key_op(st, KEY_F, s->sid, pid);
	if (put) {
		batch_kill(st->open, put);
		st->stats.cancelled += 2;
	} else {
		struct op *op = front_op(st, OP_F_DEL);
		if (op) {
			op->sid = s->sid;
			op->pid = pid;
		} else {
			front_oom(st);
		}
	}
	if (msg_id)
		ref_drop(st, msg_id);
}

static void f_message_released(void *ctx, uint64_t msg_id)
{
	ref_drop(front_of(ctx), msg_id);
}

static void f_qos2_received(void *ctx, void *sess, uint16_t pid)
{
	struct store *st = front_of(ctx);
	struct sess *s = sess;
	struct op *op = front_op(st, OP_IN_PUT);
	if (!op) {
		front_oom(st);
		return;
	}
	op->sid = s->sid;
	op->pid = pid;
	key_put(st, KEY_IN, s->sid, pid, (uint32_t)(op - st->open->ops));
}

static void f_qos2_released(void *ctx, void *sess, uint16_t pid)
{
	struct store *st = front_of(ctx);
	struct sess *s = sess;
	struct op *put = key_op(st, KEY_IN, s->sid, pid);
	if (put) {
		batch_kill(st->open, put);
		st->stats.cancelled += 2;
		return;
	}
	struct op *op = front_op(st, OP_IN_DEL);
	if (!op) {
		front_oom(st);
		return;
	}
	op->sid = s->sid;
	op->pid = pid;
}

static void f_will_set(void *ctx, void *sess, const struct engine_store_msg *will, uint32_t delay)
{
	struct store *st = front_of(ctx);
	struct sess *s = sess;
	struct op *op = front_op(st, will ? OP_WILL_PUT : OP_WILL_DEL);
	if (!op || (will && batch_message(st->open, op, &will->v, NULL) < 0)) {
		if (op)
			batch_kill(st->open, op);
		front_oom(st);
		return;
	}
	op->sid = s->sid;
	if (will) {
		op->qos = will->v.qos;
		op->flags = will->v.retain ? OP_RETAIN : 0;
		op->c = delay;
	}
}

/* The broker's own topics are published again by the broker at start. */
static bool front_is_sys(const struct midge_str *topic)
{
	return topic->len >= 4 && memcmp(topic->p, "$SYS", 4) == 0;
}

static void f_retained_set(void *ctx, const struct midge_str *topic,
			   const struct engine_store_msg *m, uint64_t old_id)
{
	struct store *st = front_of(ctx);
	if (front_is_sys(topic))
		return;
	if (m)
		ref_take(st, m);
	struct op *op = front_op(st, m ? OP_RET_PUT : OP_RET_DEL);
	if (!op || batch_bytes(st->open, op, topic->p, topic->len) < 0) {
		if (op)
			batch_kill(st->open, op);
		front_oom(st);
	} else if (m) {
		op->a = m->id;
	}
	if (old_id)
		ref_drop(st, old_id);
}

static void f_history_added(void *ctx, const struct midge_str *filter, uint64_t seq, uint64_t at,
			    const struct engine_store_msg *m)
{
	struct store *st = front_of(ctx);
	ref_take(st, m);
	struct op *op = front_op(st, OP_HIST_PUT);
	if (!op || batch_bytes(st->open, op, filter->p, filter->len) < 0) {
		if (op)
			batch_kill(st->open, op);
		front_oom(st);
		return;
	}
	op->b = seq;
	op->a = m->id;
	op->at = at;
	key_put(st, KEY_H, 0, seq, (uint32_t)(op - st->open->ops));
}

static void f_history_removed(void *ctx, const struct midge_str *filter, uint64_t seq,
			      uint64_t msg_id)
{
	struct store *st = front_of(ctx);
	struct op *put = key_op(st, KEY_H, 0, seq);
	if (put) {
		batch_kill(st->open, put);
		st->stats.cancelled += 2;
	} else {
		struct op *op = front_op(st, OP_HIST_DEL);
		if (!op || batch_bytes(st->open, op, filter->p, filter->len) < 0) {
			if (op)
				batch_kill(st->open, op);
			front_oom(st);
		} else {
			op->b = seq;
		}
	}
	ref_drop(st, msg_id);
}

/*
 * The batch that will hold everything reported so far: the open one if it
 * has anything, else the one being written, else the last written (which
 * the engine has reached: nothing waits). Periodic mode: 0, nothing ever
 * waits.
 */
static uint64_t f_ticket(void *ctx)
{
	struct store *st = front_of(ctx);
	if (st->cfg.sync != STORE_SYNC_ACK)
		return 0;
	if (st->open->n)
		return st->open->num;
	return st->work ? st->work->num : st->durable_num;
}

const struct engine_store store_front = {
	.ctx = NULL,
	.session_saved = f_session_saved,
	.session_removed = f_session_removed,
	.subscription_added = f_subscription_added,
	.subscription_removed = f_subscription_removed,
	.message_queued = f_message_queued,
	.message_unqueued = f_message_unqueued,
	.flight_sent = f_flight_sent,
	.flight_released = f_flight_released,
	.flight_done = f_flight_done,
	.message_released = f_message_released,
	.qos2_received = f_qos2_received,
	.qos2_released = f_qos2_released,
	.will_set = f_will_set,
	.retained_set = f_retained_set,
	.history_added = f_history_added,
	.history_removed = f_history_removed,
	.ticket = f_ticket,
};

void front_init(struct store *st)
{
	st->next_sid = 1;
}

void front_free(struct store *st)
{
	while (st->sessions)
		front_sess_free(st, st->sessions);
	free(st->refs);
	st->refs = NULL;
	st->refs_cap = st->refs_n = 0;
	free(st->keys);
	st->keys = NULL;
	st->keys_cap = st->keys_n = 0;
}
