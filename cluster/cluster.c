/*
 * cluster.c - the NATS backplane (cluster.h, docs/cluster.md).
 *
 * Threads and who touches what:
 * - the engine thread (the loop) owns the engine and the interest table;
 *   it appends messages and retained changes to the outgoing ring (out),
 *   subscription changes to a command list, and drains the incoming ring
 *   (in) into the engine when the uv_async_t fires;
 * - the cluster thread makes every NATS call that waits for anything
 *   (publish, flush, key-value puts, the node lease's heartbeat,
 *   subscribe); it never touches the engine;
 * - libnats's threads run the subscription and connection callbacks: they
 *   copy into the incoming ring and wake the loop, nothing else;
 * - the watcher thread follows the retained bucket into the incoming ring.
 *
 * Nothing acknowledged is lost: the outgoing records of QoS 1/2 messages
 * carry a ticket, and the cluster thread gives ring space back (and
 * reports the ticket, releasing the PUBACK/PUBREC held in engine/hold.c)
 * only after a NATS flush confirmed the server has everything before it.
 * A batch whose flush failed is sent again after the reconnect, so a
 * message may arrive twice, never not at all.
 */
#include "cluster/cluster.h"

#include <errno.h>
#include <nats/nats.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/ring.h"
#include "cluster/subject.h"
#include "cluster/wire.h"
#include "engine/engine.h"
#include "transport/log.h"

#define RECONNECT_GRACE_MS 500

/* One filter this node's clients subscribed to (engine thread: count and
 * the table; cluster thread: subs; libnats threads: filter, read-only). */
struct interest {
	struct interest *next; /* the table's chain */
	uint32_t count;        /* subscriptions on this node */
	natsSubscription *subs[2];
	atomic_int pending;    /* NATS subscriptions not completed yet */
	struct cluster *c;
	uint16_t len;
	uint8_t filter[];
};

/* A subscription change for the cluster thread. */
struct command {
	struct command *next;
	struct interest *in;
	bool on;
};

struct cluster {
	struct cluster_config cfg;
	char *servers, *node, *name; /* copies */
	struct engine *engine;
	uv_loop_t *loop;
	uv_async_t async;
	struct ring out; /* engine -> cluster thread; its mu also guards cmds, stop */
	struct ring in;  /* libnats, watcher -> engine */
	struct command *cmds, **cmds_tail;
	bool stop;
	bool quiet; /* cluster_quiet() ran */
	/* libnats runs the connection's callbacks on its own thread, queued:
	 * on_disconnected may still be pending after natsConnection_Close
	 * returns. The closed callback comes last on that queue, so c lives
	 * until it has run. */
	pthread_mutex_t closed_mu;
	pthread_cond_t closed_cv;
	bool closed;
	bool leak; /* the closed callback never came: never free c */
	pthread_t thread, watcher;
	bool thread_on, watcher_on;
	natsConnection *nc;
	jsCtx *js;
	kvStore *nodes, *retained;
	kvWatcher *watch;
	uint64_t lease_rev;
	/* engine thread */
	struct interest **table;
	uint32_t table_cap, table_n;
	uint64_t next_ticket;
	bool was_connected;
	uint64_t dropped_out_logged, dropped_in_logged;
	/* shared counters */
	atomic_bool connected;
	atomic_bool async_on; /* uv_async_init done, cluster_quiet not yet */
	atomic_uint_fast64_t reconnected_at; /* ms */
	atomic_uint_fast64_t sent_ticket;
	atomic_uint_fast64_t forwarded, received, dropped_out, dropped_in, subjects, disconnects;
};

