/*
 * owner.c - sessions cluster-wide (docs/cluster.md, "Sessions across
 * nodes"): the bucket NAME_owners maps each client id to the node that
 * holds its session (create = claim, update with the revision =
 * compare-and-set). A CONNECT, once authenticated, waits while the owner
 * thread claims its id: free or ours, it goes on at once; another node's,
 * that node is asked on NAME.o.<node> to hand the session over. It closes
 * the client's connection there (0x8E), writes the encoded session to the
 * bucket NAME_sessions and answers; the owner thread reads it back and
 * the loop resumes the CONNECT with it (engine/move.c).
 *
 * Nothing here blocks the loop: the claim and the read run on the owner
 * thread, the write on the cluster thread (it carries the other node's
 * answer too, so two nodes claiming from each other never wait on each
 * other's owner thread). NATS unreachable: the CONNECT goes on without a
 * claim (the node keeps serving; see docs/cluster.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/internal.h"
#include "cluster/subject.h"
#include "engine/engine.h"
#include "engine/query.h"
#include "transport/log.h"

/* Claims waiting for the owner thread at most: past it a CONNECT goes on
 * without one (logged), so a storm of CONNECTs cannot grow memory. */
#define OWNER_PENDING_MAX 4096
/* How long the claiming node waits for the old node's hand-over. */
#define OWNER_HANDOVER_MS 3000
/* How long an uncollected moved session stays in its bucket. */
#define OWNER_SESSION_TTL_MS (5 * 60 * 1000)

/* libnats thread: another node claims one of our client ids. Copied into
 * the incoming ring for the loop (key, reply subject). */
static void on_claim_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	(void)nc;
	(void)sub;
	struct cluster *c = closure;
	const char *reply = natsMsg_GetReply(msg);
	int kl = natsMsg_GetDataLength(msg);
	if (reply && kl > 0 && kl < CLUSTER_SUBJECT_MAX)
		cluster_input_put(c, REC_RELEASE, natsMsg_GetData(msg), (size_t)kl, reply,
				  strlen(reply));
	natsMsg_Destroy(msg);
}

/* ---- the owner thread -------------------------------------------------- */

/* Claims key for this node. Returns the node that held it (to be asked
 * for the session) in from, or "" when it was free, ours, or NATS failed. */
static void owner_cas(struct cluster *c, const char *key, char *from, size_t cap)
{
	from[0] = '\0';
	for (int tries = 0; tries < 4; tries++) {
		uint64_t rev = 0;
		if (kvStore_CreateString(&rev, c->owners, key, c->node) == NATS_OK)
			return; /* nobody had it */
		kvEntry *en = NULL;
		natsStatus s = kvStore_Get(&en, c->owners, key);
		if (s == NATS_NOT_FOUND)
			continue; /* deleted meanwhile: create again */
		if (s != NATS_OK) {
			log_warn("cluster: cannot read the owner of a client id: %s (the session "
				 "starts here alone)", natsStatus_GetText(s));
			return;
		}
		const char *v = kvEntry_ValueString(en);
		bool ours = v && strcmp(v, c->node) == 0;
		snprintf(from, cap, "%s", v && !ours ? v : "");
		uint64_t was = kvEntry_Revision(en);
		kvEntry_Destroy(en);
		if (ours)
			return;
		/* compare-and-set: a node that claimed it meanwhile wins, we look again */
		if (kvStore_UpdateString(&rev, c->owners, key, c->node, was) == NATS_OK)
			return;
		from[0] = '\0';
	}
	log_warn("cluster: client id claimed by other nodes at the same time; this node takes it");
}

/* Deletes key from the owners bucket if this node still holds it: a
 * delete marker published with the revision read as the expected last
 * one, so another node's claim meanwhile is kept. */
static void owner_give_back(struct cluster *c, const char *key)
{
	kvEntry *en = NULL;
	if (kvStore_Get(&en, c->owners, key) != NATS_OK)
		return;
	const char *v = kvEntry_ValueString(en);
	bool ours = v && strcmp(v, c->node) == 0;
	uint64_t rev = kvEntry_Revision(en);
	kvEntry_Destroy(en);
	if (!ours)
		return;
	natsMsg *m = NULL;
	natsStatus s = cluster_kv_marker(c, &m, "owners", key);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.ExpectLastSubjectSeq = rev;
	if (s == NATS_OK)
		js_PublishMsg(NULL, c->ojs, m, &po, NULL); /* refused: claimed since, theirs */
	natsMsg_Destroy(m);
}

