/*
 * clusterlink.c - the cluster (cluster/) on the loop: started after the
 * engine and before the store restores sessions (their subscriptions are
 * interest), its configuration checked first (fail closed: a cluster
 * whose node name is not unique is refused), quieted before the loop
 * closes its handles, freed after; the $SYS/broker/midge/cluster/ topics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "cluster/subject.h"
#include "transport/broker.h"
#include "transport/log.h"

int cluster_link_start(struct midge *m)
{
	const struct conf *cf = &m->conf;
	if (!cf->cluster_servers)
		return 0;
	const char *name = cf->cluster_name ? cf->cluster_name : "midge";
	if (!cf->node_name || !cluster_name_valid(cf->node_name)) {
		log_err("midge_cluster needs midge_node_name: a name unique in the cluster, 1 to 64 "
			"of A-Z a-z 0-9 _ - (it is a NATS subject token and key)");
		return -1;
	}
	if (!cluster_name_valid(name)) {
		log_err("midge_cluster_name '%s': use 1 to 64 of A-Z a-z 0-9 _ -", name);
		return -1;
	}
	struct cluster_config cc = {
		.servers = cf->cluster_servers,
		.node = cf->node_name,
		.name = name,
		.buffer_bytes = cf->cluster_buffer,
		.checkpoint_ms = cf->cluster_checkpoint_set ? cf->cluster_checkpoint_ms
							    : CLUSTER_DEFAULT_CHECKPOINT_MS,
		.journal_bytes = cf->cluster_journal_set ? cf->cluster_journal
							 : CLUSTER_DEFAULT_JOURNAL,
		.secure = {
			.cafile = cf->cluster_secure[CONF_CLUSTER_CAFILE],
			.certfile = cf->cluster_secure[CONF_CLUSTER_CERTFILE],
			.keyfile = cf->cluster_secure[CONF_CLUSTER_KEYFILE],
			.creds = cf->cluster_secure[CONF_CLUSTER_CREDENTIALS],
			.user = cf->cluster_secure[CONF_CLUSTER_USERNAME],
			.password = cf->cluster_secure[CONF_CLUSTER_PASSWORD],
			.token = cf->cluster_secure[CONF_CLUSTER_TOKEN],
			.cafile_at = cf->cluster_secure_where[CONF_CLUSTER_CAFILE],
			.certfile_at = cf->cluster_secure_where[CONF_CLUSTER_CERTFILE],
			.keyfile_at = cf->cluster_secure_where[CONF_CLUSTER_KEYFILE],
			.creds_at = cf->cluster_secure_where[CONF_CLUSTER_CREDENTIALS],
		},
	};
	char err[512];
	m->cluster = cluster_start(&cc, &m->loop, m->engine, err, sizeof err);
	if (!m->cluster) {
		log_err("cluster: %s", err);
		return -1;
	}
	return 0;
}

void cluster_link_quiet(struct midge *m)
{
	cluster_quiet(m->cluster);
}

void cluster_link_free(struct midge *m)
{
	cluster_free(m->cluster);
	m->cluster = NULL;
}

void cluster_link_sys(struct midge *m, sys_put_fn put, int slot)
{
	if (!m->cluster)
		return;
	struct cluster_stats s;
	cluster_stats(m->cluster, &s);
	put(m, slot, "$SYS/broker/midge/cluster/node", "%s", cluster_node(m->cluster));
	put(m, slot + 1, "$SYS/broker/midge/cluster/state", "%s",
	    s.connected ? "connected" : "disconnected");
	put(m, slot + 2, "$SYS/broker/midge/cluster/messages/forwarded", "%llu",
	    (unsigned long long)s.forwarded);
	put(m, slot + 3, "$SYS/broker/midge/cluster/messages/received", "%llu",
	    (unsigned long long)s.received);
	put(m, slot + 4, "$SYS/broker/midge/cluster/messages/dropped", "%llu",
	    (unsigned long long)(s.dropped_out + s.dropped_in));
	put(m, slot + 5, "$SYS/broker/midge/cluster/buffered bytes", "%llu",
	    (unsigned long long)s.buffered);
	put(m, slot + 6, "$SYS/broker/midge/cluster/subjects", "%llu", (unsigned long long)s.subjects);
	put(m, slot + 7, "$SYS/broker/midge/cluster/disconnects", "%llu",
	    (unsigned long long)s.disconnects);
	static struct cluster_node_info nodes[CLUSTER_NODES_MAX]; /* engine thread only */
	int n = cluster_nodes(m->cluster, nodes, CLUSTER_NODES_MAX);
	unsigned long long clients = 0;
	for (int i = 0; i < n; i++)
		clients += nodes[i].clients > 0 ? (unsigned long long)nodes[i].clients : 0;
	put(m, slot + 8, "$SYS/broker/midge/cluster/nodes", "%d", n);
	put(m, slot + 9, "$SYS/broker/midge/cluster/clients/connected", "%llu", clients);
}

void cluster_link_tick(struct midge *m)
{
	if (!m->cluster)
		return;
	struct engine_stats st;
	engine_stats(m->engine, &st);
	cluster_set_clients(m->cluster, st.clients_connected);
}

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void swap_str(char **a, char **b)
{
	char *t = *a;
	*a = *b;
	*b = t;
}

/* SIGHUP: the cluster keys (and, in a cluster, the node name) are the
 * running ones until a restart. */
void cluster_link_reload(struct midge *m, struct conf *nc)
{
	struct conf *c = &m->conf;
	bool same_secure = true;
	for (int k = 0; k < CONF_CLUSTER_KEYS; k++)
		same_secure = same_secure && str_eq(nc->cluster_secure[k], c->cluster_secure[k]);
	bool same = same_secure && str_eq(nc->cluster_servers, c->cluster_servers) &&
		    str_eq(nc->cluster_name, c->cluster_name) && nc->cluster_buffer == c->cluster_buffer &&
		    nc->cluster_checkpoint_ms == c->cluster_checkpoint_ms &&
		    nc->cluster_checkpoint_set == c->cluster_checkpoint_set &&
		    nc->cluster_journal == c->cluster_journal &&
		    nc->cluster_journal_set == c->cluster_journal_set &&
		    (!c->cluster_servers || str_eq(nc->node_name, c->node_name));
	if (!same)
		log_warn("reload: midge_cluster, midge_cluster_name, midge_cluster_buffer, "
			 "midge_cluster_checkpoint_ms, midge_cluster_journal_bytes, the "
			 "midge_cluster_ TLS and credential keys and a cluster node's midge_node_name "
			 "need a restart; the running settings stay");
	swap_str(&nc->cluster_servers, &c->cluster_servers);
	swap_str(&nc->cluster_name, &c->cluster_name);
	nc->cluster_buffer = c->cluster_buffer;
	nc->cluster_checkpoint_ms = c->cluster_checkpoint_ms;
	nc->cluster_checkpoint_set = c->cluster_checkpoint_set;
	nc->cluster_journal = c->cluster_journal;
	nc->cluster_journal_set = c->cluster_journal_set;
	for (int k = 0; k < CONF_CLUSTER_KEYS; k++) {
		swap_str(&nc->cluster_secure[k], &c->cluster_secure[k]);
		swap_str(&nc->cluster_secure_where[k], &c->cluster_secure_where[k]);
	}
	if (c->cluster_servers)
		swap_str(&nc->node_name, &c->node_name);
}
