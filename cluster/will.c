/*
 * will.c - the wills of a node's clients outlive the node (docs/cluster.md,
 * "Wills of a node that died"). Each pending will is kept in the bucket
 * NAME_wills under "<node>.<client id as a key>" (a u32 delay, then the
 * will encoded as a message, cluster/wire.h) while its session holds it;
 * it is deleted when the will is published, discarded or its session
 * ends. Every node remembers which nodes held a lease in NAME_nodes at its
 * last heartbeat; when one's lease is gone (a stopped node gives it back,
 * a killed one lets it lapse), the first node to create "<node>.reaped" in
 * NAME_nodes (a compare-and-set: one node in the cluster) publishes that
 * node's wills, except for the clients whose id another node holds since
 * (their session resumed there [MQTT-3.1.3-9]). A will with a delay (the
 * smaller of its will delay and its session's expiry, as the engine
 * sends it) waits on that node's cluster thread for the delay, counted
 * from when the node was found gone, and goes out only if its client id
 * is still the dead node's then.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/internal.h"
#include "cluster/subject.h"
#include "cluster/wire.h"
#include "engine/engine.h"
#include "transport/log.h"

/* Nodes remembered between heartbeats at most. */
#define WILL_NODES_MAX 256

natsStatus cluster_will_open(struct cluster *c)
{
	return cluster_kv_bucket(c, c->js, &c->wills, "wills", 0);
}

/* ---- the loop ---------------------------------------------------------- */

void cluster_will_changed(void *ctx, const uint8_t *cid, size_t len,
			  const struct engine_cluster_msg *will, uint32_t delay)
{
	struct cluster *c = ctx;
	char key[CLUSTER_SUBJECT_MAX];
	int nl = snprintf(key, sizeof key, "%s.", c->node);
	int kl = cluster_key_topic(key + nl, sizeof key - (size_t)nl, cid, len);
	if (kl < 0)
		return; /* too long for a key: the will stays this node's alone */
	size_t dl = will ? 4 + cluster_wire_size(will) : 0;
	uint8_t *data;
	pthread_mutex_lock(&c->out.mu);
	int rc = ring_put(&c->out, REC_WILL, key, (size_t)(nl + kl), dl, 0, &data);
	if (rc == 0) {
		if (will) {
			for (int i = 0; i < 4; i++)
				data[i] = (uint8_t)(delay >> (24 - 8 * i));
			cluster_wire_encode(data + 4, will);
		}
		pthread_cond_signal(&c->out.cv);
	}
	pthread_mutex_unlock(&c->out.mu);
	if (rc < 0)
		log_warn("cluster: buffer for NATS full: a will is not kept for the cluster");
}

void cluster_will_publish(struct cluster *c, const uint8_t *data, size_t len, uint64_t now)
{
	struct engine_cluster_msg m;
	if (len < 4 || cluster_wire_decode(data + 4, len - 4, &m) < 0 ||
	    engine_cluster_will(c->engine, &m, now) < 0)
		atomic_fetch_add(&c->dropped_in, 1);
}

/* ---- the cluster thread ------------------------------------------------ */

natsStatus cluster_will_store(struct cluster *c, const char *key, const uint8_t *data, size_t len)
{
	if (!len)
		return kvStore_Delete(c->wills, key);
	return kvStore_Put(NULL, c->wills, key, data, (int)len);
}

/* Whether the client id of will key "<node>.<id>" is still node's. */
static bool will_owner_is(struct cluster *c, const char *idkey, const char *node)
{
	kvEntry *en = NULL;
	natsStatus s = kvStore_Get(&en, c->owners, idkey);
	if (s == NATS_NOT_FOUND)
		return true;
	if (s != NATS_OK)
		return true; /* unknown: the will goes (a will late is better than none) */
	const char *v = kvEntry_ValueString(en);
	bool same = v && strcmp(v, node) == 0;
	kvEntry_Destroy(en);
	return same;
}

/*
 * Keeps a will whose delay is not zero until it is due (its copy leaves
 * the bucket with the others: this node publishes it or nobody does).
 * Returns 0 when held, -1 to publish it now: no delay, or past the bound
 * (midge_cluster_buffer: a will early is better than none), or no memory.
 */