/* Asks node from to hand key's session over; fills j with what it wrote. */
static void owner_fetch(struct cluster *c, struct owner_job *j, const char *from)
{
	char subj[CLUSTER_SUBJECT_MAX];
	snprintf(subj, sizeof subj, "%s.o.%s", c->name, from);
	natsMsg *reply = NULL;
	natsStatus s = natsConnection_Request(&reply, c->nc, subj, j->key, (int)strlen(j->key),
					      OWNER_HANDOVER_MS);
	if (s == NATS_NO_RESPONDERS || s == NATS_TIMEOUT) {
		log_notice("cluster: node %s, which held a client id, is gone (%s): the session "
			   "resumes here from its checkpoint, if it has one",
			   from, natsStatus_GetText(s));
		cluster_state_take(c, j, from);
		return;
	}
	if (s != NATS_OK) {
		log_warn("cluster: node %s did not hand a session over (%s): it starts anew here",
			 from, natsStatus_GetText(s));
		return;
	}
	bool moved = natsMsg_GetDataLength(reply) == 1 && natsMsg_GetData(reply)[0] == '1';
	natsMsg_Destroy(reply);
	if (!moved)
		return; /* it had no session that outlives its connection */
	kvEntry *en = NULL;
	s = kvStore_Get(&en, c->sessions, j->key);
	if (s != NATS_OK) {
		log_warn("cluster: the session node %s handed over cannot be read: %s", from,
			 natsStatus_GetText(s));
		return;
	}
	int vl = kvEntry_ValueLen(en);
	if (vl > 0 && (j->session = malloc((size_t)vl)) != NULL) {
		memcpy(j->session, kvEntry_Value(en), (size_t)vl);
		j->session_len = (size_t)vl;
	}
	kvEntry_Destroy(en);
	kvStore_Delete(c->sessions, j->key); /* read once */
}

static void *owner_thread(void *arg)
{
	struct owner_shard *sh = arg;
	struct cluster *c = sh->c;
	pthread_mutex_lock(&sh->mu);
	for (;;) {
		while (!sh->stop && !sh->jobs)
			pthread_cond_wait(&sh->cv, &sh->mu);
		if (sh->stop)
			break;
		struct owner_job *j = sh->jobs;
		sh->jobs = j->next;
		if (!sh->jobs)
			sh->tail = &sh->jobs;
		pthread_mutex_unlock(&sh->mu);
		if (!j->claim) {
			if (atomic_load(&c->connected))
				owner_give_back(c, j->key);
		} else if (atomic_load(&c->connected)) {
			char from[128];
			owner_cas(c, j->key, from, sizeof from);
			if (from[0])
				owner_fetch(c, j, from);
		}
		pthread_mutex_lock(&c->omu);
		j->next = c->odone;
		c->odone = j;
		pthread_mutex_unlock(&c->omu);
		cluster_wake(c);
		pthread_mutex_lock(&sh->mu);
	}
	pthread_mutex_unlock(&sh->mu);
	return NULL;
}

/* ---- the loop ---------------------------------------------------------- */

/* Posts a job for the owner thread (claim 0: a give-back). Returns 0, or
 * -1 when the id is too long for a key or memory ran out. */
static int owner_post(struct cluster *c, uint64_t claim, const uint8_t *cid, size_t len)
{
	char key[CLUSTER_SUBJECT_MAX];
	int kl = cluster_key_topic(key, sizeof key, cid, len);
	if (kl < 0)
		return -1; /* too long for a key: served here alone */
	struct owner_job *j = calloc(1, sizeof *j + (size_t)kl + 1);
	if (!j)
		return -1;
	j->claim = claim;
	memcpy(j->key, key, (size_t)kl + 1);
	uint32_t h = 2166136261u; /* FNV-1a of the key: its thread */
	for (int i = 0; i < kl; i++)
		h = (h ^ (uint8_t)key[i]) * 16777619u;
	struct owner_shard *sh = &c->oshard[h % CLUSTER_OWNER_THREADS];
	pthread_mutex_lock(&sh->mu);
	*sh->tail = j;
	sh->tail = &j->next;
	pthread_cond_signal(&sh->cv);
	pthread_mutex_unlock(&sh->mu);
	c->opending++;
	return 0;
}