/* Wakes the loop (any thread), once its handle exists. */
static void wake(struct cluster *c)
{
	if (atomic_load(&c->async_on))
		uv_async_send(&c->async);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the interest table (engine thread) ------------------------------ */

static uint32_t hash_bytes(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static struct interest **interest_slot(struct cluster *c, const uint8_t *f, size_t len)
{
	struct interest **p = &c->table[hash_bytes(f, len) & (c->table_cap - 1)];
	while (*p && !((*p)->len == len && memcmp((*p)->filter, f, len) == 0))
		p = &(*p)->next;
	return p;
}

/* Doubles the table past a load of one. Returns 0 or -1. */
static int interest_grow(struct cluster *c)
{
	uint32_t cap = c->table_cap * 2;
	struct interest **t = calloc(cap, sizeof *t);
	if (!t)
		return -1;
	for (uint32_t i = 0; i < c->table_cap; i++) {
		for (struct interest *x = c->table[i], *nx; x; x = nx) {
			nx = x->next;
			uint32_t h = hash_bytes(x->filter, x->len) & (cap - 1);
			x->next = t[h];
			t[h] = x;
		}
	}
	free(c->table);
	c->table = t;
	c->table_cap = cap;
	return 0;
}

static void command_post(struct cluster *c, struct interest *in, bool on)
{
	struct command *k = malloc(sizeof *k);
	if (!k) {
		log_err("cluster: out of memory: the NATS subscription of a filter is not changed");
		return;
	}
	k->next = NULL;
	k->in = in;
	k->on = on;
	pthread_mutex_lock(&c->out.mu);
	*c->cmds_tail = k;
	c->cmds_tail = &k->next;
	pthread_cond_signal(&c->out.cv);
	pthread_mutex_unlock(&c->out.mu);
}

/* engine_cluster.interest: counts subscriptions per filter; the first one
 * subscribes in NATS, the last one's end unsubscribes. */
static void cluster_on_interest(void *ctx, const uint8_t *f, size_t len, bool on)
{
	struct cluster *c = ctx;
	struct interest **p = interest_slot(c, f, len);
	if (on) {
		if (*p) {
			(*p)->count++;
			return;
		}
		if (c->table_n >= c->table_cap && interest_grow(c) == 0)
			p = interest_slot(c, f, len);
		struct interest *in = calloc(1, sizeof *in + len);
		if (!in) {
			log_err("cluster: out of memory: a filter gets no messages from other nodes");
			return;
		}
		in->count = 1;
		in->c = c;
		in->len = (uint16_t)len;
		memcpy(in->filter, f, len);
		*p = in;
		c->table_n++;
		command_post(c, in, true);
	} else if (*p && --(*p)->count == 0) {
		struct interest *in = *p;
		*p = in->next;
		c->table_n--;
		command_post(c, in, false); /* the cluster thread frees it */
	}
}

/* ---- engine -> NATS (engine thread) ----------------------------------- */

static void log_drop_out(struct cluster *c)
{
	uint64_t n = atomic_fetch_add(&c->dropped_out, 1) + 1;
	if (n >= c->dropped_out_logged * 2 || c->dropped_out_logged == 0) {
		log_warn("cluster: buffer for NATS full (%llu bytes): %llu messages not sent to other nodes so far",
			 (unsigned long long)c->out.cap, (unsigned long long)n);
		c->dropped_out_logged = n;
	}
}

/* engine_cluster.publish: encodes m once into the outgoing ring. */
static int cluster_on_publish(void *ctx, const struct engine_cluster_msg *m, uint64_t *ticket)
{
	struct cluster *c = ctx;
	char subj[CLUSTER_SUBJECT_MAX];
	int sl = cluster_subject_topic(subj, sizeof subj, c->name, m->topic, m->topic_len);
	*ticket = 0;
	if (sl < 0) {
		log_warn("cluster: topic too long for a NATS subject: not sent to other nodes");
		return -1;
	}
	uint8_t *data;
	uint64_t t = m->qos ? c->next_ticket + 1 : 0;
	pthread_mutex_lock(&c->out.mu);
	int rc = ring_put(&c->out, REC_PUBLISH, subj, (size_t)sl, cluster_wire_size(m), t, &data);
	if (rc == 0) {
		cluster_wire_encode(data, m);
		pthread_cond_signal(&c->out.cv);
	}
	pthread_mutex_unlock(&c->out.mu);
	if (rc < 0) {
		log_drop_out(c);
		return -1;
	}
	if (t)
		c->next_ticket = t;
	*ticket = t;
	return 0;
}

/* engine_cluster.room: a QoS 1/2 message is refused rather than taken
 * when it could not be forwarded (a quarter of the buffer kept free). */
static bool cluster_on_room(void *ctx)
{
	struct cluster *c = ctx;
	pthread_mutex_lock(&c->out.mu);
	bool room = c->out.wpos - c->out.rpos <= c->out.cap - c->out.cap / 4;
	pthread_mutex_unlock(&c->out.mu);
	return room;
}

/* engine_cluster.retained: the bucket's key for the topic gets the
 * message, or is deleted. */
static void cluster_on_retained(void *ctx, const uint8_t *topic, size_t len,
				const struct engine_cluster_msg *m)
{
	struct cluster *c = ctx;
	char key[CLUSTER_SUBJECT_MAX];
	int kl = cluster_key_topic(key, sizeof key, topic, len);
	if (kl < 0)
		return;
	uint8_t *data;
	pthread_mutex_lock(&c->out.mu);
	int rc = ring_put(&c->out, REC_RETAIN, key, (size_t)kl, m ? cluster_wire_size(m) : 0, 0, &data);
	if (rc == 0) {
		if (m)
			cluster_wire_encode(data, m);
		pthread_cond_signal(&c->out.cv);
	}
	pthread_mutex_unlock(&c->out.mu);
	if (rc < 0)
		log_drop_out(c);
}

/* ---- NATS -> engine ---------------------------------------------------- */

/* Any thread: copies one record into the incoming ring and wakes the loop. */
static void input_put(struct cluster *c, uint8_t kind, const char *name, size_t nlen,
		      const void *data, size_t dlen)
{
	uint8_t *d;
	pthread_mutex_lock(&c->in.mu);
	int rc = ring_put(&c->in, kind, name, nlen, dlen, 0, &d);
	if (rc == 0 && dlen)
		memcpy(d, data, dlen);
	pthread_mutex_unlock(&c->in.mu);
	if (rc < 0)
		atomic_fetch_add(&c->dropped_in, 1);
	wake(c);
}

/* libnats thread: a message for one of this node's filters. */
static void on_nats_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	(void)nc;
	(void)sub;
	struct interest *in = closure;
	input_put(in->c, REC_INPUT, (const char *)in->filter, in->len, natsMsg_GetData(msg),
		  (size_t)natsMsg_GetDataLength(msg));
	natsMsg_Destroy(msg);
}

/* libnats thread: a NATS subscription of in is over; the last one frees it. */
static void on_sub_complete(void *closure)
{
	struct interest *in = closure;
	if (atomic_fetch_sub(&in->pending, 1) == 1)
		free(in);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
	(void)nc;
	struct cluster *c = closure;
	atomic_store(&c->connected, false);
	atomic_fetch_add(&c->disconnects, 1);
	wake(c);
}

static void on_closed(natsConnection *nc, void *closure)
{
	(void)nc;
	struct cluster *c = closure;
	pthread_mutex_lock(&c->closed_mu);
	c->closed = true;
	pthread_cond_signal(&c->closed_cv);
	pthread_mutex_unlock(&c->closed_mu);
}

/* Closes the connection and waits (bounded) for its last callback. Returns
 * false if that never came: c must then outlive us (leaked, not freed). */
static bool nats_close_wait(struct cluster *c)
{
	if (!c->nc)
		return true;
	natsConnection_Close(c->nc);
	natsConnection_Destroy(c->nc);
	c->nc = NULL;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&c->closed_mu);
	while (!c->closed)
		if (pthread_cond_timedwait(&c->closed_cv, &c->closed_mu, &until) == ETIMEDOUT)
			break;
	bool done = c->closed;
	pthread_mutex_unlock(&c->closed_mu);
	if (!done)
		log_warn("cluster: NATS closed callback did not run within 5 s");
	return done;
}

