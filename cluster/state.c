/*
 * state.c - a node's persistent sessions outlive the node (docs/cluster.md,
 * "A node that dies"). Every midge_cluster_checkpoint_ms the loop asks the
 * engine for the sessions that changed since their last copy
 * (engine_cluster_checkpoint) and this node writes each to the bucket
 * NAME_state under "<node>.<client id as a key>", encoded as a hand-over
 * (engine/move.c); a session that ends here deletes its key. The writes
 * are JetStream publishes to the bucket's subjects that do not wait for
 * their acknowledgement, so the cluster thread goes on forwarding
 * messages meanwhile (NATS keeps one connection's messages in order: a
 * delete never overtakes the put before it).
 *
 * When a node dies, its copies are read two ways:
 * - a client that connects again on another node: the claim (owner.c)
 *   finds the dead node holding the id, which cannot hand it over, and
 *   reads the dead node's copy instead (cluster_state_take);
 * - the node that reaps the dead one (will.c) adopts the copies nobody
 *   claimed (cluster_state_adopt): it claims each id in NAME_owners (a
 *   compare-and-set from the dead node) and the loop makes it an offline
 *   session here, with its pending will, so messages to it are queued
 *   from then on and its expiry runs. A node that starts again under a
 *   name whose copies are still there adopts its own.
 * Either way each key is read once and deleted: the bucket holds one key
 * per persistent session of a live node.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/internal.h"
#include "cluster/subject.h"
#include "cluster/wire.h"
#include "engine/engine.h"
#include "transport/log.h"

/* How long a copy being adopted waits for room in the loop's ring. */
#define STATE_ADOPT_WAIT_MS 5000

/* libnats thread: JetStream did not take a copy (the error handler of
 * the publishes that do not wait). */
static void state_on_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
	(void)js;
	(void)pae;
	struct cluster *c = closure;
	atomic_fetch_add(&c->ck_failed, 1);
}

natsStatus cluster_state_open(struct cluster *c)
{
	jsOptions o;
	jsOptions_Init(&o);
	o.PublishAsync.ErrHandler = state_on_error;
	o.PublishAsync.ErrHandlerClosure = c;
	o.PublishAsync.MaxPending = 4096; /* then a publish waits: bounded */
	natsStatus s = natsConnection_JetStream(&c->sjs, c->nc, &o);
	if (s == NATS_OK)
		s = cluster_kv_bucket(c, c->js, &c->state, "state", 0);
	if (s == NATS_OK)
		s = cluster_kv_bucket(c, c->ojs, &c->ostate, "state", 0);
	return s;
}

/* ---- the loop ---------------------------------------------------------- */

int cluster_state_changed(void *ctx, const uint8_t *cid, size_t len, const uint8_t *state,
			  size_t slen)
{
	struct cluster *c = ctx;
	char key[CLUSTER_SUBJECT_MAX];
	int nl = snprintf(key, sizeof key, "%s.", c->node);
	int kl = cluster_key_topic(key + nl, sizeof key - (size_t)nl, cid, len);
	if (kl < 0)
		return 0; /* too long for a key: the session stays this node's alone */
	uint8_t *data;
	pthread_mutex_lock(&c->out.mu);
	/* copies take at most half the buffer: messages come first */
	int rc = -1;
	if (c->out.wpos - c->out.rpos + slen <= c->out.cap / 2 || c->quiet)
		rc = ring_put(&c->out, REC_STATE, key, (size_t)(nl + kl), slen, 0, &data);
	if (rc == 0) {
		if (slen)
			memcpy(data, state, slen);
		pthread_cond_signal(&c->out.cv);
	}
	pthread_mutex_unlock(&c->out.mu);
	return rc;
}

/* Every midge_cluster_checkpoint_ms (every second without checkpoints):
 * the copies of the sessions that changed, and the ids to give back. */
static void state_on_timer(uv_timer_t *t)
{
	struct cluster *c = t->data;
	cluster_owner_sweep(c);
	if (!c->cfg.checkpoint_ms)
		return;
	uint32_t n = engine_cluster_checkpoint(c->engine, c->session_max, c->out.cap / 4,
					       cluster_now_ms());
	atomic_fetch_add(&c->ck_written, n);
	uint64_t failed = atomic_load(&c->ck_failed);
	if (failed > c->ck_failed_logged) {
		log_warn("cluster: JetStream refused %llu session checkpoints (the sessions are "
			 "offered again at their next change)",
			 (unsigned long long)(failed - c->ck_failed_logged));
		c->ck_failed_logged = failed;
	}
}

