/*
 * restore.c - rebuilding the engine from a store at start-up
 * (engine/store.h): messages by their stable id (one struct emsg per id,
 * however many queues hold it), then sessions and what refers to them,
 * retained messages and replay logs; at the end, deadlines by wall-clock
 * time.
 *
 * Every record is checked as if it came from the network: a store that is
 * damaged must stop the start-up with a reason, never crash the engine or
 * make it hold what it could not have accepted.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

struct restore_msg {
	uint64_t id;
	struct emsg *m;
};

struct restore_session {
	struct session *s;
	uint64_t ended_at; /* 0: connected when the broker stopped */
};

struct restore {
	/* by id, ascending as they come (engine_restore_message): queues refer
	 * to messages mostly in that order, so a look-up is usually the next
	 * cell after the last one found, and never a random probe of a table
	 * as large as the store */
	struct restore_msg *msgs;
	uint32_t n, cap, cursor;
	struct restore_session *sessions;
	uint32_t n_sessions, cap_sessions;
	struct session *last; /* the session looked up last: rows come grouped */
};

static struct emsg *restore_msg_get(struct restore *r, uint64_t id)
{
	if (!id || !r->n)
		return NULL;
	for (uint32_t k = r->cursor; k < r->n && k <= r->cursor + 1; k++)
		if (r->msgs[k].id == id) {
			r->cursor = k;
			return r->msgs[k].m;
		}
	uint32_t lo = 0, hi = r->n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (r->msgs[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < r->n && r->msgs[lo].id == id) {
		r->cursor = lo;
		return r->msgs[lo].m;
	}
	return NULL;
}

/* Appends id (greater than every id so far). Returns 0 or -1 on OOM. */
static int restore_msg_put(struct restore *r, uint64_t id, struct emsg *m)
{
	if (r->n == r->cap) {
		uint32_t cap = r->cap ? r->cap * 2 : 1024;
		struct restore_msg *v = realloc(r->msgs, cap * sizeof *v);
		if (!v)
			return -1;
		r->msgs = v;
		r->cap = cap;
	}
	r->msgs[r->n].id = id;
	r->msgs[r->n].m = m;
	r->n++;
	return 0;
}

int engine_restore_begin(struct engine *e, uint64_t now_ms)
{
	e->now = now_ms;
	if (e->restore)
		return 0;
	/* Stored messages keep their ids: one made before (the embedding
	 * API's midge_publish before midge_run) could carry the same one. */
	if (e->msg_ids || e->table_count)
		return -1;
	e->restore = calloc(1, sizeof *e->restore);
	return e->restore ? 0 : -1;
}

void engine_restore_abort(struct engine *e)
{
	struct restore *r = e->restore;
	if (!r)
		return;
	for (uint32_t i = 0; i < r->n; i++)
		emsg_unref(r->msgs[i].m);
	free(r->msgs);
	free(r->sessions);
	free(r);
	e->restore = NULL;
}

/* Fails a restore call: *why says which record is wrong. */
static int restore_bad(const char **why, const char *text)
{
	*why = text;
	return -1;
}

/* Checks a stored message as a PUBLISH (or will) from a client would be
 * checked, and makes it. Returns 0 with *out, or -1 with *why. */
static int restore_make(struct engine *e, const struct engine_restore_msg *rm, bool will,
			struct emsg **out, const char **why)
{
	struct codec_props props;
	if (rm->topic_len > UINT16_MAX || !codec_topic_name_valid(rm->topic, rm->topic_len))
		return restore_bad(why, "a message topic is not a valid topic name");
	if (rm->qos > 2)
		return restore_bad(why, "a message QoS is not 0, 1 or 2");
	if (rm->payload_len > CODEC_MAX_REMAINING || rm->props_len > CODEC_MAX_REMAINING ||
	    rm->origin_len > UINT16_MAX)
		return restore_bad(why, "a message is larger than MQTT allows");
	if (rm->props_len) {
		int rc = will ? codec_props_decode_will(rm->props, (uint32_t)rm->props_len, &props)
			      : codec_props_decode(rm->props, (uint32_t)rm->props_len, CODEC_PUBLISH,
						   &props);
		if (rc < 0)
			return restore_bad(why, "message properties do not decode");
	}
	if (!will && rm->source.client && rm->source.user.p &&
	    (rm->source.user.len > UINT16_MAX ||
	     !codec_utf8_valid((const uint8_t *)rm->source.user.p, rm->source.user.len)))
		return restore_bad(why, "a message's publisher has an invalid user name");
	/* a client's message keeps a publisher that no session of this run
	 * is (no-local compares serials), so check_retain_source still asks
	 * about it; the broker's stays 0 */
	uint64_t origin = !will && rm->source.client ? EMSG_ORIGIN_RESTORED : 0;
	struct emsg *m = emsg_new(e, rm->topic, rm->topic_len, rm->payload, rm->payload_len,
				  rm->props, rm->props_len, rm->qos, rm->retain, origin, rm->origin,
				  rm->origin_len, will);
	if (!m)
		return restore_bad(why, "out of memory");
	if (origin) {
		struct midge_client from;
		memset(&from, 0, sizeof from);
		from.username = rm->source.user;
		from.listener = rm->source.listener;
		if (emsg_set_source(m, &from) < 0) {
			emsg_unref(m);
			return restore_bad(why, "out of memory");
		}
	}
	if (rm->id) { /* the message keeps its own id, not the fresh one emsg_new took */
		e->msg_ids--;
		m->id = rm->id;
		if (rm->id > e->msg_ids)
			e->msg_ids = rm->id;
	}
	if (rm->expiry_at && !will) {
		m->expiry.kind = T_RETAINED; /* has an expiry: its deadline as stored */
		m->expiry.at = rm->expiry_at;
	}
	*out = m;
	return 0;
}

int engine_restore_message(struct engine *e, const struct engine_restore_msg *rm, const char **why)
{
	struct restore *r = e->restore;
	struct emsg *m;
	if (!rm->id)
		return restore_bad(why, "a message has id 0");
	if (r->n && rm->id <= r->msgs[r->n - 1].id)
		return restore_bad(why, "message ids are repeated or not in ascending order");
	if (restore_make(e, rm, false, &m, why) < 0)
		return -1;
	if (restore_msg_put(r, rm->id, m) < 0) { /* ownership: the table holds m until the end */
		emsg_unref(m);
		return restore_bad(why, "out of memory");
	}
	return 0;
}

int engine_restore_session(struct engine *e, const struct engine_store_session *rs, void *handle,
			   const char **why)
{
	struct restore *r = e->restore;
	const uint8_t *cid = (const uint8_t *)rs->client_id.p;
	size_t len = rs->client_id.len;
	if (bridge_is_key(&rs->client_id)) /* a bridge's queue (bridge.c) */
		return bridge_restore_session(e, rs, handle, why);
	if (len > UINT16_MAX || !codec_utf8_valid(cid, len))
		return restore_bad(why, "a client id is not a valid MQTT string");
	if (rs->protocol < CODEC_V31 || rs->protocol > CODEC_V5)
		return restore_bad(why, "a session has an unknown protocol level");
	if (rs->expiry == 0)
		return restore_bad(why, "a stored session has session expiry 0");
	if (session_find(e, cid, len))
		return restore_bad(why, "two sessions have the same client id");
	if (rs->user.p && (rs->user.len > UINT16_MAX ||
			   !codec_utf8_valid((const uint8_t *)rs->user.p, rs->user.len)))
		return restore_bad(why, "a session's user name is not a valid MQTT string");
	if (r->n_sessions == r->cap_sessions) {
		uint32_t cap = r->cap_sessions ? r->cap_sessions * 2 : 64;
		struct restore_session *v = realloc(r->sessions, cap * sizeof *v);
		if (!v)
			return restore_bad(why, "out of memory");
		r->sessions = v;
		r->cap_sessions = cap;
	}
	struct session *s = session_new(e, cid, len);
	if (!s)
		return restore_bad(why, "out of memory");
	s->version = rs->protocol;
	s->expiry = rs->expiry;
	/* its owner, whom the receive ACL asks about while it is offline */
	struct midge_client owner;
	memset(&owner, 0, sizeof owner);
	owner.username = rs->user;
	owner.listener = rs->listener;
	if (session_set_owner(s, &owner) < 0) {
		session_destroy(e, s);
		return restore_bad(why, "out of memory");
	}
	s->store = handle;
	r->sessions[r->n_sessions].s = s;
	r->sessions[r->n_sessions].ended_at = rs->disconnected_at;
	r->n_sessions++;
	r->last = s;
	return 0;
}

/* The restored session of client_id. Returns NULL with *why. */
static struct session *restore_session_of(struct engine *e, const struct midge_str *cid,
					  const char **why)
{
	struct restore *r = e->restore;
	if (r->last && r->last->cid_len == cid->len && memcmp(r->last->cid, cid->p, cid->len) == 0)
		return r->last;
	struct session *s = session_find(e, (const uint8_t *)cid->p, cid->len);
	if (!s)
		*why = "a record names a session that is not stored";
	else
		r->last = s;
	return s;
}

int engine_restore_subscription(struct engine *e, const struct midge_str *cid,
				const struct midge_str *filter, uint8_t options, uint32_t sub_id,
				const char **why)
{
	struct session *s = restore_session_of(e, cid, why);
	const uint8_t *f = (const uint8_t *)filter->p;
	if (!s)
		return -1;
	if (filter->len > UINT16_MAX || !codec_topic_filter_valid(f, filter->len))
		return restore_bad(why, "a subscription filter is not valid");
	if (SUB_QOS(options) > 2 || (options & 0xC0) || SUB_RH(options) > 2 || sub_id > 268435455u)
		return restore_bad(why, "a subscription has invalid options");
	if (sub_apply(e, s, f, filter->len, options, sub_id) < 0)
		return restore_bad(why, "out of memory");
	return 0;
}

/* A stored delivery as the engine's. Returns 0 or -1 with *why. */
static int restore_delivery(const struct engine_store_delivery *sd, struct emsg *m,
			    struct delivery *d, const char **why)
{
	if (sd->qos < 1 || sd->qos > 2 || sd->n_sub_ids > ENGINE_SUBIDS)
		return restore_bad(why, "a stored delivery has invalid options");
	memset(d, 0, sizeof *d);
	d->m = m;
	d->qos = sd->qos;
	d->retain = sd->retain;
	d->shared = sd->shared;
	d->n_sub_ids = sd->n_sub_ids;
	for (uint8_t i = 0; i < sd->n_sub_ids; i++) {
		if (!sd->sub_ids[i] || sd->sub_ids[i] > 268435455u)
			return restore_bad(why, "a stored delivery has an invalid subscription id");
		d->sub_ids[i] = sd->sub_ids[i];
	}
	return 0;
}

int engine_restore_queued(struct engine *e, const struct midge_str *cid, uint64_t msg_id,
			  const struct engine_store_delivery *sd, const char **why)
{
	struct emsg *m = restore_msg_get(e->restore, msg_id);
	if (!m)
		return restore_bad(why, "a queued delivery names a message that is not stored");
	if (bridge_is_key(cid)) {
		struct engine_bridge *b = bridge_restored(e, cid, why);
		return b ? bridge_restore_queued(e, b, m, sd, why) : -1;
	}
	struct session *s = restore_session_of(e, cid, why);
	struct delivery d;
	if (!s)
		return -1;
	if (restore_delivery(sd, m, &d, why) < 0)
		return -1;
	uint32_t before = s->queue_len;
	emsg_ref(m);
	session_enqueue(e, s, &d); /* within the queue's bounds: past them it drops, with an event */
	return s->queue_len > before ? 0 : 1;
}

int engine_restore_flight(struct engine *e, const struct midge_str *cid, uint16_t pid,
			  enum engine_store_flight state, uint64_t msg_id,
			  const struct engine_store_delivery *sd, const char **why)
{
	struct delivery d;
	struct emsg *m = msg_id ? restore_msg_get(e->restore, msg_id) : NULL;
	if (state < ENGINE_STORE_AWAIT_PUBACK || state > ENGINE_STORE_AWAIT_PUBCOMP)
		return restore_bad(why, "an in-flight delivery has an unknown state");
	if (state != ENGINE_STORE_AWAIT_PUBCOMP && !m)
		return restore_bad(why, "an in-flight delivery names a message that is not stored");
	if (restore_delivery(sd, m, &d, why) < 0)
		return -1;
	if ((state == ENGINE_STORE_AWAIT_PUBACK) != (d.qos == 1))
		return restore_bad(why, "an in-flight delivery's state does not fit its QoS");
	if (bridge_is_key(cid)) {
		struct engine_bridge *b = bridge_restored(e, cid, why);
		if (!b)
			return -1;
		uint8_t st = state == ENGINE_STORE_AWAIT_PUBACK ? SLOT_PUBACK
			     : state == ENGINE_STORE_AWAIT_PUBREC ? SLOT_PUBREC : SLOT_PUBCOMP;
		return bridge_restore_flight(e, b, pid, st, state == ENGINE_STORE_AWAIT_PUBCOMP ? NULL : m,
					     sd, why);
	}
	struct session *s = restore_session_of(e, cid, why);
	if (!s)
		return -1;
	struct slot *sl = flight_place(s, pid);
	if (!sl)
		return restore_bad(why, "in-flight packet ids are repeated, out of order or 0");
	if (state == ENGINE_STORE_AWAIT_PUBCOMP)
		d.m = NULL; /* PUBREL sent: the body is not needed */
	else
		emsg_ref(m);
	sl->d = d;
	sl->state = state == ENGINE_STORE_AWAIT_PUBACK ? SLOT_PUBACK
		    : state == ENGINE_STORE_AWAIT_PUBREC ? SLOT_PUBREC : SLOT_PUBCOMP;
	flight_commit(e, s);
	return 0;
}

int engine_restore_qos2(struct engine *e, const struct midge_str *cid, uint16_t pid,
			const char **why)
{
	struct session *s = restore_session_of(e, cid, why);
	if (!s)
		return -1;
	if (!pid || rel_has(s, pid))
		return restore_bad(why, "an incoming QoS 2 id is 0 or repeated");
	if (rel_insert(s, pid) < 0)
		return restore_bad(why, "out of memory");
	return 0;
}

int engine_restore_will(struct engine *e, const struct midge_str *cid,
			const struct engine_restore_msg *rm, uint32_t delay, const char **why)
{
	struct session *s = restore_session_of(e, cid, why);
	struct emsg *m;
	if (!s)
		return -1;
	if (s->will)
		return restore_bad(why, "a session has two wills");
	struct will *w = calloc(1, sizeof *w);
	if (!w)
		return restore_bad(why, "out of memory");
	if (restore_make(e, rm, true, &m, why) < 0) {
		free(w);
		return -1;
	}
	m->origin = s->serial;
	w->t.kind = T_WILL;
	w->m = m;
	w->s = s;
	w->delay = delay;
	s->will = w;
	return 0;
}

int engine_restore_retained(struct engine *e, const struct midge_str *topic, uint64_t msg_id,
			    const char **why)
{
	struct emsg *m = restore_msg_get(e->restore, msg_id);
	if (!m)
		return restore_bad(why, "a retained topic names a message that is not stored");
	if (topic->len != m->topic_len || memcmp(topic->p, m->topic, m->topic_len) != 0)
		return restore_bad(why, "a retained topic names a message of another topic");
	if (retain_store_get(e->retained, m->topic, m->topic_len))
		return restore_bad(why, "a topic has two retained messages");
	/* ownership: the retained store takes the new reference */
	if (retained_set(e, m->topic, m->topic_len, emsg_ref(m)) < 0)
		return restore_bad(why, "out of memory");
	e->st.retained_count = retain_store_count(e->retained);
	return 0;
}

int engine_restore_history(struct engine *e, const struct midge_str *filter, uint64_t seq,
			   uint64_t at, uint64_t msg_id, const char **why)
{
	struct history *h = history_find(e, (const uint8_t *)filter->p, filter->len);
	if (!h)
		return 1; /* no longer configured */
	struct emsg *m = restore_msg_get(e->restore, msg_id);
	if (!m)
		return restore_bad(why, "a replay log entry names a message that is not stored");
	if (!seq || history_restore(e, h, seq, at, m) < 0)
		return restore_bad(why, "replay log entries are out of order");
	return 0;
}

/*
 * The deadlines of a restored session, as session_detach() would have set
 * them had its connection ended at ended_at: the will after its delay,
 * the session after its expiry, each at once when already due.
 */
void session_arm_timers(struct engine *e, struct session *s, uint64_t ended_at)
{
	if (s->will) {
		uint64_t at = ended_at + (uint64_t)s->will->delay * 1000;
		if (at <= e->now || timer_set(e, &s->will->t, at) < 0)
			will_publish(e, s);
	}
	if (s->expiry != EXPIRY_NEVER) {
		uint64_t at = ended_at + (uint64_t)s->expiry * 1000;
		if (at <= e->now || timer_set(e, &s->expiry_timer, at) < 0)
			session_expire(e, s);
	}
}

int engine_restore_end(struct engine *e, uint64_t now_ms)
{
	struct restore *r = e->restore;
	e->now = now_ms;
	if (!r)
		return 0;
	e->restore = NULL;
	for (uint32_t i = 0; i < r->n_sessions; i++) {
		struct restore_session *x = &r->sessions[i];
		/* connected when the broker stopped: its connection ends now */
		move_touch(e, x->s); /* the cluster's copy, if it keeps one */
		session_arm_timers(e, x->s, x->ended_at ? x->ended_at : now_ms);
	}
	history_trim_all(e);
	bridge_restore_end(e);
	e->restore = r;
	engine_restore_abort(e); /* the table's references go; unused messages with them */
	return 0;
}