static void on_reconnected(natsConnection *nc, void *closure)
{
	(void)nc;
	struct cluster *c = closure;
	atomic_store(&c->reconnected_at, now_ms());
	atomic_store(&c->connected, true);
	pthread_mutex_lock(&c->out.mu);
	pthread_cond_signal(&c->out.cv);
	pthread_mutex_unlock(&c->out.mu);
	wake(c);
}

/* Loop: the retained bucket changed (a key and its value, or a delete). */
static void input_retained(struct cluster *c, const struct rec *x, uint64_t now)
{
	uint8_t topic[CLUSTER_SUBJECT_MAX];
	int tl = cluster_key_parse(topic, sizeof topic, rec_name(x), x->name_len);
	if (tl < 0)
		return;
	struct engine_cluster_msg m;
	if (x->data_len && cluster_wire_decode(rec_data(x), x->data_len, &m) == 0)
		engine_cluster_retain(c->engine, topic, (size_t)tl, &m, now);
	else if (!x->data_len)
		engine_cluster_retain(c->engine, topic, (size_t)tl, NULL, now);
}

/* Loop: what the other threads reported. */
static void cluster_on_async(uv_async_t *a)
{
	struct cluster *c = a->data;
	uint64_t now = now_ms();
	pthread_mutex_lock(&c->in.mu);
	uint64_t pos = c->in.rpos, end = c->in.wpos;
	pthread_mutex_unlock(&c->in.mu);
	const struct rec *x;
	while ((x = ring_at(&c->in, &pos, end))) {
		struct engine_cluster_msg m;
		if (x->kind == REC_RETAIN) {
			input_retained(c, x, now);
		} else if (cluster_wire_decode(rec_data(x), x->data_len, &m) < 0 ||
			   engine_cluster_input(c->engine, (const uint8_t *)rec_name(x), x->name_len, &m,
						now) < 0) {
			atomic_fetch_add(&c->dropped_in, 1);
		} else {
			atomic_fetch_add(&c->received, 1);
		}
	}
	pthread_mutex_lock(&c->in.mu);
	c->in.rpos = end;
	pthread_mutex_unlock(&c->in.mu);
	uint64_t t = atomic_load(&c->sent_ticket);
	engine_cluster_sent(c->engine, t, now);
	bool up = atomic_load(&c->connected);
	if (up != c->was_connected) {
		c->was_connected = up;
		if (up)
			log_notice("cluster: connected to NATS again (node %s, cluster %s)", c->node, c->name);
		else
			log_warn("cluster: NATS unreachable: serving local clients, buffering up to %llu bytes for the other nodes",
				 (unsigned long long)c->out.cap);
	}
	uint64_t din = atomic_load(&c->dropped_in);
	if (din > c->dropped_in_logged) {
		log_warn("cluster: %llu messages from other nodes not delivered (buffer full or invalid)",
			 (unsigned long long)din);
		c->dropped_in_logged = din;
	}
}

