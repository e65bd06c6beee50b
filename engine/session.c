/*
 * session.c - session lifetime: the client-id hash table, creation,
 * take-over by a second CONNECT, detaching from a closed connection,
 * expiry and destruction.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

uint32_t engine_hash_bytes(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

/* The session of client id cid[0..len), or NULL. */
struct session *session_find(struct engine *e, const uint8_t *cid, size_t len)
{
	if (!e->table_size)
		return NULL;
	uint32_t h = engine_hash_bytes(cid, len);
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

/* Who a session is, for events about a session that may be offline. */
void session_client(const struct session *s, struct midge_client *out)
{
	memset(out, 0, sizeof *out);
	if (s->conn) {
		*out = s->conn->info;
		return;
	}
	out->client_id.p = s->cid;
	out->client_id.len = s->cid_len;
	out->username.p = s->user;
	out->username.len = s->user_len;
	out->protocol = s->version;
	out->listener = s->listener;
}

/* Remembers who connected to s (user name, listener) for the checks
 * made while it is offline. Returns 0, or -1 on OOM (then it is left
 * anonymous). */
int session_set_owner(struct session *s, const struct midge_client *cl)
{
	free(s->user);
	s->user = NULL;
	s->user_len = 0;
	s->listener = cl->listener;
	if (cl->username.p) {
		s->user = engine_dup_bytes(cl->username.p, cl->username.len);
		if (!s->user)
			return -1;
		s->user_len = (uint32_t)cl->username.len;
	}
	return 0;
}

/*
 * A connection's client id views its session's copy (one allocation per
 * client instead of two). When the connection outlives its session
 * (taken over, or the session destroyed under it) it takes its own copy
 * so its closing events still name the client; without memory it is
 * named by the empty string rather than by freed memory.
 */
static void client_keep_client_id(struct engine_conn *c)
{
	if (c->cid_own || !c->s || c->info.client_id.p != c->s->cid)
		return;
	char *cid = engine_dup_bytes(c->s->cid, c->s->cid_len);
	c->info.client_id.p = cid ? cid : "";
	if (cid)
		c->cid_own = true;
	else
		c->info.client_id.len = 0;
}

/* A new, empty session for cid, in the client-id table. NULL on OOM. */
struct session *session_new(struct engine *e, const uint8_t *cid, size_t len)
{
	size_t size = offsetof(struct session, cid) + len + 1;
	struct session *s = calloc(1, size > sizeof *s ? size : sizeof *s);
	if (!s)
		return NULL;
	memcpy(s->cid, cid, len);
	s->cid[len] = '\0';
	s->cid_len = (uint32_t)len;
	s->hash = engine_hash_bytes(cid, len);
	s->serial = ++e->serial;
	s->expiry_timer.kind = T_EXPIRY;
	s->subscriber.kind = SUBSCRIBER_SESSION;
	if (session_table_add(e, s) < 0) {
		free(s);
		return NULL;
	}
	e->st.clients_total++;
	return s;
}

/* Removes every subscription of s from the tree. */
static void session_unsubscribe_all(struct engine *e, struct session *s)
{
	struct sub *x, *nx;
	for (x = s->subs; x; x = nx) {
		nx = x->next;
		topic_tree_unsubscribe(e->tree, x->filter, x->len, &s->subscriber);
		cluster_sub_interest(e, s, x->filter, x->len, false);
		sub_unlink(e, x);
		free(x);
	}
	e->st.subscriptions_count = topic_tree_count(e->tree);
}

/* Frees s and everything it holds. Does not publish the will (callers
 * decide) and emits nothing. */
void session_destroy(struct engine *e, struct session *s)
{
	if (s->store)
		session_store_forget(e, s); /* what follows is gone with it */
	checkpoint_forget(e, s);
	journal_forget(e, s);
	if (e->has_cluster && e->cluster.ended && !e->releasing)
		e->cluster.ended(e->cluster.ctx, (const uint8_t *)s->cid, s->cid_len);
	session_unsubscribe_all(e, s);
	timer_cancel(e, &s->expiry_timer);
	will_clear(e, s);
	flight_free(e, s);
	while (s->queue_len) {
		struct delivery d;
		session_dequeue(e, s, &d);
		emsg_unref(d.m);
	}
	if (s->conn) {
		client_keep_client_id(s->conn);
		s->conn->s = NULL;
	}
	session_table_del(e, s);
	e->st.clients_total--;
	free(s->queue);
	free(s->rel);
	free(s->user);
	free(s);
}

/* Session expiry: the will (if still pending) goes out as the session
 * ends [MQTT-3.1.2-8], then the session is gone. */
void session_expire(struct engine *e, struct session *s)
{
	will_publish(e, s);
	event_session(e, MIDGE_EV_SESSION_EXPIRED, s, NULL, "session expiry interval elapsed");
	e->st.clients_expired++;
	route_share_out(e, s);
	session_destroy(e, s);
}

/* What the store keeps of s: its terms and who it belongs to (the user
 * name and listener its queue is checked against while it is offline). */
static void session_store_record(const struct session *s, uint64_t disconnected_at,
				 struct engine_store_session *rec)
{
	memset(rec, 0, sizeof *rec);
	rec->client_id = session_id(s);
	rec->expiry = s->expiry;
	rec->protocol = s->version;
	rec->disconnected_at = disconnected_at;
	rec->user.p = s->user;
	rec->user.len = s->user_len;
	rec->listener = s->listener;
}

/*
 * The connection of s is gone. publish: the end was abnormal, so the will
 * goes out now or after its delay [MQTT-3.1.3-9]; otherwise it is
 * discarded [MQTT-3.1.2-10]. A session with expiry 0 ends here.
 */
void session_detach(struct engine *e, struct session *s, bool publish)
{
	s->conn = NULL;
	s->recv_held = false; /* the queue is asked again on resume */
	cluster_share_presence(e, s, false);
	if (!publish)
		will_clear(e, s);
	if (s->expiry == 0) {
		will_publish(e, s);
		route_share_out(e, s);
		session_destroy(e, s);
		return;
	}
	move_touch(e, s);
	if (s->store) { /* the time its connection ended: its deadlines count from it */
		struct engine_store_session rec;
		session_store_record(s, e->now, &rec);
		s->store = STORE_CALL(e, session_saved, s->store, &rec);
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

/*
 * Another connection CONNECTs with the client id of s while s is
 * connected: the old connection gets DISCONNECT 0x8E (v5) and is closed
 * [MQTT-3.1.4-3]. Its will goes out when the session ends (old session
 * not persistent, or the new one starts clean); otherwise it is dropped
 * because the session continues [MQTT-3.1.3-9].
 */
void session_take_over(struct engine *e, struct session *s, bool clean_start)
{
	struct engine_conn *old = s->conn;
	bool normal = old->normal_disconnect;
	event_session(e, MIDGE_EV_SESSION_TAKEOVER, s, &old->info, "client id connected again");
	if (old->state != CONN_CLOSING) {
		output_disconnect(e, old, MQTT_RC_SESSION_TAKEN_OVER, "session taken over");
		client_request_close(e, old, MQTT_RC_SESSION_TAKEN_OVER, false, "session taken over");
	}
	client_keep_client_id(old);
	old->s = NULL;
	s->conn = NULL;
	s->recv_held = false;
	cluster_share_presence(e, s, false);
	if (!normal && (s->expiry == 0 || clean_start))
		will_publish(e, s);
	else
		will_clear(e, s);
}

/*
 * The store forgets s: the session goes from it with everything stored
 * under it, and each message its queue and window held is released, so a
 * store counting references to message bodies stays exact.
 */
void session_store_forget(struct engine *e, struct session *s)
{
	void *h = s->store;
	if (!h)
		return;
	s->store = NULL;
	STORE_CALL(e, session_removed, h);
	for (uint32_t i = 0; i < s->queue_len; i++) {
		const struct delivery *d = &s->queue[(s->queue_head + i) % s->queue_cap];
		if (d->qos > 0)
			STORE_CALL(e, message_released, d->m->id);
	}
	for (uint32_t k = 0; k < s->flight_span; k++) {
		const struct slot *sl = flight_at(s, k);
		if (sl->state && sl->d.m)
			STORE_CALL(e, message_released, sl->d.m->id);
	}
}

/*
 * Tells the store about s after its terms changed (CONNECT, DISCONNECT):
 * a session that outlives its connection is saved, with its will; one
 * whose expiry became 0 leaves the store. Clean sessions never reach it.
 */
void session_store_save(struct engine *e, struct session *s)
{
	move_touch(e, s);
	if (s->expiry == 0) {
		session_store_forget(e, s);
		return;
	}
	struct engine_store_session rec;
	session_store_record(s, s->conn ? 0 : e->now, &rec);
	s->store = STORE_CALL(e, session_saved, s->store, &rec);
	if (s->store && s->will) {
		struct engine_store_msg v;
		store_msg_view(s->will->m, &v);
		STORE_CALL(e, will_set, s->store, &v, s->will->delay);
	}
}
