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
/* Makes the session encoded in blob this node's session of cid (*out,
 * when out is not NULL). A local one without a connection is older (the
 * id was claimed elsewhere since) and goes; one with a connection stays
 * (it came later). Returns 0 or -1 (nothing kept of an invalid encoding). */
int move_install(struct engine *e, const uint8_t *cid, size_t cid_len, const uint8_t *blob,
		 size_t len, struct session **out);

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

#endif
