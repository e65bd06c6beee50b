/*
 * outq.h - output queues: what waits to be written, as segments that are
 * either bytes copied into the queue's own buffer or references to shared
 * refcounted frames (a payload fanned out to N subscribers is never
 * copied), plus the outbox a connection writes from and its pool.
 */
#ifndef MIDGE_TRANSPORT_OUTQ_H
#define MIDGE_TRANSPORT_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "engine/frame.h"

#define OUTBOX_POOL_MAX 64 /* idle outboxes kept for reuse */

/* One piece of output: bytes of the queue's own buffer (f == NULL, at off)
 * or a referenced frame. */
struct outseg {
	struct frame *f;
	uint32_t off;
	uint32_t len;
};

struct outq {
	struct outseg *segs;
	uint32_t n, cap;   /* segments used, room */
	uint8_t *buf;      /* copied bytes */
	uint32_t blen, bcap;
	uint64_t bytes;    /* all the queue holds */
	uint64_t lat_read_sum; /* read times of the PUBLISHes queued (latency.h) */
	uint32_t lat_n;
};

/* How far a queue is written: segment index and offset in it. */
struct outq_pos {
	uint32_t seg, off;
};

/* Output of a connection: q[fill] fills while q[fill ^ 1] is being
 * written (the socket took part of it and the rest waits for it to be
 * writable). Taken on the first send and pooled once everything is
 * written, so an idle connection holds none. */
struct outbox {
	struct outq q[2];
	/* q[wq] is the queue handed to the I/O thread (set by the engine
	 * before IO_WRITE); written, how far it is, is the I/O thread's
	 * until it reports IO_WRITTEN */
	struct outq_pos written;
	uint8_t wq;
};

struct outbox_pool {
	struct outbox *idle[OUTBOX_POOL_MAX];
	int n;
};

/* Copies p[0..len) to the end of q. Returns 0 or -1 on OOM. */
int outq_copy(struct outq *q, const uint8_t *p, size_t len);
/* Appends f (may be NULL). ownership: takes a new reference on f. */
int outq_frame(struct outq *q, struct frame *f);
/* Empties q, dropping its frame references. keep: small buffers stay for
 * the queue's next use. */
void outq_reset(struct outq *q, bool keep);
void outq_free(struct outq *q);
/* Fills iov with what of q is unwritten from pos on, at most max entries.
 * Returns the count; *total gets their bytes. */
int outq_iov(const struct outq *q, struct outq_pos pos, struct iovec *iov, int max, size_t *total);
/* Moves pos n bytes on. */
void outq_advance(const struct outq *q, struct outq_pos *pos, size_t n);
/* Whether everything of q is written at pos. */
bool outq_done(const struct outq *q, struct outq_pos pos);

/* An empty outbox from the pool (or calloc), NULL on OOM. */
struct outbox *outbox_get(struct outbox_pool *pool);
/* Back to the pool (or freed); o may be NULL. */
void outbox_put(struct outbox_pool *pool, struct outbox *o);
void outbox_pool_clear(struct outbox_pool *pool);

#endif
