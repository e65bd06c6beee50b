/*
 * journal.c - the cluster's QoS 1/2 journal (docs/cluster.md, "The
 * journal"): a JetStream stream, NAME_journal, on subject NAME.j, kept
 * for six leases (and midge_cluster_journal_bytes).
 *
 * The messages still cross live on core NATS (by interest, at once); the
 * journal has a copy of each QoS 1/2 one, in one record per batch the
 * cluster thread sends ("J" 1, then u32 length + encoded message, each),
 * so JetStream stores a record per batch, not per message. The batch's
 * last record is sent as a request: the stream's answer (it stores one
 * connection's records in order) says every message of the batch is
 * stored, and the PUBACKs held for them go out (it replaces the flush).
 *
 * A session resumed from a dead node's checkpoint missed what reached
 * that node after the checkpoint, and what was published while nobody
 * subscribed for it: the replay thread reads the journal from the
 * checkpoint's time (less JOURNAL_MARGIN_MS) to its last record into the
 * incoming ring (REC_REPLAY, then REC_REPLAY_END), and the engine keeps,
 * per session, only what its checkpoint did not hold (each message
 * carries its node's run and sequence number: engine/journal.c).
 */
#define _GNU_SOURCE /* memmem */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/internal.h"
#include "cluster/wire.h"
#include "transport/log.h"

/* The clocks of nodes and nats-server may differ a little, and a message
 * reached a node a little after NATS stamped it. */
#define JOURNAL_MARGIN_MS 2000
/* A message not read within this, while the stream said more were
 * there, ends the replay (logged). */
#define JOURNAL_READ_MS 3000

static void sleep_ms(long ms)
{
	struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&d, NULL);
}

natsStatus cluster_journal_open(struct cluster *c)
{
	if (!c->cfg.journal_bytes)
		return NATS_OK;
	char name[160], subj[160];
	snprintf(name, sizeof name, "%s_journal", c->name);
	snprintf(subj, sizeof subj, "%s.j", c->name);
	const char *subjects[1] = {subj};
	jsStreamConfig sc;
	jsStreamConfig_Init(&sc);
	sc.Name = name;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	sc.Retention = js_LimitsPolicy;
	sc.Discard = js_DiscardOld;
	sc.MaxBytes = (int64_t)c->cfg.journal_bytes;
	/* a dead node's sessions are claimed or adopted within two leases */
	sc.MaxAge = (int64_t)c->cfg.lease_ms * 6 * 1000000;
	jsErrCode jerr = 0;
	natsStatus s = js_AddStream(NULL, c->js, &sc, NULL, &jerr);
	if (s != NATS_OK) /* there already, perhaps with other limits: this node's win */
		s = js_UpdateStream(NULL, c->js, &sc, NULL, &jerr);
	/* a record is one NATS message, and one record of the incoming ring */
	int64_t mp = natsConnection_GetMaxPayload(c->nc);
	c->jr_chunk = mp > 4096 ? (size_t)mp - 1024 : 3072;
	if (c->jr_chunk > c->cfg.buffer_bytes / 4)
		c->jr_chunk = (size_t)(c->cfg.buffer_bytes / 4);
	return s;
}

/* ---- the publisher's side (cluster thread) ----------------------------- */

/* Sends the record in c->jbuf: as a request when last, checking the
 * stream's answer. */
static natsStatus journal_send(struct cluster *c, bool last)
{
	char subj[160];
	snprintf(subj, sizeof subj, "%s.j", c->name);
	if (!last)
		return natsConnection_Publish(c->nc, subj, c->jbuf, (int)c->jlen);
	natsMsg *reply = NULL;
	natsStatus s = natsConnection_Request(&reply, c->nc, subj, c->jbuf, (int)c->jlen, 5000);
	if (s != NATS_OK)
		return s;
	/* {"stream":"NAME_journal","seq":N} or {"error":{...}} */
	const char *d = natsMsg_GetData(reply);
	int n = natsMsg_GetDataLength(reply);
	if (!d || n < 2 || memmem(d, (size_t)n, "\"error\"", 7)) {
		log_msg(CONF_LOG_WARNING, "cluster: the journal refused a record: %.*s",
			n > 200 ? 200 : n, d ? d : "");
		s = NATS_ERR;
	}
	natsMsg_Destroy(reply);
	return s;
}