int cluster_state_start(struct cluster *c)
{
	if (uv_timer_init(c->loop, &c->ck_timer) != 0)
		return -1;
	c->ck_timer.data = c;
	c->ck_timer_on = true;
	uint32_t every = c->cfg.checkpoint_ms ? c->cfg.checkpoint_ms : 1000;
	return uv_timer_start(&c->ck_timer, state_on_timer, every, every);
}

void cluster_state_quiet(struct cluster *c)
{
	if (!c->ck_timer_on)
		return;
	uv_timer_stop(&c->ck_timer);
	if (!c->cfg.checkpoint_ms)
		return;
	/* what changed since the last copy, so the sessions resume elsewhere
	 * as they are now (c->quiet: the whole buffer may take them) */
	engine_cluster_checkpoint(c->engine, c->session_max, SIZE_MAX, cluster_now_ms());
}

void cluster_state_apply(struct cluster *c, const struct rec *x, uint64_t now)
{
	uint8_t cid[CLUSTER_SUBJECT_MAX];
	int cl = cluster_key_parse(cid, sizeof cid, rec_name(x), x->name_len);
	if (cl < 0)
		return;
	const uint8_t *d = rec_data(x);
	if (x->kind == REC_ADOPT) {
		if (engine_cluster_adopt(c->engine, cid, (size_t)cl, d, x->data_len, now) < 0)
			log_warn("cluster: a dead node's session checkpoint was not adopted (invalid, "
				 "or the client is connected here)");
		else
			atomic_fetch_add(&c->adopted, 1);
		return;
	}
	struct engine_cluster_msg m;
	if (x->data_len < 4 || cluster_wire_decode(d + 4, x->data_len - 4, &m) < 0)
		return;
	uint32_t delay = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
	if (engine_cluster_adopt_will(c->engine, cid, (size_t)cl, &m, delay, now) < 0)
		atomic_fetch_add(&c->dropped_in, 1);
}

/* ---- the cluster thread ------------------------------------------------ */

natsStatus cluster_state_store(struct cluster *c, const char *key, const uint8_t *data,
			       size_t len)
{
	if (len) {
		char subj[CLUSTER_SUBJECT_MAX + 200];
		snprintf(subj, sizeof subj, "$KV.%s_state.%s", c->name, key);
		return js_PublishAsync(c->sjs, subj, data, (int)len, NULL);
	}
	natsMsg *m = NULL;
	natsStatus s = cluster_kv_marker(c, &m, "state", key);
	if (s == NATS_OK)
		s = js_PublishMsgAsync(c->sjs, &m, NULL); /* takes m on success */
	natsMsg_Destroy(m);
	return s;
}

/* Claims idkey from node (or, node being this one, keeps it) in the
 * owners bucket. Returns whether this node holds it now. */
static bool state_claim_from(struct cluster *c, const char *idkey, const char *node)
{
	kvEntry *en = NULL;
	uint64_t rev = 0;
	natsStatus s = kvStore_Get(&en, c->owners, idkey);
	if (s == NATS_NOT_FOUND)
		return kvStore_CreateString(&rev, c->owners, idkey, c->node) == NATS_OK;
	if (s != NATS_OK)
		return false;
	const char *v = kvEntry_ValueString(en);
	bool was = v && strcmp(v, node) == 0;
	uint64_t at = kvEntry_Revision(en);
	kvEntry_Destroy(en);
	if (!was)
		return false; /* the client connected elsewhere since: its session is there */
	if (strcmp(node, c->node) == 0)
		return true;
	return kvStore_UpdateString(&rev, c->owners, idkey, c->node, at) == NATS_OK;
}

/* Copies one record into the loop's ring, waiting for room a while (the
 * loop drains it): an adopted session is not dropped for a burst. */
