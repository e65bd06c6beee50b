/*
 * cluster.c - the NATS backplane (cluster.h, docs/cluster.md): the
 * connection and its callbacks, the cluster thread, the hand-over with the
 * loop, start and stop. interest.c keeps the filters, kv.c the buckets;
 * internal.h says which thread touches what.
 *
 * Nothing acknowledged is lost: the outgoing records of QoS 1/2 messages
 * carry a ticket, and the cluster thread gives ring space back (and
 * reports the ticket, releasing the PUBACK/PUBREC held in engine/hold.c)
 * only after a NATS flush confirmed the server has everything before it.
 * A batch whose flush failed is sent again after the reconnect, so a
 * message may arrive twice, never not at all.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cluster/internal.h"
#include "cluster/subject.h"
#include "cluster/wire.h"
#include "engine/engine.h"
#include "transport/log.h"

#define RECONNECT_GRACE_MS 500
#define CLUSTER_NATS_IOBUF (1 << 20)

void cluster_wake(struct cluster *c)
{
	if (atomic_load(&c->async_on))
		uv_async_send(&c->async);
}

uint64_t cluster_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A run of this node apart from every other (its messages' sequence
 * numbers start again at 1): random, never 0. */
static uint64_t cluster_run_id(void)
{
	uint64_t r = 0;
	while (r == 0) {
		if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
			r = cluster_now_ms() ^ ((uint64_t)getpid() << 40);
	}
	return r;
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

/*
 * The records the engine puts go to the cluster thread with one wake-up
 * per loop iteration, not one per record: the engine routes a whole
 * read's messages in a row, and a wake-up per message (a futex call, the
 * thread scheduled for a batch of one, the mutex fought over) cost more
 * than forwarding the message. The idle handle keeps the loop from
 * blocking in poll while a wake-up is due (a record put from a timer).
 * Loop thread; without the handles (starting, stopping) at once.
 */
static void cluster_on_check(uv_check_t *h)
{
	struct cluster *c = h->data;
	if (!c->kick)
		return;
	c->kick = false;
	uv_idle_stop(&c->kick_idle);
	pthread_mutex_lock(&c->out.mu);
	pthread_cond_signal(&c->out.cv);
	pthread_mutex_unlock(&c->out.mu);
}

static void cluster_on_idle(uv_idle_t *h)
{
	(void)h;
}

/* Call with out.mu held, after a put. */
static void cluster_kick(struct cluster *c)
{
	if (!c->kick_on || c->quiet) {
		pthread_cond_signal(&c->out.cv);
	} else if (!c->kick) {
		c->kick = true;
		uv_idle_start(&c->kick_idle, cluster_on_idle);
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
		cluster_kick(c);
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
		cluster_kick(c);
	}
	pthread_mutex_unlock(&c->out.mu);
	if (rc < 0)
		log_drop_out(c);
}

/* ---- NATS -> engine ---------------------------------------------------- */

void cluster_input_put(struct cluster *c, uint8_t kind, const char *name, size_t nlen,
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
	cluster_wake(c);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
	(void)nc;
	struct cluster *c = closure;
	if (atomic_exchange(&c->connected, false))
		atomic_store(&c->down_at, cluster_now_ms());
	atomic_fetch_add(&c->disconnects, 1);
	cluster_wake(c);
}

static void on_closed(natsConnection *nc, void *closure)
{
	(void)nc;
	struct cluster *c = closure;
	pthread_mutex_lock(&c->closed_mu);
	c->closed++;
	pthread_cond_signal(&c->closed_cv);
	pthread_mutex_unlock(&c->closed_mu);
}

/* Closes the connections and waits (bounded) for the last callback of
 * each. Returns false if one never came: c must then outlive us (leaked,
 * not freed). */
static bool nats_close_wait(struct cluster *c)
{
	int want = (c->nc != NULL) + (c->qnc != NULL);
	if (!want)
		return true;
	natsConnection **ncs[2] = {&c->qnc, &c->nc};
	for (int i = 0; i < 2; i++) {
		if (*ncs[i]) {
			natsConnection_Close(*ncs[i]);
			natsConnection_Destroy(*ncs[i]);
			*ncs[i] = NULL;
		}
	}
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&c->closed_mu);
	while (c->closed < want)
		if (pthread_cond_timedwait(&c->closed_cv, &c->closed_mu, &until) == ETIMEDOUT)
			break;
	bool done = c->closed >= want;
	pthread_mutex_unlock(&c->closed_mu);
	if (!done)
		log_warn("cluster: NATS closed callback did not run within 5 s");
	return done;
}

