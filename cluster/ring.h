/*
 * ring.h - a bounded byte ring of records between threads: one side
 * appends under the mutex, the other reads what was appended without it
 * and gives the space back under it. Records never wrap: one that does
 * not fit before the end starts again at the front (a skip record marks
 * the rest). What does not fit at all is refused: every buffer between
 * the engine and NATS is bounded.
 */
#ifndef MIDGE_CLUSTER_RING_H
#define MIDGE_CLUSTER_RING_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ring_kind {
	REC_SKIP = 0,    /* the rest of the buffer is unused */
	REC_PUBLISH = 1, /* subject, encoded message */
	REC_RETAIN = 2,  /* key, encoded message (put) or nothing (delete) */
	REC_INPUT = 3,   /* filter, encoded message (from NATS) */
	REC_RELEASE = 4, /* owner key, reply subject: another node claims a client id (owner.c) */
	REC_HANDOVER = 5,/* owner key, u16 reply length, reply, encoded session (owner.c) */
	REC_WILL = 6,    /* will key, u32 delay + encoded will, or nothing: deleted (will.c) */
	REC_STATE = 7,   /* state key, a session's checkpoint, or nothing: deleted (state.c) */
	REC_ADOPT = 8,   /* owner key, a dead node's session checkpoint to adopt (state.c) */
	REC_ADOPT_WILL = 9, /* owner key, u32 delay + encoded will of an adopted session */
	REC_REPLAY = 10, /* ticket: the replay job; a journal record read back (journal.c) */
	REC_REPLAY_END = 11, /* ticket: the replay job, which has nothing more */
};

struct rec {
	uint32_t len; /* the whole record, aligned to 8 */
	uint8_t kind;
	uint8_t pad;
	uint16_t name_len; /* subject, key or filter, NUL-terminated after the header */
	uint32_t data_len;
	uint32_t pad2;
	uint64_t ticket; /* REC_PUBLISH of a QoS 1/2 message: its ticket; REC_REPLAY*: the job */
};

struct ring {
	uint8_t *buf;
	uint64_t cap;
	uint64_t rpos, wpos; /* monotonic; under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

int ring_init(struct ring *r, uint64_t cap);
void ring_free(struct ring *r);
/*
 * Appends a record with room for name (copied, NUL added) and data_len
 * bytes the caller fills through *data before ring_unlock(). Call with
 * r->mu held. Returns 0, or -1 when it does not fit now.
 */
int ring_put(struct ring *r, uint8_t kind, const char *name, size_t name_len, size_t data_len,
	     uint64_t ticket, uint8_t **data);
/* The record at pos (pos in [rpos, wpos)) and the position after it;
 * skip records are stepped over. Returns NULL at end. */
const struct rec *ring_at(const struct ring *r, uint64_t *pos, uint64_t end);
static inline const char *rec_name(const struct rec *x)
{
	return (const char *)(x + 1);
}
static inline const uint8_t *rec_data(const struct rec *x)
{
	return (const uint8_t *)(x + 1) + x->name_len + 1;
}

#endif