/* ---- the cluster thread ------------------------------------------------ */

/* Subscribes (or unsubscribes) one filter in NATS. */
static void thread_command(struct cluster *c, struct command *k)
{
	struct interest *in = k->in;
	if (!k->on) {
		/* the last completion frees in: nothing of it is read after */
		natsSubscription *subs[2] = {in->subs[0], in->subs[1]};
		if (!subs[0] && !subs[1])
			free(in); /* never subscribed: no completion will come */
		for (int i = 0; i < 2; i++) {
			if (subs[i]) {
				atomic_fetch_sub(&c->subjects, 1);
				natsSubscription_Unsubscribe(subs[i]);
				natsSubscription_Destroy(subs[i]);
			}
		}
		return;
	}
	char subj[CLUSTER_SUBJECT_MAX];
	bool parent;
	int sl = cluster_subject_filter(subj, sizeof subj, c->name, in->filter, in->len, &parent);
	if (sl < 0)
		return;
	int n = parent ? 2 : 1;
	atomic_store(&in->pending, n);
	for (int i = 0; i < n; i++) {
		if (i == 1)
			subj[sl - 2] = '\0'; /* "a.>" and "a": MQTT's a/# matches a */
		natsStatus s = natsConnection_Subscribe(&in->subs[i], c->nc, subj, on_nats_msg, in);
		if (s == NATS_OK) {
			natsSubscription_SetPendingLimits(in->subs[i], -1, 256 * 1024 * 1024);
			natsSubscription_SetOnCompleteCB(in->subs[i], on_sub_complete, in);
			atomic_fetch_add(&c->subjects, 1);
		} else {
			in->subs[i] = NULL;
			atomic_fetch_sub(&in->pending, 1);
		}
	}
}

