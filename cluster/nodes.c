/*
 * nodes.c - the cluster summary every node keeps (docs/cluster.md,
 * "Watching a cluster"): the live nodes and how many clients each has
 * connected. A node writes its count into its lease at every heartbeat
 * (the value in NAME_nodes is "<ms> <clients>"); right after it, the
 * cluster thread reads the leases of the other live nodes will.c found,
 * and the loop (HTTP, $SYS, /metrics) copies that view under a mutex.
 * So the summary is at most a heartbeat (a third of the lease) old, and
 * no call that waits for NATS runs on the loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/internal.h"

int cluster_lease_value(struct cluster *c, char *buf, size_t cap)
{
	return snprintf(buf, cap, "%llu %llu", (unsigned long long)cluster_now_ms(),
			(unsigned long long)atomic_load(&c->local_clients));
}

/* Fills n from a lease's value; a value without the count (a node of an
 * earlier version wrote only the time) leaves clients at -1. */
static void lease_parse(const char *v, struct cluster_node_info *n)
{
	unsigned long long ms = 0, clients = 0;
	int got = v ? sscanf(v, "%llu %llu", &ms, &clients) : 0;
	n->seen_ms = got >= 1 ? ms : 0;
	n->clients = got == 2 ? (int64_t)clients : -1;
}

void cluster_nodes_refresh(struct cluster *c)
{
	struct cluster_node_info *v = NULL;
	int n = 0;
	if (c->n_seen > 0 && (v = calloc((size_t)c->n_seen, sizeof *v))) {
		for (int i = 0; i < c->n_seen; i++) {
			kvEntry *en = NULL;
			if (kvStore_Get(&en, c->nodes, c->seen[i]) != NATS_OK)
				continue; /* gone since will.c listed it */
			snprintf(v[n].name, sizeof v[n].name, "%s", c->seen[i]);
			lease_parse(kvEntry_ValueString(en), &v[n]);
			kvEntry_Destroy(en);
			n++;
		}
	}
	pthread_mutex_lock(&c->sum_mu);
	struct cluster_node_info *old = c->sum;
	c->sum = v;
	c->n_sum = n;
	pthread_mutex_unlock(&c->sum_mu);
	free(old);
}

void cluster_nodes_free(struct cluster *c)
{
	free(c->sum);
	c->sum = NULL;
	c->n_sum = 0;
}

void cluster_set_clients(struct cluster *c, uint64_t connected)
{
	atomic_store(&c->local_clients, connected);
}

static int node_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cluster_node_info *)a)->name,
		      ((const struct cluster_node_info *)b)->name);
}

int cluster_nodes(struct cluster *c, struct cluster_node_info *out, int max)
{
	if (max <= 0)
		return 0;
	snprintf(out[0].name, sizeof out[0].name, "%s", c->node);
	out[0].clients = (int64_t)atomic_load(&c->local_clients);
	out[0].seen_ms = cluster_now_ms();
	out[0].self = true;
	int n = 1;
	pthread_mutex_lock(&c->sum_mu);
	for (int i = 0; i < c->n_sum && n < max; i++) {
		out[n] = c->sum[i];
		out[n].self = false;
		n++;
	}
	pthread_mutex_unlock(&c->sum_mu);
	qsort(out, (size_t)n, sizeof *out, node_cmp);
	return n;
}