static int will_hold(struct cluster *c, const char *key, size_t plen, const uint8_t *v,
		     size_t vl)
{
	if (vl < 4)
		return -1;
	uint32_t delay = (uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 | v[3];
	if (!delay)
		return -1;
	if (c->wait_bytes + vl > c->cfg.buffer_bytes) {
		log_warn("cluster: the wills waiting for their delay fill midge_cluster_buffer: "
			 "the will of %s goes out now", key);
		return -1;
	}
	struct will_wait *w = malloc(sizeof *w + vl);
	if (!w || !(w->key = strdup(key))) {
		free(w);
		return -1;
	}
	w->due_ms = cluster_now_ms() + (uint64_t)delay * 1000;
	w->plen = plen;
	w->len = vl;
	memcpy(w->data, v, vl);
	struct will_wait **pp = &c->waits;
	while (*pp && (*pp)->due_ms <= w->due_ms)
		pp = &(*pp)->next;
	w->next = *pp;
	*pp = w;
	c->wait_bytes += vl;
	return 0;
}

static void will_wait_free(struct cluster *c, struct will_wait *w)
{
	c->wait_bytes -= w->len;
	free(w->key);
	free(w);
}

void cluster_will_due(struct cluster *c)
{
	uint64_t now = cluster_now_ms();
	while (c->waits && c->waits->due_ms <= now) {
		struct will_wait *w = c->waits;
		c->waits = w->next;
		char node[CLUSTER_NODE_NAME_MAX + 1];
		size_t nl = w->plen - 1 < sizeof node - 1 ? w->plen - 1 : sizeof node - 1;
		memcpy(node, w->key, nl);
		node[nl] = '\0';
		/* [MQTT-3.1.3-9] a client that connected again meanwhile (on
		 * any node: it claimed its id) has no will to publish */
		if (will_owner_is(c, w->key + w->plen, node))
			cluster_input_put(c, REC_WILL, w->key, strlen(w->key), w->data, w->len);
		will_wait_free(c, w);
	}
}

/* Adopts the sessions node left and publishes its wills, if this node is
 * the one to (the "<node>.reaped" mark, created once in the cluster; a
 * node started again under its old name does it for itself, self). The
 * wills of adopted sessions go to those sessions, as do all of a
 * restarted node's own (the engine knows which of its sessions came back
 * from its store with their own will). */
static void will_reap(struct cluster *c, const char *node, bool self)
{
	char mark[160];
	snprintf(mark, sizeof mark, "%s.reaped", node);
	uint64_t rev = 0;
	if (!self && kvStore_CreateString(&rev, c->nodes, mark, c->node) != NATS_OK)
		return; /* another node does it (or NATS failed: the next heartbeat does not retry) */
	struct state_set adopted;
	cluster_state_adopt(c, node, &adopted);
	char filter[160];
	snprintf(filter, sizeof filter, "%s.>", node);
	kvWatchOptions o;
	kvWatchOptions_Init(&o);
	o.IgnoreDeletes = true;
	kvWatcher *w = NULL;
	if (kvStore_Watch(&w, c->wills, filter, &o) != NATS_OK) {
		cluster_state_set_free(&adopted);
		return;
	}
	size_t plen = strlen(node) + 1;
	uint32_t n = 0, held = 0, skipped = 0, kept = 0;
	for (;;) {
		kvEntry *en = NULL;
		if (kvWatcher_Next(&en, w, 2000) != NATS_OK || !en)
			break; /* NULL: every will there is was seen */
		const char *key = kvEntry_Key(en);
		const uint8_t *v = kvEntry_Value(en);
		size_t vl = (size_t)kvEntry_ValueLen(en);
		if (strlen(key) > plen && (self || cluster_state_has(&adopted, key + plen))) {
			/* after the session's REC_ADOPT in the ring: the loop has it */
			cluster_input_put(c, REC_ADOPT_WILL, key + plen, strlen(key + plen), v, vl);
			kept++;
		} else if (strlen(key) > plen && will_owner_is(c, key + plen, node)) {
			if (will_hold(c, key, plen, v, vl) == 0) {
				held++;
			} else {
				cluster_input_put(c, REC_WILL, key, strlen(key), v, vl);
				n++;
			}
		} else {
			skipped++;
		}
		kvStore_Delete(c->wills, key);
		kvEntry_Destroy(en);
	}
	kvWatcher_Destroy(w);
	cluster_state_set_free(&adopted);
	if (!self || n || held || skipped || kept)
		log_notice("cluster: node %s is gone (its lease lapsed or it stopped): %u of its "
			   "clients' wills published here, %u held here for their will delay, %u "
			   "kept with their adopted sessions, %u of clients connected elsewhere "
			   "since dropped",
			   node, n, held, kept, skipped);
}

void cluster_will_reap_self(struct cluster *c)
{
	will_reap(c, c->node, true);
}

void cluster_will_check(struct cluster *c)
{
	kvKeysList kl;
	memset(&kl, 0, sizeof kl);
	natsStatus s = kvStore_Keys(&kl, c->nodes, NULL);
	if (s != NATS_OK && s != NATS_NOT_FOUND)
		return;
	char *now[WILL_NODES_MAX];
	int n = 0;
	for (int i = 0; i < kl.Count && n < WILL_NODES_MAX; i++) {
		const char *k = kl.Keys[i];
		if (!strchr(k, '.') && strcmp(k, c->node) != 0 && (now[n] = strdup(k)))
			n++;
	}
	kvKeysList_Destroy(&kl);
	for (int i = 0; i < c->n_seen; i++) {
		bool live = false;
		for (int j = 0; j < n && !live; j++)
			live = strcmp(c->seen[i], now[j]) == 0;
		if (!live)
			will_reap(c, c->seen[i], false);
		free(c->seen[i]);
	}
	free(c->seen);
	c->seen = NULL;
	c->n_seen = 0;
	if (n) {
		c->seen = malloc((size_t)n * sizeof *c->seen);
		if (c->seen) {
			memcpy(c->seen, now, (size_t)n * sizeof *now);
			c->n_seen = n;
		} else {
			for (int j = 0; j < n; j++)
				free(now[j]);
		}
	}
}

void cluster_will_close(struct cluster *c)
{
	while (c->waits) {
		struct will_wait *w = c->waits;
		c->waits = w->next;
		will_wait_free(c, w);
	}
	for (int i = 0; i < c->n_seen; i++)
		free(c->seen[i]);
	free(c->seen);
	c->seen = NULL;
	c->n_seen = 0;
	kvStore_Destroy(c->wills);
	c->wills = NULL;
}