/* Sends the records in [rpos, end) to NATS. Returns 0 when NATS
 * confirmed them all (a flush), -1 to try again later. */
static int thread_send(struct cluster *c, uint64_t end)
{
	uint64_t pos = c->out.rpos, ticket = 0;
	const struct rec *x;
	while ((x = ring_at(&c->out, &pos, end))) {
		natsStatus s = NATS_OK;
		if (x->kind == REC_PUBLISH) {
			s = natsConnection_Publish(c->nc, rec_name(x), rec_data(x), (int)x->data_len);
			if (s == NATS_OK)
				atomic_fetch_add(&c->forwarded, 1);
		} else if (x->kind == REC_RETAIN && x->data_len) {
			s = kvStore_Put(NULL, c->retained, rec_name(x), rec_data(x), (int)x->data_len);
		} else if (x->kind == REC_RETAIN) {
			s = kvStore_Delete(c->retained, rec_name(x));
		}
		if (s != NATS_OK) {
			if (atomic_load(&c->connected))
				log_msg(CONF_LOG_WARNING, "cluster: NATS refused a message: %s",
					natsStatus_GetText(s));
			return -1;
		}
		if (x->ticket > ticket)
			ticket = x->ticket;
	}
	if (ticket && natsConnection_FlushTimeout(c->nc, 5000) != NATS_OK)
		return -1;
	pthread_mutex_lock(&c->out.mu);
	c->out.rpos = end;
	pthread_mutex_unlock(&c->out.mu);
	if (ticket) {
		atomic_store(&c->sent_ticket, ticket);
		wake(c);
	}
	return 0;
}

/* Renews the node's lease: the key is updated with its revision, so a
 * node that lost its name to another (a lease that lapsed) learns it. */
static void thread_heartbeat(struct cluster *c)
{
	uint64_t rev = 0;
	char v[64];
	int n = snprintf(v, sizeof v, "%llu", (unsigned long long)now_ms());
	natsStatus s = kvStore_Update(&rev, c->nodes, c->node, v, n, c->lease_rev);
	if (s == NATS_OK)
		c->lease_rev = rev;
	else if (atomic_load(&c->connected))
		log_msg(CONF_LOG_ERR, "cluster: the lease of node name %s could not be renewed: %s",
			c->node, natsStatus_GetText(s));
}

static void *cluster_thread(void *arg)
{
	struct cluster *c = arg;
	uint64_t beat = now_ms() + c->cfg.lease_ms / 3, stop_by = 0;
	for (;;) {
		pthread_mutex_lock(&c->out.mu);
		for (;;) {
			bool up = atomic_load(&c->connected);
			if (c->stop || c->cmds || (up && c->out.rpos != c->out.wpos) || now_ms() >= beat)
				break;
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 100 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&c->out.cv, &c->out.mu, &ts);
		}
		struct command *k = c->cmds;
		c->cmds = NULL;
		c->cmds_tail = &c->cmds;
		uint64_t end = c->out.wpos;
		bool stop = c->stop, pending = c->out.rpos != end;
		pthread_mutex_unlock(&c->out.mu);
		while (k) {
			struct command *nk = k->next;
			thread_command(c, k);
			free(k);
			k = nk;
		}
		if (now_ms() >= beat) {
			thread_heartbeat(c);
			beat = now_ms() + c->cfg.lease_ms / 3;
		}
		/* After a reconnect the other nodes need a moment to subscribe
		 * again (libnats resends their subscriptions as it reconnects):
		 * what waited is sent after RECONNECT_GRACE_MS. */
		bool up = atomic_load(&c->connected) &&
			  now_ms() >= atomic_load(&c->reconnected_at) + RECONNECT_GRACE_MS;
		if (pending && (!up || thread_send(c, end) < 0)) {
			struct timespec d = {0, 50 * 1000000L};
			nanosleep(&d, NULL); /* a reconnect is under way */
		}
		if (stop) {
			if (!stop_by)
				stop_by = now_ms() + 2000;
			pthread_mutex_lock(&c->out.mu);
			bool empty = c->out.rpos == c->out.wpos;
			pthread_mutex_unlock(&c->out.mu);
			if (empty || now_ms() >= stop_by)
				break;
		}
	}
	return NULL;
}