/* Ids waiting to be given back at most: past it one stays in the bucket
 * (a CONNECT elsewhere then asks this node, which answers "nothing"). */
#define OWNER_ENDED_MAX 65536

void cluster_owner_ended(void *ctx, const uint8_t *cid, size_t len)
{
	struct cluster *c = ctx;
	if (c->n_ended == c->cap_ended) {
		uint32_t cap = c->cap_ended ? c->cap_ended * 2 : 64;
		char **n = cap <= OWNER_ENDED_MAX ? realloc(c->ended, cap * sizeof *n) : NULL;
		if (!n)
			return;
		c->ended = n;
		c->cap_ended = cap;
	}
	char *k = malloc(len + 1);
	if (!k)
		return;
	memcpy(k, cid, len);
	k[len] = '\0';
	c->ended[c->n_ended++] = k;
}

void cluster_owner_sweep(struct cluster *c)
{
	if (!atomic_load(&c->connected))
		return; /* kept for when NATS is back (bounded by OWNER_ENDED_MAX) */
	uint32_t i = 0;
	for (; i < c->n_ended && c->opending < OWNER_PENDING_MAX / 2; i++) {
		char *cid = c->ended[i];
		struct engine_client_info info;
		/* a new session of the id here keeps it (its claim came after) */
		if (engine_query_client(c->engine, cid, strlen(cid), &info) < 0)
			owner_post(c, 0, (const uint8_t *)cid, strlen(cid));
		free(cid);
	}
	if (i && i < c->n_ended)
		memmove(c->ended, c->ended + i, (c->n_ended - i) * sizeof *c->ended);
	c->n_ended -= i;
}

int cluster_owner_claim(void *ctx, uint64_t claim, const uint8_t *cid, size_t len)
{
	struct cluster *c = ctx;
	if (!c->oshard[0].on || !atomic_load(&c->connected))
		return -1; /* NATS unreachable: this node serves the client alone */
	if (c->opending >= OWNER_PENDING_MAX) {
		log_warn("cluster: %u client ids being claimed already: a CONNECT goes on without "
			 "a claim", c->opending);
		return -1;
	}
	return owner_post(c, claim, cid, len);
}

void cluster_owner_answers(struct cluster *c, uint64_t now)
{
	pthread_mutex_lock(&c->omu);
	struct owner_job *j = c->odone;
	c->odone = NULL;
	pthread_mutex_unlock(&c->omu);
	while (j) {
		struct owner_job *next = j->next;
		c->opending--;
		if (j->claim)
			engine_cluster_claimed(c->engine, j->claim, j->session, j->session_len, now);
		free(j->session);
		free(j);
		j = next;
	}
}

void cluster_owner_release(struct cluster *c, const char *key, size_t klen, const char *reply,
			   size_t rlen, uint64_t now)
{
	uint8_t cid[CLUSTER_SUBJECT_MAX];
	int cl = cluster_key_parse(cid, sizeof cid, key, klen);
	if (cl < 0 || rlen > UINT16_MAX)
		return;
	uint8_t *enc = NULL;
	size_t el = 0;
	if (engine_cluster_release(c->engine, cid, (size_t)cl, c->session_max, &enc, &el, now) < 0)
		log_warn("cluster: out of memory encoding a session for another node: it starts anew there");
	uint8_t *data;
	pthread_mutex_lock(&c->out.mu);
	int rc = ring_put(&c->out, REC_HANDOVER, key, klen, 2 + rlen + el, 0, &data);
	if (rc == 0) {
		data[0] = (uint8_t)(rlen >> 8);
		data[1] = (uint8_t)rlen;
		memcpy(data + 2, reply, rlen);
		if (el)
			memcpy(data + 2 + rlen, enc, el);
		pthread_cond_signal(&c->out.cv);
	}
	pthread_mutex_unlock(&c->out.mu);
	if (rc < 0)
		log_warn("cluster: buffer for NATS full: a session taken over by another node is lost");
	free(enc);
}

/* ---- the cluster thread ------------------------------------------------ */

