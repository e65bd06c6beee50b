/*
 * internal.h - what the cluster's files share (cluster.h is the outside
 * view). cluster.c: the NATS connection, the cluster thread, the hand-over
 * with the loop; interest.c: the table of this node's filters and their
 * NATS subscriptions; kv.c: the JetStream key-value buckets (the node
 * name's lease, the retained store and its watcher); nodes.c: the summary
 * of live nodes read from the leases; owner.c: client ids and moved
 * sessions; state.c: the sessions' checkpoints and their adoption;
 * will.c: the wills of nodes that died.
 *
 * Threads and who touches what:
 * - the engine thread (the loop) owns the engine and the interest table;
 *   it appends messages and retained changes to the outgoing ring (out),
 *   subscription changes to a command list, and drains the incoming ring
 *   (in) into the engine when the uv_async_t fires;
 * - the cluster thread makes every NATS call that waits for anything
 *   (publish, flush, key-value puts, the node lease's heartbeat,
 *   subscribe); it never touches the engine;
 * - libnats's threads run the subscription and connection callbacks: they
 *   copy into the incoming ring and wake the loop, nothing else;
 * - the watcher thread follows the retained bucket into the incoming ring;
 * - the owner thread claims client ids in the owners bucket and fetches
 *   moved sessions (owner.c); its answers wait in a list for the loop.
 */
#ifndef MIDGE_CLUSTER_INTERNAL_H
#define MIDGE_CLUSTER_INTERNAL_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>

#include "cluster/cluster.h"
#include "cluster/ring.h"
#include "engine/engine.h"

/* One filter this node's clients subscribed to (engine thread: count and
 * the table; cluster thread: subs; libnats threads: filter, read-only). */
struct interest {
	struct interest *next; /* the table's chain */
	uint32_t count;        /* subscriptions on this node */
	natsSubscription *subs[2];
	atomic_int pending;    /* NATS subscriptions not completed yet */
	struct cluster *c;
	uint16_t len;
	uint8_t filter[];
};

/* A CONNECT's claim of a client id (owner.c): posted by the loop, carried
 * out by the owner thread, answered back to the loop with what moved. */
struct owner_job {
	struct owner_job *next;
	uint64_t claim; /* 0: give the id back (its session ended here) */
	uint8_t *session; /* the moved session's encoding (malloc), or NULL */
	size_t session_len;
	char key[]; /* the client id as a bucket key */
};

/* Owner threads (owner.c): the KV round trips of claims and give-backs
 * of different client ids overlap; each id's jobs go to one thread, so
 * they run in the order the loop posted them. */
#define CLUSTER_OWNER_THREADS 4
struct owner_shard {
	struct cluster *c;
	pthread_t thread;
	bool on, stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct owner_job *jobs, **tail; /* under mu */
};

/* A dead node's will in its delay (will.c, cluster thread). */
struct will_wait {
	struct will_wait *next;
	uint64_t due_ms;
	char *key;      /* "<node>.<client id as a key>" */
	size_t plen;    /* strlen("<node>.") */
	size_t len;
	uint8_t data[]; /* u32 delay + the encoded will */
};

/* A journal replay (journal.c): the sessions that asked before it
 * started share it. */
struct jr_job {
	uint64_t id;      /* 0: none */
	uint64_t from_ms; /* the oldest checkpoint's time */
	uint64_t cmds;    /* commands posted before it: its subscriptions */
};

/* A subscription change for the cluster thread. */
struct command {
	struct command *next;
	struct interest *in;
	bool on;
};