/* ---- the retained bucket's watcher ------------------------------------- */

/* One entry of the retained bucket into the incoming ring (or, at
 * start-up, straight into the engine). */
static void watch_entry(struct cluster *c, kvEntry *en, bool direct)
{
	const char *key = kvEntry_Key(en);
	bool del = kvEntry_Operation(en) != kvOp_Put;
	const void *v = del ? NULL : kvEntry_Value(en);
	size_t vl = del ? 0 : (size_t)kvEntry_ValueLen(en);
	if (!direct) {
		input_put(c, REC_RETAIN, key, strlen(key), v, vl);
		return;
	}
	uint8_t topic[CLUSTER_SUBJECT_MAX];
	int tl = cluster_key_parse(topic, sizeof topic, key, strlen(key));
	struct engine_cluster_msg m;
	if (tl < 0)
		return;
	if (vl && cluster_wire_decode(v, vl, &m) == 0)
		engine_cluster_retain(c->engine, topic, (size_t)tl, &m, now_ms());
	else if (!vl)
		engine_cluster_retain(c->engine, topic, (size_t)tl, NULL, now_ms());
}

static void *watcher_thread(void *arg)
{
	struct cluster *c = arg;
	for (;;) {
		kvEntry *en = NULL;
		natsStatus s = kvWatcher_Next(&en, c->watch, 1000);
		if (s == NATS_ILLEGAL_STATE)
			break; /* kvWatcher_Stop */
		if (s != NATS_OK || !en)
			continue;
		watch_entry(c, en, false);
		kvEntry_Destroy(en);
	}
	return NULL;
}

/* ---- start and stop ---------------------------------------------------- */

static void fail(char *err, size_t errlen, const char *what, natsStatus s)
{
	natsStatus ls;
	const char *last = nats_GetLastError(&ls);
	snprintf(err, errlen, "%s: %s%s%s", what, natsStatus_GetText(s), last ? ": " : "",
		 last ? last : "");
}

/* Binds to bucket, creating it when missing. ttl_ms 0: no expiry. */
static natsStatus bucket_open(struct cluster *c, kvStore **kv, const char *suffix, int64_t ttl_ms)
{
	char name[160];
	snprintf(name, sizeof name, "%s_%s", c->name, suffix);
	natsStatus s = js_KeyValue(kv, c->js, name);
	if (s == NATS_OK)
		return s;
	kvConfig kc;
	kvConfig_Init(&kc);
	kc.Bucket = name;
	kc.History = 1;
	kc.TTL = ttl_ms * 1000000; /* libnats: nanoseconds */
	kc.StorageType = js_FileStorage;
	return js_CreateKeyValue(kv, c->js, &kc);
}

/* Connects with the configured servers (comma separated). */
static natsStatus connect_nats(struct cluster *c)
{
	natsOptions *o = NULL;
	const char *urls[16];
	int n = 0;
	for (char *save = NULL, *t = strtok_r(c->servers, ",", &save); t && n < 16;
	     t = strtok_r(NULL, ",", &save))
		urls[n++] = t;
	natsStatus s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = natsOptions_SetServers(o, urls, n);
	if (s == NATS_OK)
		s = natsOptions_SetName(o, c->node);
	if (s == NATS_OK) /* a node never receives its own messages back */
		s = natsOptions_SetNoEcho(o, true);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(o, 250);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, 2000);
	if (s == NATS_OK) /* one delivery pool, not a thread per filter */
		s = natsOptions_UseGlobalMessageDelivery(o, true);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(o, on_disconnected, c);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(o, on_reconnected, c);
	if (s == NATS_OK)
		s = natsOptions_SetClosedCB(o, on_closed, c);
	if (s == NATS_OK)
		s = natsConnection_Connect(&c->nc, o);
	natsOptions_Destroy(o);
	return s;
}

