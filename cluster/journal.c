/*
 * journal.c - the cluster's QoS 1/2 journal (docs/cluster.md, "The
 * journal"): a JetStream stream, NAME_msgs, that takes every QoS 1/2
 * message a node publishes (their subjects start "NAME.1.", QoS 0 ones
 * "NAME.0.": nodes subscribe to both with "NAME.*."), kept for six leases.
 *
 * Two uses:
 * - the publisher's acknowledgement: the cluster thread sends the last
 *   QoS 1/2 message of each batch as a request and waits for the
 *   stream's answer instead of a flush; the stream stores one
 *   connection's messages in order, so that answer says every message of
 *   the batch is stored (and outlives a nats-server killed afterwards);
 * - a session resumed from a dead node's checkpoint missed what reached
 *   that node after the checkpoint, and what was published while nobody
 *   subscribed for it: the replay thread reads the stream from the
 *   checkpoint's time (less JOURNAL_MARGIN_MS) up to its last message
 *   into the incoming ring (REC_REPLAY, then REC_REPLAY_END), and the
 *   engine keeps, per session, only what its checkpoint did not hold
 *   (each message carries its node's run and sequence number).
 */
#define _GNU_SOURCE /* memmem */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/internal.h"
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
	snprintf(name, sizeof name, "%s_msgs", c->name);
	snprintf(subj, sizeof subj, "%s.1.>", c->name);
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
	return s;
}

/* ---- the publisher's side (cluster thread) ----------------------------- */

natsStatus cluster_journal_confirm(struct cluster *c, const char *subj, const uint8_t *data,
				   size_t len)
{
	natsMsg *reply = NULL;
	natsStatus s = natsConnection_Request(&reply, c->nc, subj, data, (int)len, 5000);
	if (s != NATS_OK)
		return s;
	/* {"stream":"NAME_msgs","seq":N} or {"error":{...}} */
	const char *d = natsMsg_GetData(reply);
	int n = natsMsg_GetDataLength(reply);
	if (!d || n < 2 || memmem(d, (size_t)n, "\"error\"", 7)) {
		log_msg(CONF_LOG_WARNING, "cluster: the journal refused a message: %.*s",
			n > 200 ? 200 : n, d ? d : "");
		s = NATS_ERR;
	}
	natsMsg_Destroy(reply);
	return s;
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

/* Puts one record into the incoming ring, waiting while it is full (the
 * loop drains it). Returns 0, or -1 when the cluster stops. */
static int replay_put(struct cluster *c, uint8_t kind, uint64_t job, const void *data, size_t len)
{
	for (;;) {
		uint8_t *d;
		pthread_mutex_lock(&c->in.mu);
		int rc = ring_put(&c->in, kind, "", 0, len, job, &d);
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
	snprintf(name, sizeof name, "%s_msgs", c->name);
	snprintf(subj, sizeof subj, "%s.1.>", c->name);
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_GetStreamInfo(&si, c->jrjs, name, NULL, &jerr);
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
}

void cluster_journal_free(struct cluster *c)
{
	if (!c->jr_init)
		return;
	pthread_mutex_destroy(&c->jr_mu);
	pthread_cond_destroy(&c->jr_cv);
	c->jr_init = false;
}
