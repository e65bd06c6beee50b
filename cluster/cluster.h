/*
 * cluster.h - several midge nodes acting as one broker over NATS
 * (docs/cluster.md). The transport starts it after the engine and before
 * the store restores anything; it attaches itself to the engine
 * (engine_cluster_attach) and talks to the loop through a uv_async_t.
 */
#ifndef MIDGE_CLUSTER_CLUSTER_H
#define MIDGE_CLUSTER_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct engine;
struct cluster;

/* How the node proves itself to NATS and checks NATS (docs/cluster.md,
 * "Security"); each NULL when unset. TLS is on with cafile; certfile and
 * keyfile come together; at most one of creds, user (+ password), token. */
struct cluster_secure {
	const char *cafile, *certfile, *keyfile; /* PEM files */
	const char *creds;                       /* a NATS .creds file (JWT + NKey seed) */
	const char *user, *password, *token;
	/* "file:line" of each key for start-up errors, in the same order */
	const char *cafile_at, *certfile_at, *keyfile_at, *creds_at;
};

struct cluster_config {
	const char *servers;  /* midge_cluster: nats://HOST:PORT[,nats://...] */
	struct cluster_secure secure;
	const char *node;     /* midge_node_name: unique in the cluster */
	const char *name;     /* midge_cluster_name: subject and bucket prefix */
	uint64_t buffer_bytes; /* midge_cluster_buffer: what waits for NATS, each way */
	uint32_t lease_ms;    /* how long a dead node's name stays claimed */
	uint32_t checkpoint_ms; /* midge_cluster_checkpoint_ms: sessions' copies (0: none) */
	uint64_t journal_bytes; /* midge_cluster_journal_bytes: the QoS 1/2 journal (0: none) */
};

#define CLUSTER_DEFAULT_BUFFER (64ull * 1024 * 1024)
#define CLUSTER_DEFAULT_LEASE_MS 10000u
#define CLUSTER_DEFAULT_CHECKPOINT_MS 250u
#define CLUSTER_DEFAULT_JOURNAL (1ull << 30)

struct cluster_stats {
	bool connected;
	uint64_t forwarded;   /* messages handed to NATS */
	uint64_t received;    /* messages from other nodes */
	uint64_t dropped_out; /* not forwarded: the buffer was full */
	uint64_t dropped_in;  /* not delivered here: the buffer was full, or invalid */
	uint64_t buffered;    /* bytes waiting for NATS now */
	uint64_t subjects;    /* NATS subscriptions for this node's filters */
	uint64_t disconnects;
	uint64_t checkpoints;         /* session checkpoints handed to JetStream */
	uint64_t checkpoint_failures; /* ... that JetStream refused */
	uint64_t sessions_resumed;    /* dead nodes' sessions resumed here on a claim */
	uint64_t sessions_adopted;    /* ... adopted here */
	uint64_t replays;             /* journal replays for sessions resumed here */
	uint64_t replayed;            /* messages read back from the journal */
};

/*
 * Connects (blocking, at start-up only: the loop does not run yet),
 * claims the node name (refused if a live node holds it), loads the
 * cluster's retained messages into the engine, attaches to the engine and
 * starts the cluster's threads. NULL with err set on failure (start-up
 * stops).
 */
struct cluster *cluster_start(const struct cluster_config *cfg, uv_loop_t *loop,
			      struct engine *e, char *err, size_t errlen);
/* Sends what is buffered (bounded wait: 2 s), releases the node name,
 * stops the threads and closes the NATS connection: nothing wakes the
 * loop after it. Call before the loop closes its handles (the uv_async_t
 * is one of them). */
void cluster_quiet(struct cluster *c);
/* After the loop closed its handles: detaches from the engine and frees
 * everything. cluster_free(NULL) does nothing. */
void cluster_free(struct cluster *c);
void cluster_stats(const struct cluster *c, struct cluster_stats *out);
const char *cluster_node(const struct cluster *c);

#define CLUSTER_NODE_NAME_MAX 64 /* midge_node_name's bound */
#define CLUSTER_NODES_MAX 256    /* nodes a summary lists */

/* One live node of the cluster summary (nodes.c). */
struct cluster_node_info {
	char name[CLUSTER_NODE_NAME_MAX + 1];
	int64_t clients;  /* connected on that node; -1: unknown (an older node) */
	uint64_t seen_ms; /* wall clock of its last heartbeat */
	bool self;        /* this node (its count is the current one) */
};

/* Engine thread, every second: the clients connected here, written into
 * this node's lease at the next heartbeat. */
void cluster_set_clients(struct cluster *c, uint64_t connected);
/* Any thread: the live nodes, this one included, by name, at most max;
 * the others as of the last heartbeat. Returns how many. */
int cluster_nodes(struct cluster *c, struct cluster_node_info *out, int max);

#endif