natsStatus cluster_journal_write(struct cluster *c, uint64_t pos, uint64_t end)
{
	if (!c->jbuf && !(c->jbuf = malloc(c->jr_chunk)))
		return NATS_NO_MEMORY;
	cluster_wire_list_start((uint8_t *)c->jbuf, 'J');
	c->jlen = CLUSTER_LIST_HEAD;
	const struct rec *x;
	natsStatus s = NATS_OK;
	while (s == NATS_OK && (x = ring_at(&c->out, &pos, end))) {
		if (x->kind != REC_PUBLISH || !x->ticket)
			continue;
		if (CLUSTER_LIST_ITEM + (size_t)x->data_len > c->jr_chunk - CLUSTER_LIST_HEAD) {
			log_msg(CONF_LOG_WARNING, "cluster: a message of %u bytes is larger than a journal "
				"record may be: not in the journal", x->data_len);
			continue;
		}
		if (c->jlen + CLUSTER_LIST_ITEM + x->data_len > c->jr_chunk) {
			s = journal_send(c, false);
			c->jlen = CLUSTER_LIST_HEAD;
		}
		cluster_wire_list_put((uint8_t *)c->jbuf + c->jlen, rec_data(x), x->data_len);
		c->jlen += CLUSTER_LIST_ITEM + x->data_len;
	}
	if (s == NATS_OK)
		s = journal_send(c, true); /* also when empty: it confirms what came before */
	return s;
}

void cluster_journal_unpack(struct cluster *c, uint64_t job, const uint8_t *d, size_t n,
			    uint64_t now)
{
	const uint8_t *msg;
	size_t at = 0, l;
	while (cluster_wire_list_next(d, n, 'J', &at, &msg, &l) > 0) {
		struct engine_cluster_msg m;
		if (cluster_wire_decode(msg, l, &m) == 0)
			engine_cluster_replay(c->engine, job, &m, now);
	}
}

/* ---- replays ------------------------------------------------------------ */

uint64_t cluster_journal_replay(void *ctx, uint64_t from_ms)
{
	struct cluster *c = ctx;
	if (!c->jr_on)
		return 0;
	pthread_mutex_lock(&c->jr_mu);
	if (!c->jr_next.id) {
		c->jr_next.id = ++c->jr_ids;
		c->jr_next.from_ms = from_ms;
		c->jr_next.cmds = c->cmds_posted; /* its subscriptions go first */
		pthread_cond_signal(&c->jr_cv);
	} else if (from_ms < c->jr_next.from_ms) {
		c->jr_next.from_ms = from_ms;
	}
	uint64_t id = c->jr_next.id;
	pthread_mutex_unlock(&c->jr_mu);
	atomic_fetch_add(&c->replays, 1);
	return id;
}

/* Puts one record into the incoming ring, waiting while it is half full
 * (the loop drains it; the other half stays for live messages, which are
 * dropped when they find no room). Returns 0, or -1 when the cluster
 * stops. */
static int replay_put(struct cluster *c, uint8_t kind, uint64_t job, const void *data, size_t len)
{
	for (;;) {
		uint8_t *d;
		pthread_mutex_lock(&c->in.mu);
		bool room = c->in.wpos - c->in.rpos + len <= c->in.cap / 2;
		int rc = room ? ring_put(&c->in, kind, "", 0, len, job, &d) : -1;
		if (rc == 0 && len)
			memcpy(d, data, len);
		pthread_mutex_unlock(&c->in.mu);
		cluster_wake(c);
		if (rc == 0)
			return 0;
		pthread_mutex_lock(&c->jr_mu);
		bool stop = c->jr_stop;
		pthread_mutex_unlock(&c->jr_mu);
		if (stop)
			return -1;
		sleep_ms(5);
	}
}

/* Reads the journal for job j into the incoming ring. Returns the
 * messages read, or -1 when it could not be read. */
