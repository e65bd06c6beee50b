/*
 * checkpoint.c - every persistent session's copy in the cluster, so that
 * another node can resume it when this one dies (docs/cluster.md, "A node
 * that dies"). A change to what a session's encoding holds (its terms,
 * subscriptions, queue, in-flight window) marks the session, once, in a
 * list; engine_cluster_checkpoint(), called by the cluster on a timer,
 * encodes the marked sessions as a hand-over does (move.c) and gives
 * each to the cluster, which writes it to JetStream. So a session costs
 * one test per change and at most one encoding per interval, however
 * many messages pass through it. When a session ends here (expired,
 * clean start, taken over by another node) its checkpoint is deleted.
 *
 * The other side: a node that claims a client id whose node died reads
 * that node's checkpoint as a moved session (engine_cluster_claimed); the
 * node that reaps the dead node adopts the checkpoints nobody claimed as
 * offline sessions (engine_cluster_adopt), with their pending wills
 * (engine_cluster_adopt_will).
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

void checkpoint_dirty(struct engine *e, struct session *s)
{
	if (s->expiry == 0 && !(s->ck & CK_SAVED))
		return; /* ends with its connection: nothing to keep, nothing to delete */
	if (e->ck_n == e->ck_cap) {
		uint32_t cap = e->ck_cap ? e->ck_cap * 2 : 64;
		struct session **n = realloc(e->ck_dirty, cap * sizeof *n);
		if (!n)
			return; /* the next change tries again; the copy is older meanwhile */
		e->ck_dirty = n;
		e->ck_cap = cap;
	}
	e->ck_dirty[e->ck_n++] = s;
	s->ck = (s->ck & CK_SAVED) | e->ck_n;
}

void checkpoint_forget(struct engine *e, struct session *s)
{
	uint32_t at = s->ck & CK_INDEX;
	if (at && at != CK_INDEX)
		e->ck_dirty[at - 1] = NULL;
	if ((s->ck & CK_SAVED) && e->ck_on)
		e->cluster.checkpoint(e->cluster.ctx, (const uint8_t *)s->cid, s->cid_len, NULL, 0);
	s->ck = CK_INDEX; /* ending: emptying its queue marks nothing */
}

/* Offers s's checkpoint (or its deletion, once it ends with its
 * connection). Returns the bytes offered, or -1 when the cluster's
 * buffer is full. */
static long checkpoint_one(struct engine *e, struct session *s, size_t max)
{
	const uint8_t *cid = (const uint8_t *)s->cid;
	if (s->expiry == 0) {
		if (e->cluster.checkpoint(e->cluster.ctx, cid, s->cid_len, NULL, 0) < 0)
			return -1;
		s->ck &= ~CK_SAVED;
		return 0;
	}
	struct move_buf *b = &e->ck_buf;
	b->len = 0;
	b->max = max;
	b->oom = false;
	if (move_encode(e, s, b, false) < 0)
		return 0; /* its subscriptions alone exceed max: the last copy stays */
	if (e->cluster.checkpoint(e->cluster.ctx, cid, s->cid_len, b->p, b->len) < 0)
		return -1;
	s->ck |= CK_SAVED;
	return (long)b->len;
}

uint32_t engine_cluster_checkpoint(struct engine *e, size_t max, size_t budget, uint64_t now_ms)
{
	e->now = now_ms;
	journal_expire(e);
	if (!e->ck_on)
		return 0;
	uint32_t i = 0, done = 0;
	size_t spent = 0;
	for (; i < e->ck_n && spent < budget; i++) {
		struct session *s = e->ck_dirty[i];
		if (!s)
			continue;
		long n = checkpoint_one(e, s, max);
		if (n < 0)
			break;
		s->ck &= CK_SAVED;
		spent += (size_t)n;
		done++;
	}
	/* the rest, in order, to the front */
	uint32_t left = e->ck_n - i;
	if (left && i)
		memmove(e->ck_dirty, e->ck_dirty + i, left * sizeof *e->ck_dirty);
	e->ck_n = left;
	for (uint32_t k = 0; k < left; k++) {
		if (e->ck_dirty[k])
			e->ck_dirty[k]->ck = (e->ck_dirty[k]->ck & CK_SAVED) | (k + 1);
	}
	if (e->ck_n == 0 && e->ck_cap > 1024) { /* a burst is over: give its room back */
		free(e->ck_dirty);
		e->ck_dirty = NULL;
		e->ck_cap = 0;
	}
	return done;
}

/* An adopted session's deadlines count from when its connection ended;
 * one that was connected when its node died (or that does not say) lost
 * its connection about now. */
static uint64_t adopted_since(uint64_t ended, uint64_t now_ms)
{
	return ended && ended < now_ms ? ended : now_ms;
}

int engine_cluster_adopt(struct engine *e, const uint8_t *cid, size_t len, const uint8_t *state,
			 size_t state_len, uint64_t now_ms)
{
	e->now = now_ms;
	if (session_find(e, cid, len))
		return -1; /* the client connected here since: the newer session stays */
	struct session *s = NULL;
	uint64_t ended = 0;
	if (move_install(e, cid, len, state, state_len, &s, &ended) < 0)
		return -1;
	event_session(e, MIDGE_EV_SESSION_CREATED, s, NULL, "adopted from a node that died");
	session_arm_timers(e, s, adopted_since(ended, now_ms)); /* [MQTT-3.1.2-23] */
	return 0;
}

int engine_cluster_adopt_will(struct engine *e, const uint8_t *cid, size_t len,
			      const struct engine_cluster_msg *v, uint32_t delay, uint64_t now_ms)
{
	e->now = now_ms;
	struct session *s = session_find(e, cid, len);
	if (s && (s->conn || s->will))
		return 0; /* [MQTT-3.1.3-9] connected again, or back from this node's store with its own */
	if (!s || !delay)
		return engine_cluster_will(e, v, now_ms);
	if (v->topic_len == 0 || v->topic_len > UINT16_MAX || v->qos > 2 ||
	    !codec_topic_name_valid(v->topic, v->topic_len) || v->payload_len > UINT32_MAX)
		return -1;
	struct will *w = calloc(1, sizeof *w);
	if (!w)
		return engine_cluster_will(e, v, now_ms);
	w->m = emsg_new(e, v->topic, v->topic_len, v->payload, v->payload_len, v->props,
			v->props_len, v->qos, v->retain, 0, (const uint8_t *)s->cid, s->cid_len, true);
	if (!w->m) {
		free(w);
		return -1;
	}
	w->m->origin = s->serial;
	w->t.kind = T_WILL;
	w->s = s;
	w->delay = delay;
	s->will = w;
	cluster_will(e, s); /* this node keeps it for the cluster now */
	/* [MQTT-3.1.3-9] the delay counts from when the connection ended,
	 * as the adopted session's expiry does (engine_cluster_adopt) */
	uint64_t at = adopted_since(move_ended_at(s), now_ms) + (uint64_t)delay * 1000;
	if (at <= now_ms || timer_set(e, &w->t, at) < 0)
		will_publish(e, s);
	return 0;
}
