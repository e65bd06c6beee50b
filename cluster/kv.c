/*
 * kv.c - the cluster's JetStream key-value buckets (docs/cluster.md):
 * <name>_nodes holds each node's name under a lease (create = claim,
 * update with the revision = renew; the value is nodes.c's),
 * <name>_retained the cluster-wide retained store, loaded at start-up
 * and followed by the watcher thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/internal.h"
#include "cluster/subject.h"
#include "cluster/wire.h"
#include "engine/engine.h"
#include "transport/log.h"

natsStatus cluster_kv_bucket(struct cluster *c, jsCtx *js, kvStore **kv, const char *suffix,
			     int64_t ttl_ms)
{
	char name[160];
	snprintf(name, sizeof name, "%s_%s", c->name, suffix);
	natsStatus s = js_KeyValue(kv, js, name);
	if (s == NATS_OK)
		return s;
	kvConfig kc;
	kvConfig_Init(&kc);
	kc.Bucket = name;
	kc.History = 1;
	kc.TTL = ttl_ms * 1000000; /* libnats: nanoseconds */
	kc.StorageType = js_FileStorage;
	return js_CreateKeyValue(kv, js, &kc);
}

natsStatus cluster_kv_open(struct cluster *c)
{
	natsStatus s = natsConnection_JetStream(&c->js, c->nc, NULL);
	if (s == NATS_OK)
		s = cluster_kv_bucket(c, c->js, &c->nodes, "nodes", (int64_t)c->cfg.lease_ms);
	if (s == NATS_OK)
		s = cluster_kv_bucket(c, c->js, &c->retained, "retained", 0);
	return s;
}

int cluster_kv_claim(struct cluster *c, char *err, size_t errlen)
{
	char v[64];
	int vn = cluster_lease_value(c, v, sizeof v);
	natsStatus s = kvStore_Create(&c->lease_rev, c->nodes, c->node, v, vn);
	if (s == NATS_OK)
		return 0;
	snprintf(err, errlen,
		 "midge_node_name %s is in use in cluster %s (%s); a stopped node's name is free "
		 "at once, a crashed one's after %u ms",
		 c->node, c->name, natsStatus_GetText(s), c->cfg.lease_ms);
	return -1;
}

void cluster_kv_heartbeat(struct cluster *c)
{
	uint64_t rev = 0;
	char v[64];
	int n = cluster_lease_value(c, v, sizeof v);
	natsStatus s = kvStore_Update(&rev, c->nodes, c->node, v, n, c->lease_rev);
	if (s == NATS_OK)
		c->lease_rev = rev;
	else if (atomic_load(&c->connected))
		log_msg(CONF_LOG_ERR, "cluster: the lease of node name %s could not be renewed: %s",
			c->node, natsStatus_GetText(s));
}

void cluster_kv_apply(struct cluster *c, const char *key, size_t klen, const uint8_t *v, size_t vl,
		      uint64_t now)
{
	uint8_t topic[CLUSTER_SUBJECT_MAX];
	int tl = cluster_key_parse(topic, sizeof topic, key, klen);
	if (tl < 0)
		return;
	struct engine_cluster_msg m;
	if (vl && cluster_wire_decode(v, vl, &m) == 0)
		engine_cluster_retain(c->engine, topic, (size_t)tl, &m, now);
	else if (!vl)
		engine_cluster_retain(c->engine, topic, (size_t)tl, NULL, now);
}

/* One entry of the retained bucket into the incoming ring (or, at
 * start-up, straight into the engine: the loop does not run yet). */
static void watch_entry(struct cluster *c, kvEntry *en, bool direct)
{
	const char *key = kvEntry_Key(en);
	bool del = kvEntry_Operation(en) != kvOp_Put;
	const void *v = del ? NULL : kvEntry_Value(en);
	size_t vl = del ? 0 : (size_t)kvEntry_ValueLen(en);
	if (direct)
		cluster_kv_apply(c, key, strlen(key), v, vl, cluster_now_ms());
	else
		cluster_input_put(c, REC_RETAIN, key, strlen(key), v, vl);
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

natsStatus cluster_kv_load(struct cluster *c)
{
	natsStatus s = kvStore_WatchAll(&c->watch, c->retained, NULL);
	uint64_t until = cluster_now_ms() + 10000;
	while (s == NATS_OK && cluster_now_ms() < until) {
		kvEntry *en = NULL;
		s = kvWatcher_Next(&en, c->watch, 5000);
		if (s != NATS_OK || !en)
			break; /* NULL: the initial values are all there */
		watch_entry(c, en, true);
		kvEntry_Destroy(en);
	}
	return s;
}

int cluster_kv_watch(struct cluster *c)
{
	c->watcher_on = pthread_create(&c->watcher, NULL, watcher_thread, c) == 0;
	return c->watcher_on ? 0 : -1;
}

void cluster_kv_close(struct cluster *c)
{
	if (c->watch)
		kvWatcher_Stop(c->watch);
	if (c->watcher_on)
		pthread_join(c->watcher, NULL);
	c->watcher_on = false;
	kvWatcher_Destroy(c->watch);
	c->watch = NULL;
	if (c->lease_rev && c->nodes)
		kvStore_Delete(c->nodes, c->node);
	c->lease_rev = 0;
	kvStore_Destroy(c->retained);
	kvStore_Destroy(c->nodes);
	jsCtx_Destroy(c->js);
	c->retained = c->nodes = NULL;
	c->js = NULL;
}

natsStatus cluster_kv_marker(struct cluster *c, natsMsg **m, const char *suffix, const char *key)
{
	char subj[CLUSTER_SUBJECT_MAX + 200];
	snprintf(subj, sizeof subj, "$KV.%s_%s.%s", c->name, suffix, key);
	*m = NULL;
	natsStatus s = natsMsg_Create(m, subj, NULL, NULL, 0);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(*m, "KV-Operation", "DEL");
	return s;
}