/* Loads the retained bucket into the engine, then leaves the watcher to
 * follow it. */
static natsStatus retained_load(struct cluster *c)
{
	natsStatus s = kvStore_WatchAll(&c->watch, c->retained, NULL);
	uint64_t until = now_ms() + 10000;
	while (s == NATS_OK && now_ms() < until) {
		kvEntry *en = NULL;
		s = kvWatcher_Next(&en, c->watch, 5000);
		if (s != NATS_OK || !en)
			break; /* NULL: the initial values are all there */
		watch_entry(c, en, true);
		kvEntry_Destroy(en);
	}
	return s;
}

/* Frees what cluster_start allocated besides NATS objects. */
static void cluster_release(struct cluster *c)
{
	if (c->leak)
		return;
	pthread_mutex_destroy(&c->closed_mu);
	pthread_cond_destroy(&c->closed_cv);
	free(c->table);
	ring_free(&c->out);
	ring_free(&c->in);
	free(c->servers);
	free(c->node);
	free(c->name);
	free(c);
}

struct cluster *cluster_start(const struct cluster_config *cfg, uv_loop_t *loop,
			      struct engine *e, char *err, size_t errlen)
{
	struct cluster *c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&c->closed_mu, NULL);
	pthread_cond_init(&c->closed_cv, NULL);
	c->cfg = *cfg;
	if (!c->cfg.buffer_bytes)
		c->cfg.buffer_bytes = CLUSTER_DEFAULT_BUFFER;
	if (!c->cfg.lease_ms)
		c->cfg.lease_ms = CLUSTER_DEFAULT_LEASE_MS;
	c->servers = strdup(cfg->servers);
	c->node = strdup(cfg->node);
	c->name = strdup(cfg->name);
	c->engine = e;
	c->loop = loop;
	c->cmds_tail = &c->cmds;
	c->table_cap = 64;
	c->table = calloc(c->table_cap, sizeof *c->table);
	if (!c->servers || !c->node || !c->name || !c->table || ring_init(&c->out, c->cfg.buffer_bytes) < 0 ||
	    ring_init(&c->in, c->cfg.buffer_bytes) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	natsStatus s = connect_nats(c);
	if (s != NATS_OK) {
		fail(err, errlen, "cannot connect to midge_cluster's NATS servers", s);
		goto fail;
	}
	atomic_store(&c->connected, true);
	c->was_connected = true;
	s = natsConnection_JetStream(&c->js, c->nc, NULL);
	if (s == NATS_OK)
		s = bucket_open(c, &c->nodes, "nodes", (int64_t)c->cfg.lease_ms);
	if (s == NATS_OK)
		s = bucket_open(c, &c->retained, "retained", 0);
	if (s != NATS_OK) {
		fail(err, errlen, "cannot open the cluster's JetStream buckets (is nats-server run with -js?)", s);
		goto fail;
	}
	/* create = claim: refused while another live node holds the name */
	char v[64];
	int vn = snprintf(v, sizeof v, "%llu", (unsigned long long)now_ms());
	s = kvStore_Create(&c->lease_rev, c->nodes, c->node, v, vn);
	if (s != NATS_OK) {
		snprintf(err, errlen,
			 "midge_node_name %s is in use in cluster %s (%s); a stopped node's name is free "
			 "at once, a crashed one's after %u ms",
			 c->node, c->name, natsStatus_GetText(s), c->cfg.lease_ms);
		goto fail;
	}
	s = retained_load(c);
	if (s != NATS_OK) {
		fail(err, errlen, "cannot read the cluster's retained messages", s);
		goto fail;
	}
	if (uv_async_init(loop, &c->async, cluster_on_async) != 0) {
		snprintf(err, errlen, "uv_async_init failed");
		goto fail;
	}
	c->async.data = c;
	atomic_store(&c->async_on, true);
	struct engine_cluster ec = {c, cluster_on_interest, cluster_on_publish, cluster_on_room,
				    cluster_on_retained};
	engine_cluster_attach(e, &ec);
	c->thread_on = pthread_create(&c->thread, NULL, cluster_thread, c) == 0;
	c->watcher_on = pthread_create(&c->watcher, NULL, watcher_thread, c) == 0;
	if (!c->thread_on || !c->watcher_on) {
		/* the loop closes the uv handle at its end; c stays for it */
		snprintf(err, errlen, "cannot start the cluster's threads");
		cluster_quiet(c);
		return NULL;
	}
	log_notice("cluster: node %s joined cluster %s", c->node, c->name);
	return c;
fail:
	if (c->lease_rev)
		kvStore_Delete(c->nodes, c->node);
	if (c->watch)
		kvWatcher_Destroy(c->watch);
	kvStore_Destroy(c->retained);
	kvStore_Destroy(c->nodes);
	jsCtx_Destroy(c->js);
	c->leak = !nats_close_wait(c);
	cluster_release(c);
	return NULL;
}