struct cluster {
	struct cluster_config cfg;
	char *servers, *node, *name; /* copies */
	struct engine *engine;
	uv_loop_t *loop;
	uv_async_t async;
	uv_check_t kick_check; /* wakes the cluster thread once per loop iteration */
	uv_idle_t kick_idle;   /* ... and keeps the loop from blocking before it */
	bool kick, kick_on;    /* loop: records put since the last wake-up; the handles are up */
	struct ring out; /* engine -> cluster thread; its mu also guards cmds, stop */
	struct ring in;  /* libnats, watcher -> engine */
	struct command *cmds, **cmds_tail;
	uint64_t cmds_posted;              /* under out.mu */
	atomic_uint_fast64_t cmds_applied; /* by the cluster thread */
	bool stop;
	bool quiet; /* cluster_quiet() ran */
	/* libnats runs the connection's callbacks on its own thread, queued:
	 * on_disconnected may still be pending after natsConnection_Close
	 * returns. The closed callback comes last on that queue, so c lives
	 * until it has run. */
	pthread_mutex_t closed_mu;
	pthread_cond_t closed_cv;
	int closed; /* closed callbacks that ran */
	bool leak; /* the closed callback never came: never free c */
	pthread_t thread, watcher;
	bool thread_on, watcher_on;
	natsConnection *nc;  /* no echo: messages, buckets */
	natsConnection *qnc; /* echo: shared subscriptions' queue groups */
	jsCtx *js;
	kvStore *nodes, *retained;
	kvWatcher *watch;
	uint64_t lease_rev;
	uint64_t run; /* this run of the node: its messages' node_run (random, not 0) */
	/* owner.c: the owners and moved-sessions buckets, the owner thread */
	jsCtx *ojs; /* a shorter wait than js: a CONNECT waits on it */
	kvStore *owners, *sessions;
	natsSubscription *osub; /* NAME.o.NODE: other nodes' claims */
	struct owner_shard oshard[CLUSTER_OWNER_THREADS]; /* a client id's jobs: one thread, in order */
	bool oinit;
	pthread_mutex_t omu;
	struct owner_job *odone; /* under omu */
	uint32_t opending; /* claims posted and not answered yet (engine thread) */
	char **ended;      /* ids whose session ended here, to give back (engine thread) */
	uint32_t n_ended, cap_ended;
	size_t session_max; /* the largest encoded session NATS takes */
	/* will.c: the wills bucket; the nodes alive at the last heartbeat
	 * (cluster thread) */
	kvStore *wills;
	char **seen;
	int n_seen;
	struct will_wait *waits; /* dead nodes' wills in their delay, by due time */
	uint64_t wait_bytes;     /* their size: bounded by midge_cluster_buffer */
	/* state.c: the sessions' checkpoints (loop: the timer; cluster
	 * thread: sjs, state; owner thread: ostate) */
	jsCtx *sjs; /* publishes that do not wait for their acknowledgement */
	kvStore *state, *ostate;
	uv_timer_t ck_timer;
	bool ck_timer_on;
	atomic_uint_fast64_t ck_written, ck_failed, resumed, adopted;
	uint64_t ck_failed_logged;
	/* journal.c: the replay thread and its next job (jr_mu) */
	jsCtx *jrjs;
	pthread_t jr_thread;
	bool jr_init, jr_on, jr_stop;
	pthread_mutex_t jr_mu;
	pthread_cond_t jr_cv;
	struct jr_job jr_next;
	uint64_t jr_ids;
	uint8_t *bbuf; /* a bundle being made (cluster thread; bundle.c) */
	size_t bcap;   /* ... its bound */
	char *jbuf; /* a journal record being made (cluster thread) */
	size_t jlen, jr_chunk; /* ... its length and bound */
	atomic_uint_fast64_t replays, replayed;
	/* nodes.c: the other live nodes as of the last heartbeat (sum_mu) */
	pthread_mutex_t sum_mu;
	struct cluster_node_info *sum;
	int n_sum;
	atomic_uint_fast64_t local_clients; /* written by the loop */
	/* engine thread */
	struct interest **table;
	uint32_t table_cap, table_n;
	uint64_t next_ticket;
	bool was_connected;
	uint64_t dropped_out_logged, dropped_in_logged;
	/* shared counters */
	atomic_bool connected;
	atomic_bool async_on; /* uv_async_init done, cluster_quiet not yet */
	atomic_uint_fast64_t reconnected_at; /* ms */
	atomic_uint_fast64_t down_at;        /* ms: when the link to NATS was lost */
	atomic_uint_fast64_t sent_ticket;
	atomic_uint_fast64_t forwarded, received, dropped_out, dropped_in, subjects, disconnects;
};

/* ---- cluster.c --------------------------------------------------------- */

/* Wakes the loop (any thread), once its handle exists. */
void cluster_wake(struct cluster *c);
/* Wall-clock milliseconds (leases and expiry are compared across nodes). */
uint64_t cluster_now_ms(void);
/* Any thread: copies one record into the incoming ring and wakes the
 * loop; counts it dropped when the ring is full. */
void cluster_input_put(struct cluster *c, uint8_t kind, const char *name, size_t nlen,
		       const void *data, size_t dlen);

/* ---- bundle.c ---------------------------------------------------------- */

/* A run of consecutive messages to one subject (cluster thread). */
struct bundle {
	const struct rec *first;
	size_t n, len; /* messages, and the bundle's length once n > 1 */
};
/* Adds the REC_PUBLISH record x to r, sending r first when x cannot join
 * it (another subject, or the bundle would pass its bound). */
natsStatus bundle_add(struct cluster *c, struct bundle *r, const struct rec *x);
/* Sends r (a bundle, or its one message alone), and empties it. */
natsStatus bundle_flush(struct cluster *c, struct bundle *r);
/* libnats thread: the messages of a bundle for filter, each a record of
 * the incoming ring, under one lock and one wake-up; a damaged bundle
 * gives the messages before the damage, the rest counted dropped. */
