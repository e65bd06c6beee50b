/*
 * move.h - sessions between cluster nodes (engine-internal, included by
 * internal.h after the structures): a session handed over (move.c) and
 * each persistent session's checkpoint (checkpoint.c).
 */
#ifndef MIDGE_ENGINE_MOVE_H
#define MIDGE_ENGINE_MOVE_H

/* move.c */
bool move_claim(struct engine *e, struct engine_conn *c, const uint8_t *cid, size_t len);
void move_claim_cancel(struct engine *e, struct engine_conn *c);
/* Encodes s into b within b->max bytes: the terms and subscriptions must
 * fit (else -1), deliveries that do not are left out (report: each with
 * a drop event, as from a full queue: the session moves without them).
 * Returns 0 or -1. */
int move_encode(struct engine *e, struct session *s, struct move_buf *b, bool report);
/* When the last connection of s ended (wall-clock ms, as its armed
 * deadlines tell), or 0 while it is connected or nothing counts from it. */
uint64_t move_ended_at(const struct session *s);
/* Makes the session encoded in blob this node's session of cid (*out,
 * when out is not NULL). A local one without a connection is older (the
 * id was claimed elsewhere since) and goes; one with a connection stays
 * (it came later). *ended_at (when not NULL): when the session's last
 * connection ended, wall-clock ms, or 0 when the encoding does not say.
 * Returns 0 or -1 (nothing kept of an invalid encoding). */
int move_install(struct engine *e, const uint8_t *cid, size_t cid_len, const uint8_t *blob,
		 size_t len, struct session **out, uint64_t *ended_at);

/* checkpoint.c: each persistent session's copy in the cluster, for when
 * this node dies (docs/cluster.md, "A node that dies"). */
#define CK_SAVED 0x80000000u /* session.ck: the cluster has a checkpoint of it */
#define CK_INDEX 0x7fffffffu /* session.ck: its place in engine.ck_dirty + 1, or 0 */
void checkpoint_dirty(struct engine *e, struct session *s);
/* s changed in what its checkpoint holds (terms, subscriptions, queue,
 * window): one test when checkpoints are off or s is marked already. */
static inline void move_touch(struct engine *e, struct session *s)
{
	if (e->ck_on && !(s->ck & CK_INDEX))
		checkpoint_dirty(e, s);
}
/* s ends: out of the dirty list, and its checkpoint goes (session_destroy,
 * before its queue is emptied). */
void checkpoint_forget(struct engine *e, struct session *s);

/* journal.c: the cluster's QoS 1/2 journal, replayed for a session
 * resumed from a dead node's checkpoint (docs/cluster.md, "The journal"). */
#define JOURNAL_RUNS_MAX 1024 /* node runs a node keeps a mark for */
struct journal_mark {
	uint64_t run, seq; /* run's messages up to seq were routed */
};
struct journal {
	struct journal_mark *marks; /* this node's, per run (the cache: last) */
	uint32_t n_marks, cap_marks, last;
	uint64_t self_seq;           /* this node's QoS 1/2 messages forwarded */
	struct journal_wait *waits;  /* sessions waiting for a replay */
	/* the message being routed; cur_job: read back by that replay */
	uint64_t cur_run, cur_seq, cur_job;
};
/* What a session's encoding says for the journal. */
struct journal_trailer {
	bool resume; /* a node that takes it replays the journal from from_ms */
	uint64_t from_ms;
	const struct journal_mark *marks;
	uint32_t n;
};
/* engine_cluster_attach: the journal's state when the cluster replays. */
int journal_attach(struct engine *e);
void journal_free(struct engine *e);
/* cluster_forward: v gets this node's run and its next sequence number
 * (QoS 1/2); the local routing that follows is that message. */
void journal_forward(struct engine *e, struct engine_cluster_msg *v);
/* engine_cluster_input: v is routed now (shared: through a queue group). */
void journal_input(struct engine *e, const struct engine_cluster_msg *v, bool shared);
/* route.c, while a replay's message is routed (jr->cur_job): whether s
 * is not one of the job's sessions, or has the message already. */
bool journal_skip(const struct engine *e, const struct session *s);
/* route.c: m for s, which waits for a replay. Returns true when m waits
 * with it (a live message), false when it goes now (the replay's). */
bool journal_divert(struct engine *e, struct session *s, struct emsg *m,
		    const struct delivery *d);
/* move_encode: the trailer of s (resume: the encoding is a checkpoint). */
void journal_marks(struct engine *e, const struct session *s, bool resume,
		   struct journal_trailer *t);
/* move_install: s, from a checkpoint, waits for the journal from from_ms
 * past marks. Returns 0 (also when the cluster replays nothing) or -1. */
int journal_resume(struct engine *e, struct session *s, uint64_t from_ms,
		   const struct journal_mark *marks, uint32_t n);
/* The engine's periodic work: a replay that never ended lets go. */
void journal_expire(struct engine *e);
/* session_destroy: s stops waiting, what waited with it goes. */
void journal_forget(struct engine *e, struct session *s);
/* cluster.c: a message from the cluster as an emsg (reference 1), or
 * NULL when it is invalid or has expired. */
struct emsg *cluster_msg(struct engine *e, const struct engine_cluster_msg *v);

#endif