static void on_reconnected(natsConnection *nc, void *closure)
{
	(void)nc;
	struct cluster *c = closure;
	atomic_store(&c->reconnected_at, cluster_now_ms());
	atomic_store(&c->connected, true);
	pthread_mutex_lock(&c->out.mu);
	pthread_cond_signal(&c->out.cv);
	pthread_mutex_unlock(&c->out.mu);
	cluster_wake(c);
}

/* Loop: what the other threads reported. */
static void cluster_on_async(uv_async_t *a)
{
	struct cluster *c = a->data;
	uint64_t now = cluster_now_ms();
	pthread_mutex_lock(&c->in.mu);
	uint64_t pos = c->in.rpos, end = c->in.wpos;
	pthread_mutex_unlock(&c->in.mu);
	const struct rec *x;
	while ((x = ring_at(&c->in, &pos, end))) {
		struct engine_cluster_msg m;
		if (x->kind == REC_RETAIN) {
			cluster_kv_apply(c, rec_name(x), x->name_len, rec_data(x), x->data_len, now);
		} else if (x->kind == REC_WILL) {
			cluster_will_publish(c, rec_data(x), x->data_len, now);
		} else if (x->kind == REC_RELEASE) {
			cluster_owner_release(c, rec_name(x), x->name_len, (const char *)rec_data(x),
					      x->data_len, now);
		} else if (x->kind == REC_ADOPT || x->kind == REC_ADOPT_WILL) {
			cluster_state_apply(c, x, now);
		} else if (x->kind == REC_REPLAY_END) {
			engine_cluster_replay_end(c->engine, x->ticket, now);
		} else if (x->kind == REC_REPLAY) {
			cluster_journal_unpack(c, x->ticket, rec_data(x), x->data_len, now);
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
	cluster_owner_answers(c, now);
	uint64_t t = atomic_load(&c->sent_ticket);
	engine_cluster_sent(c->engine, t, now);
	bool up = atomic_load(&c->connected);
	if (up != c->was_connected) {
		c->was_connected = up;
		if (up) {
			log_notice("cluster: connected to NATS again (node %s, cluster %s)", c->node, c->name);
			/* what NATS stored meanwhile and never passed on here */
			engine_cluster_resync(c->engine, atomic_load(&c->down_at), now);
		} else {
			log_warn("cluster: NATS unreachable: serving local clients, buffering up to %llu bytes for the other nodes",
				 (unsigned long long)c->out.cap);
		}
	}
	uint64_t din = atomic_load(&c->dropped_in);
	if (din > c->dropped_in_logged) {
		log_warn("cluster: %llu messages from other nodes not delivered (buffer full or invalid)",
			 (unsigned long long)din);
		c->dropped_in_logged = din;
	}
}

/* ---- the cluster thread ------------------------------------------------ */

/* Sends the records in [rpos, end) to NATS. Returns 0 when NATS
 * confirmed them all (a flush), -1 to try again later. */
static int thread_send(struct cluster *c, uint64_t end)
{
	uint64_t pos = c->out.rpos, ticket = 0;
	const struct rec *x;
	struct bundle run = {0};
	natsStatus s = NATS_OK;
	while (s == NATS_OK && (x = ring_at(&c->out, &pos, end))) {
		if (x->kind == REC_PUBLISH) {
			s = bundle_add(c, &run, x);
		} else if ((s = bundle_flush(c, &run)) != NATS_OK) {
			break;
		} else if (x->kind == REC_RETAIN && x->data_len) {
			s = kvStore_Put(NULL, c->retained, rec_name(x), rec_data(x), (int)x->data_len);
		} else if (x->kind == REC_RETAIN) {
			s = kvStore_Delete(c->retained, rec_name(x));
		} else if (x->kind == REC_HANDOVER) {
			s = cluster_owner_handover(c, rec_name(x), rec_data(x), x->data_len);
		} else if (x->kind == REC_WILL) {
			s = cluster_will_store(c, rec_name(x), rec_data(x), x->data_len);
		} else if (x->kind == REC_STATE) {
			s = cluster_state_store(c, rec_name(x), rec_data(x), x->data_len);
		}
		if (x->ticket > ticket)
			ticket = x->ticket;
	}
	if (s == NATS_OK)
		s = bundle_flush(c, &run);
	if (s != NATS_OK) {
		if (atomic_load(&c->connected))
			log_msg(CONF_LOG_WARNING, "cluster: NATS refused a message: %s", natsStatus_GetText(s));
		return -1;
	}
	/* with the journal, its answer confirms the batch (journal.c) */
	if (ticket && (c->cfg.journal_bytes ? cluster_journal_write(c, c->out.rpos, end)
					    : natsConnection_FlushTimeout(c->nc, 5000)) != NATS_OK)
		return -1;
	pthread_mutex_lock(&c->out.mu);
	c->out.rpos = end;
	pthread_mutex_unlock(&c->out.mu);
	if (ticket) {
		atomic_store(&c->sent_ticket, ticket);
		cluster_wake(c);
	}
	return 0;
}

static void *cluster_thread(void *arg)
{
	struct cluster *c = arg;
	cluster_will_reap_self(c);
	uint64_t beat = cluster_now_ms() + c->cfg.lease_ms / 3, stop_by = 0;
	for (;;) {
		pthread_mutex_lock(&c->out.mu);
		for (;;) {
			bool up = atomic_load(&c->connected);
			uint64_t now = cluster_now_ms();
			if (c->stop || c->cmds || (up && c->out.rpos != c->out.wpos) || now >= beat ||
			    (c->waits && now >= c->waits->due_ms))
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
			cluster_interest_apply(c, k);
			free(k);
			atomic_fetch_add(&c->cmds_applied, 1);
			k = nk;
		}
		cluster_will_due(c);
		if (cluster_now_ms() >= beat) {
			cluster_kv_heartbeat(c);
			cluster_will_check(c);
			cluster_nodes_refresh(c);
			beat = cluster_now_ms() + c->cfg.lease_ms / 3;
		}
		/* After a reconnect the other nodes need a moment to subscribe
		 * again (libnats resends their subscriptions as it reconnects):
		 * what waited is sent after RECONNECT_GRACE_MS. */
		bool up = atomic_load(&c->connected) &&
			  cluster_now_ms() >= atomic_load(&c->reconnected_at) + RECONNECT_GRACE_MS;
		if (pending && (!up || thread_send(c, end) < 0)) {
			struct timespec d = {0, 50 * 1000000L};
			nanosleep(&d, NULL); /* a reconnect is under way */
		}
		if (stop) {
			if (!stop_by)
				stop_by = cluster_now_ms() + 2000;
			pthread_mutex_lock(&c->out.mu);
			bool empty = c->out.rpos == c->out.wpos;
			pthread_mutex_unlock(&c->out.mu);
			if (empty || cluster_now_ms() >= stop_by)
				break;
		}
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

/* Applies midge_cluster's TLS and credential keys to o. Returns 0, or -1
 * with "file:line: key path: why" in err (start-up stops: fail closed). */
static int secure_options(const struct cluster_secure *k, natsOptions *o, char *err, size_t errlen)
{
	const char *key = NULL, *at = NULL, *path = NULL;
	natsStatus s = NATS_OK;
	if (k->cafile) {
		key = "midge_cluster_cafile", at = k->cafile_at, path = k->cafile;
		s = natsOptions_SetSecure(o, true);
		if (s == NATS_OK)
			s = natsOptions_LoadCATrustedCertificates(o, k->cafile);
	}
	if (s == NATS_OK && k->certfile) {
		key = "midge_cluster_certfile", at = k->certfile_at, path = k->certfile;
		s = natsOptions_LoadCertificatesChain(o, k->certfile, k->keyfile);
	}
	if (s == NATS_OK && k->creds) {
		key = "midge_cluster_credentials", at = k->creds_at, path = k->creds;
		s = natsOptions_SetUserCredentialsFromFiles(o, k->creds, NULL);
	}
	if (s == NATS_OK && k->user) {
		key = "midge_cluster_username", at = NULL, path = k->user;
		s = natsOptions_SetUserInfo(o, k->user, k->password);
	}
	if (s == NATS_OK && k->token) {
		key = "midge_cluster_token", at = NULL, path = "";
		s = natsOptions_SetToken(o, k->token);
	}
	if (s == NATS_OK)
		return 0;
	natsStatus ls;
	const char *last = nats_GetLastError(&ls);
	snprintf(err, errlen, "%s%s%s %s: %s%s%s", at ? at : "", at ? ": " : "", key, path,
		 natsStatus_GetText(s), last ? ": " : "", last ? last : "");
	return -1;
}

/* Connects with the configured servers (comma separated) and security:
 * nc, without echo (a node never receives its own messages back), and
 * qnc, with echo, for the queue groups of shared subscriptions (a node's
 * own message may be for its own group's turn). Returns NATS_OK, or the
 * failure (err set when the options were at fault). */
static natsStatus connect_nats(struct cluster *c, char *err, size_t errlen)
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
	/* libnats reads and writes through buffers of 32 KiB by default: the
	 * receiving node then read full buffers, a recv per 32 KiB, and
	 * nats-server wrote to it in pieces. With 1 MiB, cross-node QoS 0
	 * cost a third less CPU in nats-server and a fifth less in each
	 * node (docs/cluster.md, "Figures"). */
	if (s == NATS_OK)
		s = natsOptions_SetIOBufSize(o, CLUSTER_NATS_IOBUF);
	if (s == NATS_OK) /* one delivery pool, not a thread per filter */
		s = natsOptions_UseGlobalMessageDelivery(o, true);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(o, on_disconnected, c);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(o, on_reconnected, c);
	if (s == NATS_OK)
		s = natsOptions_SetClosedCB(o, on_closed, c);
	if (s == NATS_OK && secure_options(&c->cfg.secure, o, err, errlen) < 0)
		s = NATS_INVALID_ARG;
	else if (s == NATS_OK)
		s = natsConnection_Connect(&c->nc, o);
	/* libnats copied o: the second connection's differences */
	if (s == NATS_OK)
		s = natsOptions_SetNoEcho(o, false);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(o, NULL, NULL);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(o, NULL, NULL);
	if (s == NATS_OK)
		s = natsConnection_Connect(&c->qnc, o);
	natsOptions_Destroy(o);
	return s;
}

/* Frees what cluster_start allocated besides NATS objects. */
static void cluster_release(struct cluster *c)
{
	if (c->leak)
		return;
	cluster_owner_free(c);
	cluster_journal_free(c);
	cluster_nodes_free(c);
	pthread_mutex_destroy(&c->sum_mu);
	pthread_mutex_destroy(&c->closed_mu);
	pthread_cond_destroy(&c->closed_cv);
	free(c->table);
	free(c->bbuf);
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
	pthread_mutex_init(&c->sum_mu, NULL);
	c->cfg = *cfg;
	if (!c->cfg.buffer_bytes)
		c->cfg.buffer_bytes = CLUSTER_DEFAULT_BUFFER;
	if (!c->cfg.lease_ms)
		c->cfg.lease_ms = CLUSTER_DEFAULT_LEASE_MS;
	if (!c->cfg.checkpoint_ms)
		c->cfg.journal_bytes = 0; /* nothing resumes from a checkpoint to replay for */
	c->run = cluster_run_id();
	c->servers = strdup(cfg->servers);
	c->node = strdup(cfg->node);
	c->name = strdup(cfg->name);
	c->engine = e;
	c->loop = loop;
	if (!c->servers || !c->node || !c->name || cluster_interest_init(c) < 0 || ring_init(&c->out, c->cfg.buffer_bytes) < 0 ||
	    ring_init(&c->in, c->cfg.buffer_bytes) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	err[0] = '\0';
	natsStatus s = connect_nats(c, err, errlen);
	if (s != NATS_OK) {
		if (!err[0])
			fail(err, errlen, "cannot connect to midge_cluster's NATS servers (check midge_cluster, "
					  "and its TLS and credential keys)", s);
		goto fail;
	}
	atomic_store(&c->connected, true);
	c->was_connected = true;
	s = cluster_kv_open(c);
	if (s != NATS_OK) {
		fail(err, errlen, "cannot open the cluster's JetStream buckets (is nats-server run with -js?)", s);
		goto fail;
	}
	if (cluster_kv_claim(c, err, errlen) < 0)
		goto fail;
	s = cluster_owner_start(c);
	if (s == NATS_OK)
		s = cluster_will_open(c);
	if (s == NATS_OK)
		s = cluster_state_open(c);
	if (s != NATS_OK) {
		fail(err, errlen, "cannot open the cluster's session owners, wills and state buckets", s);
		goto fail;
	}
	s = cluster_journal_open(c);
	if (s != NATS_OK) {
		fail(err, errlen, "cannot create the cluster's journal stream (midge_cluster_journal_bytes)", s);
		goto fail;
	}
	s = cluster_kv_load(c);
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
	if (uv_check_init(loop, &c->kick_check) == 0 && uv_idle_init(loop, &c->kick_idle) == 0) {
		c->kick_check.data = c;
		c->kick_on = uv_check_start(&c->kick_check, cluster_on_check) == 0;
	}
	struct engine_cluster ec = {c, cluster_interest_change, cluster_on_publish, cluster_on_room,
				    cluster_on_retained, cluster_owner_claim, cluster_will_changed,
				    c->cfg.checkpoint_ms ? cluster_state_changed : NULL,
				    cluster_owner_ended,
				    c->cfg.journal_bytes ? cluster_journal_replay : NULL,
				    c->run};
	engine_cluster_attach(e, &ec);
	c->thread_on = pthread_create(&c->thread, NULL, cluster_thread, c) == 0;
	if (!c->thread_on || cluster_kv_watch(c) < 0 || cluster_state_start(c) < 0 ||
	    cluster_journal_start(c) < 0) {
		/* the loop closes the uv handle at its end; c stays for it */
		snprintf(err, errlen, "cannot start the cluster's threads");
		cluster_quiet(c);
		return NULL;
	}
	log_notice("cluster: node %s joined cluster %s", c->node, c->name);
	return c;
fail:
	cluster_journal_stop(c);
	cluster_owner_stop(c);
	cluster_state_close(c);
	cluster_will_close(c);
	cluster_kv_close(c);
	c->leak = !nats_close_wait(c);
	cluster_release(c);
	return NULL;
}

void cluster_quiet(struct cluster *c)
{
	if (!c || c->quiet)
		return;
	c->quiet = true;
	c->kick_on = false; /* the loop closes the handles next */
	cluster_journal_stop(c);
	cluster_state_quiet(c);
	pthread_mutex_lock(&c->out.mu);
	c->stop = true;
	pthread_cond_signal(&c->out.cv);
	pthread_mutex_unlock(&c->out.mu);
	if (c->thread_on)
		pthread_join(c->thread, NULL);
	cluster_owner_stop(c);
	cluster_state_close(c);
	cluster_will_close(c);
	/* the name is free at once for a node started in its place */
	cluster_kv_close(c);
	cluster_interest_close(c);
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
	if (!c->leak)
		cluster_interest_free(c);
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
	out->checkpoints = atomic_load(&w->ck_written);
	out->checkpoint_failures = atomic_load(&w->ck_failed);
	out->sessions_resumed = atomic_load(&w->resumed);
	out->sessions_adopted = atomic_load(&w->adopted);
	out->replays = atomic_load(&w->replays);
	out->replayed = atomic_load(&w->replayed);
	pthread_mutex_lock(&w->out.mu);
	out->buffered = w->out.wpos - w->out.rpos;
	pthread_mutex_unlock(&w->out.mu);
}

const char *cluster_node(const struct cluster *c)
{
	return c->node;
}