void cluster_input_bundle(struct cluster *c, const char *filter, size_t flen, const uint8_t *d,
			  size_t n);

/* ---- interest.c -------------------------------------------------------- */

/* Allocates the empty table. Returns 0 or -1. */
int cluster_interest_init(struct cluster *c);
/* engine_cluster.interest (engine thread): counts subscriptions per
 * filter; the first one posts a subscribe, the last one's end an
 * unsubscribe for the cluster thread. */
void cluster_interest_change(void *ctx, const uint8_t *f, size_t len, bool on);
/* Cluster thread: carries out one posted change in NATS. */
void cluster_interest_apply(struct cluster *c, struct command *k);
/* cluster_quiet: ends every NATS subscription (their completions free
 * what they held). */
void cluster_interest_close(struct cluster *c);
/* cluster_free, after the connection closed: frees the entries and
 * commands no completion freed (cluster_release frees the table). */
void cluster_interest_free(struct cluster *c);

/* ---- kv.c -------------------------------------------------------------- */

/* Binds *kv to bucket NAME_suffix through js, creating it when missing
 * (history 1, file storage; ttl_ms 0: values never expire). */
natsStatus cluster_kv_bucket(struct cluster *c, jsCtx *js, kvStore **kv, const char *suffix,
			     int64_t ttl_ms);
/* Start-up: opens (creating when missing) the nodes and retained buckets.
 * Returns NATS_OK or the failure. */
natsStatus cluster_kv_open(struct cluster *c);
/* Start-up: claims the node name (create = claim: refused while a live
 * node holds it). Returns 0, or -1 with err set. */
int cluster_kv_claim(struct cluster *c, char *err, size_t errlen);
/* Cluster thread: renews the lease (update with the revision, so a node
 * that lost its name learns it). */
void cluster_kv_heartbeat(struct cluster *c);
/* Start-up: loads the retained bucket straight into the engine, then
 * starts the watcher thread that follows it into the incoming ring. */
natsStatus cluster_kv_load(struct cluster *c);
int cluster_kv_watch(struct cluster *c);
/* Loop: one retained change (key, encoded message or nothing: deleted)
 * into the engine. */
void cluster_kv_apply(struct cluster *c, const char *key, size_t klen, const uint8_t *v, size_t vl,
		      uint64_t now);
/* Stops the watcher, gives the node name back (a node started in its
 * place may take it at once), releases the buckets. Idempotent. */
void cluster_kv_close(struct cluster *c);

/* ---- nodes.c ----------------------------------------------------------- */

/* A lease's value: "<ms> <clients connected here>". Returns its length. */
int cluster_lease_value(struct cluster *c, char *buf, size_t cap);
/* Cluster thread, after cluster_will_check: reads the leases of the nodes
 * it found alive (c->seen) into the summary. */
void cluster_nodes_refresh(struct cluster *c);
/* cluster_release: frees the summary. */
void cluster_nodes_free(struct cluster *c);

/* ---- owner.c ----------------------------------------------------------- */

/* Start-up: opens the owners and sessions buckets, listens for other
 * nodes' claims, starts the owner thread. Returns NATS_OK or the failure. */
natsStatus cluster_owner_start(struct cluster *c);
/* engine_cluster.claim (engine thread). */
int cluster_owner_claim(void *ctx, uint64_t claim, const uint8_t *cid, size_t len);
/* Loop: the owner thread's answers into the engine. */
void cluster_owner_answers(struct cluster *c, uint64_t now);
/* Loop: another node claimed the client id of key; reply is where it
 * waits for the hand-over (REC_RELEASE). */
void cluster_owner_release(struct cluster *c, const char *key, size_t klen, const char *reply,
			   size_t rlen, uint64_t now);
/* Cluster thread: writes a released session to the sessions bucket and
 * tells the claiming node (REC_HANDOVER). Returns NATS_OK or the failure. */
natsStatus cluster_owner_handover(struct cluster *c, const char *key, const uint8_t *data,
				  size_t len);
/* cluster_quiet: stops the owner thread and the claims' subscription
 * (before the connection closes); cluster_free: frees what is left. */
void cluster_owner_stop(struct cluster *c);
void cluster_owner_free(struct cluster *c);

/* ---- owner.c (the give-back) ------------------------------------------ */

/* engine_cluster.ended (loop): remembers the id for the next sweep. */
void cluster_owner_ended(void *ctx, const uint8_t *cid, size_t len);
/* Loop, on the state timer: the ids that ended here and have no new
 * session here go to the owner thread, which deletes each owner key this
 * node still holds (a compare-and-set on its revision: a claim by another
 * node meanwhile wins), so NAME_owners keeps the ids of live sessions. */