void cluster_quiet(struct cluster *c)
{
	if (!c || c->quiet)
		return;
	c->quiet = true;
	pthread_mutex_lock(&c->out.mu);
	c->stop = true;
	pthread_cond_signal(&c->out.cv);
	pthread_mutex_unlock(&c->out.mu);
	if (c->thread_on)
		pthread_join(c->thread, NULL);
	if (c->watch)
		kvWatcher_Stop(c->watch);
	if (c->watcher_on)
		pthread_join(c->watcher, NULL);
	kvWatcher_Destroy(c->watch);
	c->watch = NULL;
	/* the name is free at once for a node started in its place */
	kvStore_Delete(c->nodes, c->node);
	for (uint32_t i = 0; i < c->table_cap; i++) {
		for (struct interest *x = c->table[i]; x; x = x->next) {
			for (int k = 0; k < 2; k++)
				if (x->subs[k]) {
					natsSubscription_Unsubscribe(x->subs[k]);
					natsSubscription_Destroy(x->subs[k]);
				}
		}
	}
	kvStore_Destroy(c->retained);
	kvStore_Destroy(c->nodes);
	jsCtx_Destroy(c->js);
	c->retained = c->nodes = NULL;
	c->js = NULL;
	/* none of libnats' callbacks still to come wakes the loop */
	atomic_store(&c->async_on, false);
	c->leak = !nats_close_wait(c);
}

void cluster_free(struct cluster *c)
{
	if (!c)
		return;
	cluster_quiet(c);
	engine_cluster_detach(c->engine);
	/* the subscriptions' completions have run and freed theirs */
	for (uint32_t i = 0; i < c->table_cap; i++) {
		for (struct interest *x = c->table[i], *nx; x; x = nx) {
			nx = x->next;
			if (!x->subs[0] && !x->subs[1])
				free(x);
		}
	}
	for (struct command *k = c->cmds, *nk; k; k = nk) {
		nk = k->next;
		if (!k->on && !k->in->subs[0] && !k->in->subs[1])
			free(k->in);
		free(k);
	}
	cluster_release(c);
}

void cluster_stats(const struct cluster *c, struct cluster_stats *out)
{
	memset(out, 0, sizeof *out);
	struct cluster *w = (struct cluster *)c;
	out->connected = atomic_load(&w->connected);
	out->forwarded = atomic_load(&w->forwarded);
	out->received = atomic_load(&w->received);
	out->dropped_out = atomic_load(&w->dropped_out);
	out->dropped_in = atomic_load(&w->dropped_in);
	out->subjects = atomic_load(&w->subjects);
	out->disconnects = atomic_load(&w->disconnects);
	pthread_mutex_lock(&w->out.mu);
	out->buffered = w->out.wpos - w->out.rpos;
	pthread_mutex_unlock(&w->out.mu);
}

const char *cluster_node(const struct cluster *c)
{
	return c->node;
}
