/*
 * ioq.h - the queue between two threads: one producer, one consumer,
 * fixed-size records in linked blocks, never full.
 *
 * The engine thread and each I/O thread talk through two of these, one
 * each way. A record names a connection and what happened to it (bytes
 * read, output written, closed) or what to do with it (write, close).
 * Never full, because the protocol bounds what can be outstanding: at
 * most one write in flight per connection, input bounded by the I/O
 * thread's chunk budget, a handful of control records per connection
 * life. So the producer never has an overflow path to take.
 *
 * Memory: blocks the consumer has finished go back to the producer
 * (through one atomic pointer), so a steady flow allocates nothing;
 * blocks are only malloc'd when the backlog grows past what was ever
 * needed before. Push and pop touch no lock and make no system call;
 * waking the consumer is the caller's business (uv_async_send once per
 * batch).
 */
#ifndef MIDGE_TRANSPORT_IOQ_H
#define MIDGE_TRANSPORT_IOQ_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* One message between the threads: 32 bytes. What op, conn, p, q and
 * len mean is the users' business (transport/iothr.h). */
struct ioq_rec {
	uint8_t op;
	uint8_t flag;
	uint32_t len;
	void *conn;
	void *p;
	void *q;
};

#define IOQ_BLOCK_RECS 127

struct ioq_block {
	_Atomic uint32_t count;              /* records written (release by the producer) */
	struct ioq_block *_Atomic next;      /* the following block, once there is one */
	struct ioq_block *spare_next;        /* on a free list */
	struct ioq_rec r[IOQ_BLOCK_RECS];
};

struct ioq {
	/* the producer's */
	struct ioq_block *tail;
	uint32_t tail_n;
	uint32_t spares_n;
	struct ioq_block *spares;
	uint64_t pushed;
	/* the consumer's, on a line of its own */
	alignas(64) struct ioq_block *head;
	uint32_t head_i;
	/* finished blocks on their way back: the consumer pushes, the
	 * producer takes them all at once (no ABA: nobody pops one) */
	alignas(64) struct ioq_block *_Atomic returned;
};

/* Returns 0, or -1 on OOM. */
int ioq_init(struct ioq *q);
/* Frees every block. Neither side may use q any more. */
void ioq_free(struct ioq *q);

/* Producer: appends r. Returns 0, or -1 on OOM (nothing appended). */
int ioq_push(struct ioq *q, const struct ioq_rec *r);
/* Consumer: takes the oldest record into *r. Returns false when none. */
bool ioq_pop(struct ioq *q, struct ioq_rec *r);

#endif