static bool state_input_wait(struct cluster *c, uint8_t kind, const char *name,
			     const void *data, size_t len)
{
	for (int i = 0; i < STATE_ADOPT_WAIT_MS / 10; i++) {
		uint8_t *d;
		pthread_mutex_lock(&c->in.mu);
		int rc = ring_put(&c->in, kind, name, strlen(name), len, 0, &d);
		if (rc == 0 && len)
			memcpy(d, data, len);
		pthread_mutex_unlock(&c->in.mu);
		cluster_wake(c);
		if (rc == 0)
			return true;
		struct timespec t = {0, 10 * 1000000L};
		nanosleep(&t, NULL);
	}
	atomic_fetch_add(&c->dropped_in, 1);
	return false;
}

static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int cluster_state_adopt(struct cluster *c, const char *node, struct state_set *out)
{
	out->keys = NULL;
	out->n = 0;
	if (!c->state)
		return 0;
	char filter[CLUSTER_NODE_NAME_MAX + 8];
	snprintf(filter, sizeof filter, "%s.>", node);
	kvWatchOptions o;
	kvWatchOptions_Init(&o);
	o.IgnoreDeletes = true;
	kvWatcher *w = NULL;
	if (kvStore_Watch(&w, c->state, filter, &o) != NATS_OK)
		return -1;
	size_t plen = strlen(node) + 1, cap = 0;
	uint32_t taken = 0, gone = 0;
	for (;;) {
		kvEntry *en = NULL;
		if (kvWatcher_Next(&en, w, 2000) != NATS_OK || !en)
			break; /* NULL: every copy there is was seen */
		const char *key = kvEntry_Key(en);
		const char *idkey = key + plen;
		if (strlen(key) > plen && state_claim_from(c, idkey, node) &&
		    state_input_wait(c, REC_ADOPT, idkey, kvEntry_Value(en),
				     (size_t)kvEntry_ValueLen(en))) {
			taken++;
			if (out->n == cap) {
				size_t nc = cap ? cap * 2 : 16;
				char **k = realloc(out->keys, nc * sizeof *k);
				if (k) {
					out->keys = k;
					cap = nc;
				}
			}
			if (out->n < cap && (out->keys[out->n] = strdup(idkey)))
				out->n++;
		} else {
			gone++;
		}
		kvStore_Delete(c->state, key);
		kvEntry_Destroy(en);
	}
	kvWatcher_Destroy(w);
	if (out->n)
		qsort(out->keys, out->n, sizeof *out->keys, key_cmp);
	if (taken || gone)
		log_notice("cluster: %u sessions of node %s adopted here from their checkpoints, "
			   "%u left to the nodes their clients connected to since",
			   taken, node, gone);
	return 0;
}

bool cluster_state_has(const struct state_set *set, const char *idkey)
{
	return set->n && bsearch(&idkey, set->keys, set->n, sizeof *set->keys, key_cmp);
}

void cluster_state_set_free(struct state_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		free(set->keys[i]);
	free(set->keys);
	set->keys = NULL;
	set->n = 0;
}

/* ---- the owner thread -------------------------------------------------- */

void cluster_state_take(struct cluster *c, struct owner_job *j, const char *from)
{
	if (!c->ostate)
		return;
	char key[CLUSTER_SUBJECT_MAX + CLUSTER_NODE_NAME_MAX + 2];
	snprintf(key, sizeof key, "%s.%s", from, j->key);
	kvEntry *en = NULL;
	if (kvStore_Get(&en, c->ostate, key) != NATS_OK)
		return;
	int vl = kvEntry_ValueLen(en);
	if (vl > 0 && (j->session = malloc((size_t)vl)) != NULL) {
		memcpy(j->session, kvEntry_Value(en), (size_t)vl);
		j->session_len = (size_t)vl;
		atomic_fetch_add(&c->resumed, 1);
		log_notice("cluster: a session of node %s resumes here from its checkpoint", from);
	}
	kvEntry_Destroy(en);
	kvStore_Delete(c->ostate, key); /* read once */
}

void cluster_state_close(struct cluster *c)
{
	if (c->sjs) {
		jsPubOptions po;
		jsPubOptions_Init(&po);
		po.MaxWait = 2000;
		js_PublishAsyncComplete(c->sjs, &po); /* the last copies reach JetStream */
	}
	kvStore_Destroy(c->state);
	kvStore_Destroy(c->ostate);
	jsCtx_Destroy(c->sjs);
	c->state = c->ostate = NULL;
	c->sjs = NULL;
}