static long replay_read(struct cluster *c, const struct jr_job *j)
{
	/* the sessions' subscriptions are in NATS, so what the stream does not
	 * have yet reaches them live: the subscriptions posted before the job
	 * were sent, and a flush has them in the server */
	for (int i = 0; i < 500 && (uint64_t)atomic_load(&c->cmds_applied) < j->cmds; i++)
		sleep_ms(10);
	natsConnection_FlushTimeout(c->nc, 2000);
	sleep_ms(50); /* the stream stores what the server routed a moment ago */
	char name[160], subj[160];
	snprintf(name, sizeof name, "%s_journal", c->name);
	snprintf(subj, sizeof subj, "%s.j", c->name);
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s = NATS_ERR;
	/* a nats-server just started again may still be loading its streams */
	for (int i = 0; i < 20 && (s = js_GetStreamInfo(&si, c->jrjs, name, NULL, &jerr)) != NATS_OK; i++)
		sleep_ms(250);
	if (s != NATS_OK)
		return -1;
	uint64_t last = si->State.LastSeq;
	int64_t last_ns = si->State.LastTime;
	jsStreamInfo_Destroy(si);
	int64_t from_ns = ((int64_t)j->from_ms - JOURNAL_MARGIN_MS) * 1000000;
	if (!last || last_ns < from_ns)
		return 0; /* nothing since */
	jsOptions jo;
	jsOptions_Init(&jo);
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Stream = name;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverByStartTime;
	so.Config.OptStartTime = from_ns;
	natsSubscription *sub = NULL;
	s = js_SubscribeSync(&sub, c->jrjs, subj, &jo, &so, &jerr);
	if (s != NATS_OK)
		return -1;
	long n = 0;
	for (;;) {
		natsMsg *m = NULL;
		s = natsSubscription_NextMsg(&m, sub, JOURNAL_READ_MS);
		if (s != NATS_OK) {
			log_warn("cluster: journal replay stopped before the end (%s): %ld messages read",
				 natsStatus_GetText(s), n);
			break;
		}
		jsMsgMetaData *md = NULL;
		uint64_t seq = 0;
		if (natsMsg_GetMetaData(&md, m) == NATS_OK) {
			seq = md->Sequence.Stream;
			jsMsgMetaData_Destroy(md);
		}
		int rc = replay_put(c, REC_REPLAY, j->id, natsMsg_GetData(m),
				    (size_t)natsMsg_GetDataLength(m));
		natsMsg_Destroy(m);
		if (rc < 0)
			break;
		n++;
		if (seq >= last || !seq)
			break;
	}
	natsSubscription_Unsubscribe(sub);
	natsSubscription_Destroy(sub);
	return n;
}

static void *replay_thread(void *arg)
{
	struct cluster *c = arg;
	pthread_mutex_lock(&c->jr_mu);
	for (;;) {
		while (!c->jr_stop && !c->jr_next.id)
			pthread_cond_wait(&c->jr_cv, &c->jr_mu);
		if (c->jr_stop)
			break;
		struct jr_job j = c->jr_next;
		c->jr_next.id = 0; /* later sessions wait for a job of their own */
		pthread_mutex_unlock(&c->jr_mu);
		long n = replay_read(c, &j);
		if (n < 0)
			log_warn("cluster: the journal could not be read: sessions resumed from a dead "
				 "node's checkpoint go on as of their checkpoint");
		else
			atomic_fetch_add(&c->replayed, (uint64_t)n);
		replay_put(c, REC_REPLAY_END, j.id, NULL, 0);
		pthread_mutex_lock(&c->jr_mu);
	}
	pthread_mutex_unlock(&c->jr_mu);
	return NULL;
}

int cluster_journal_start(struct cluster *c)
{
	if (!c->cfg.journal_bytes)
		return 0;
	pthread_mutex_init(&c->jr_mu, NULL);
	pthread_cond_init(&c->jr_cv, NULL);
	c->jr_init = true;
	if (natsConnection_JetStream(&c->jrjs, c->nc, NULL) != NATS_OK)
		return -1;
	if (pthread_create(&c->jr_thread, NULL, replay_thread, c) != 0)
		return -1;
	c->jr_on = true;
	return 0;
}

void cluster_journal_stop(struct cluster *c)
{
	if (!c->jr_init)
		return;
	pthread_mutex_lock(&c->jr_mu);
	c->jr_stop = true;
	pthread_cond_signal(&c->jr_cv);
	pthread_mutex_unlock(&c->jr_mu);
	if (c->jr_on)
		pthread_join(c->jr_thread, NULL);
	c->jr_on = false;
	jsCtx_Destroy(c->jrjs);
	c->jrjs = NULL;
	free(c->jbuf);
	c->jbuf = NULL;
}

void cluster_journal_free(struct cluster *c)
{
	if (!c->jr_init)
		return;
	pthread_mutex_destroy(&c->jr_mu);
	pthread_cond_destroy(&c->jr_cv);
	c->jr_init = false;
}