natsStatus cluster_owner_handover(struct cluster *c, const char *key, const uint8_t *data,
				  size_t len)
{
	if (len < 2)
		return NATS_OK;
	size_t rlen = (size_t)data[0] << 8 | data[1];
	if (len < 2 + rlen)
		return NATS_OK;
	char reply[CLUSTER_SUBJECT_MAX];
	if (rlen >= sizeof reply)
		return NATS_OK;
	memcpy(reply, data + 2, rlen);
	reply[rlen] = '\0';
	size_t el = len - 2 - rlen;
	natsStatus s = NATS_OK;
	if (el)
		s = kvStore_Put(NULL, c->sessions, key, data + 2 + rlen, (int)el);
	if (s == NATS_OK)
		s = natsConnection_PublishString(c->nc, reply, el ? "1" : "0");
	return s;
}

/* ---- start and stop ---------------------------------------------------- */

natsStatus cluster_owner_start(struct cluster *c)
{
	pthread_mutex_init(&c->omu, NULL);
	for (int i = 0; i < CLUSTER_OWNER_THREADS; i++) {
		struct owner_shard *sh = &c->oshard[i];
		sh->c = c;
		pthread_mutex_init(&sh->mu, NULL);
		pthread_cond_init(&sh->cv, NULL);
		sh->tail = &sh->jobs;
	}
	c->oinit = true;
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = 2000;
	natsStatus s = natsConnection_JetStream(&c->ojs, c->nc, &jo);
	if (s == NATS_OK)
		s = cluster_kv_bucket(c, c->ojs, &c->owners, "owners", 0);
	if (s == NATS_OK)
		s = cluster_kv_bucket(c, c->ojs, &c->sessions, "sessions", OWNER_SESSION_TTL_MS);
	char subj[CLUSTER_SUBJECT_MAX];
	snprintf(subj, sizeof subj, "%s.o.%s", c->name, c->node);
	if (s == NATS_OK)
		s = natsConnection_Subscribe(&c->osub, c->nc, subj, on_claim_msg, c);
	if (s != NATS_OK)
		return s;
	int64_t mp = natsConnection_GetMaxPayload(c->nc);
	c->session_max = mp > 4096 ? (size_t)mp - 1024 : 0;
	for (int i = 0; i < CLUSTER_OWNER_THREADS; i++) {
		struct owner_shard *sh = &c->oshard[i];
		sh->on = pthread_create(&sh->thread, NULL, owner_thread, sh) == 0;
		if (!sh->on)
			return NATS_ERR;
	}
	return NATS_OK;
}

void cluster_owner_stop(struct cluster *c)
{
	for (int i = 0; i < CLUSTER_OWNER_THREADS; i++) {
		struct owner_shard *sh = &c->oshard[i];
		if (!sh->on)
			continue;
		pthread_mutex_lock(&sh->mu);
		sh->stop = true;
		pthread_cond_signal(&sh->cv);
		pthread_mutex_unlock(&sh->mu);
		pthread_join(sh->thread, NULL);
		sh->on = false;
	}
	if (c->osub) {
		natsSubscription_Unsubscribe(c->osub);
		natsSubscription_Destroy(c->osub);
		c->osub = NULL;
	}
	kvStore_Destroy(c->owners);
	kvStore_Destroy(c->sessions);
	jsCtx_Destroy(c->ojs);
	c->owners = c->sessions = NULL;
	c->ojs = NULL;
}

void cluster_owner_free(struct cluster *c)
{
	if (!c->oinit)
		return;
	for (int i = 0; i <= CLUSTER_OWNER_THREADS; i++) {
		struct owner_job *j = i < CLUSTER_OWNER_THREADS ? c->oshard[i].jobs : c->odone;
		for (struct owner_job *n; j; j = n) {
			n = j->next;
			free(j->session);
			free(j);
		}
		if (i < CLUSTER_OWNER_THREADS) {
			pthread_mutex_destroy(&c->oshard[i].mu);
			pthread_cond_destroy(&c->oshard[i].cv);
		}
	}
	c->odone = NULL;
	for (uint32_t i = 0; i < c->n_ended; i++)
		free(c->ended[i]);
	free(c->ended);
	c->ended = NULL;
	c->n_ended = c->cap_ended = 0;
	pthread_mutex_destroy(&c->omu);
	c->oinit = false;
}