void cluster_owner_sweep(struct cluster *c);

/* ---- will.c ------------------------------------------------------------ */

/* Start-up: opens (creating when missing) the wills bucket. */
natsStatus cluster_will_open(struct cluster *c);
/* engine_cluster.will (engine thread): the will of a session changed. */
void cluster_will_changed(void *ctx, const uint8_t *cid, size_t len,
			  const struct engine_cluster_msg *will, uint32_t delay);
/* Loop: a dead node's will (u32 delay + encoded will) into the engine. */
void cluster_will_publish(struct cluster *c, const uint8_t *data, size_t len, uint64_t now);
/* Cluster thread: puts (len > 0) or deletes a will key. */
natsStatus cluster_will_store(struct cluster *c, const char *key, const uint8_t *data, size_t len);
/* Cluster thread, each heartbeat: the nodes whose lease is gone since the
 * last one have their wills published (by one node of the cluster), at
 * once or once their delay has passed. */
void cluster_will_check(struct cluster *c);
/* Cluster thread, as it starts: what this node left under its name when
 * it died (sessions' checkpoints, wills) is taken back (will_reap). */
void cluster_will_reap_self(struct cluster *c);
/* Cluster thread, every wake-up: the held wills whose delay has passed
 * are published, unless their client id went to another node since. */
void cluster_will_due(struct cluster *c);
/* Releases the bucket, the remembered nodes and the held wills (those
 * are lost with this node: docs/cluster.md). */
void cluster_will_close(struct cluster *c);

/* kv.c: a delete marker for key in bucket NAME_<suffix>, as
 * kvStore_Delete sends it, for publishes that set their own options. */
natsStatus cluster_kv_marker(struct cluster *c, natsMsg **m, const char *suffix, const char *key);

/* ---- journal.c --------------------------------------------------------- */

/* Start-up: creates (or updates) the stream; starts the replay thread.
 * Nothing when midge_cluster_journal_bytes is 0. */
natsStatus cluster_journal_open(struct cluster *c);
int cluster_journal_start(struct cluster *c);
/* Cluster thread: the QoS 1/2 messages of the outgoing records in
 * [pos, end), sent already, into the journal. NATS_OK once the stream
 * stored them all (and the server has everything sent before). */
natsStatus cluster_journal_write(struct cluster *c, uint64_t pos, uint64_t end);
/* Loop: a journal record read back for job, message by message, into
 * the engine. */
void cluster_journal_unpack(struct cluster *c, uint64_t job, const uint8_t *d, size_t n,
			    uint64_t now);
/* engine_cluster.replay (loop). */
uint64_t cluster_journal_replay(void *ctx, uint64_t from_ms);
/* cluster_quiet: stops the replay thread; cluster_free: the rest. */
void cluster_journal_stop(struct cluster *c);
void cluster_journal_free(struct cluster *c);

/* ---- state.c ----------------------------------------------------------- */

/* The owner keys of the sessions adopted from a node, sorted. */
struct state_set {
	char **keys;
	size_t n;
};

natsStatus cluster_state_open(struct cluster *c);
/* Loop: starts the checkpoint timer (midge_cluster_checkpoint_ms); at a
 * stop, the last checkpoints before the cluster thread ends. */
int cluster_state_start(struct cluster *c);
void cluster_state_quiet(struct cluster *c);
/* engine_cluster.checkpoint. */
int cluster_state_changed(void *ctx, const uint8_t *cid, size_t len, const uint8_t *state,
			  size_t slen);
/* Loop: a REC_ADOPT or REC_ADOPT_WILL record. */
void cluster_state_apply(struct cluster *c, const struct rec *x, uint64_t now);
/* Cluster thread: a REC_STATE record to JetStream. */
natsStatus cluster_state_store(struct cluster *c, const char *key, const uint8_t *data,
			       size_t len);
/* Cluster thread: every checkpoint node left becomes this node's session
 * (claimed in the owners bucket, handed to the loop), except those of
 * clients connected elsewhere since; each key is deleted. out: the owner
 * keys adopted (cluster_state_set_free). Returns 0 or -1. */
int cluster_state_adopt(struct cluster *c, const char *node, struct state_set *out);
bool cluster_state_has(const struct state_set *set, const char *idkey);
void cluster_state_set_free(struct state_set *set);
/* Owner thread: node from died holding j's client id; its checkpoint of
 * the session, if any, becomes j's session (read once). */
void cluster_state_take(struct cluster *c, struct owner_job *j, const char *from);
/* After the cluster thread ended: the last copies reach JetStream (at
 * most 2 s), the handles go. */
void cluster_state_close(struct cluster *c);

#endif
