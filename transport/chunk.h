/*
 * chunk.h - the input an I/O thread has read and handed to the engine
 * thread, in large shared chunks.
 *
 * An I/O thread reads every socket into the free end of its current
 * chunk and hands each read to the engine as (chunk, bytes) in an ioq
 * record: many small reads share one chunk, so input costs no buffer per
 * connection and no copy on the way. The engine frames the bytes where
 * they are and lets go of them; only a packet cut by the end of a read is
 * copied (into the connection's own buffer, engine side).
 *
 * Lifetime without an atomic operation per read: a chunk starts with a
 * large bias of references that stands for "the I/O thread still fills
 * it"; the I/O thread counts its reads of the chunk in a plain field and,
 * when it moves on to another chunk, gives back the bias minus that
 * count in one step. The engine gives back one reference per read it has
 * done with (grouped per chunk). Whoever brings the count to zero puts
 * the chunk on the pool's return stack, which the I/O thread empties
 * when it needs a chunk.
 *
 * The pool is the I/O thread's input budget: at most `max` chunks exist.
 * With none free the thread stops reading (and says so in `starved`, so
 * the engine wakes it when a chunk comes back): bounded memory whatever
 * the clients send.
 */
#ifndef MIDGE_TRANSPORT_CHUNK_H
#define MIDGE_TRANSPORT_CHUNK_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHUNK_SIZE (64u * 1024u)
#define CHUNK_MIN_ROOM 4096u   /* a read wants at least this much room */
#define CHUNK_POOL_MAX 128     /* chunks in flight per I/O thread: 8 MiB of input */
#define CHUNK_IDLE_KEPT 8      /* free chunks kept when the input has drained */

struct chunk {
	_Atomic uint32_t refs;
	uint32_t used;             /* bytes handed out (the I/O thread's) */
	uint32_t reads;            /* records made of it (the I/O thread's) */
	struct chunk *next;        /* on a free list or the return stack */
	alignas(16) uint8_t data[CHUNK_SIZE];
};

struct chunk_pool {
	/* the I/O thread's */
	struct chunk *cur;
	struct chunk *free;
	int n_free;
	int n_total;
	int max;
	/* shared */
	alignas(64) struct chunk *_Atomic returned;
	atomic_bool starved;       /* the I/O thread waits for a chunk */
};

void chunk_pool_init(struct chunk_pool *p, int max);
/* Frees every chunk the pool holds (none may be in flight any more). */
void chunk_pool_clear(struct chunk_pool *p);

/*
 * I/O thread: where the next read goes, with at least CHUNK_MIN_ROOM
 * bytes of room (*room gets it); moves to a fresh chunk when the current
 * one is nearly full. NULL when the budget is spent: the caller stops
 * reading until chunk_put() brings one back (p->starved is then set).
 */
uint8_t *chunk_room(struct chunk_pool *p, uint32_t *room);
/* I/O thread: n bytes were read at the room: they now belong to a record
 * (one reference). Returns the chunk they live in. */
struct chunk *chunk_take(struct chunk_pool *p, uint32_t n);

/*
 * Any thread: gives back n references to c (the engine: n reads it is
 * done with). Returns true when the chunk went back to its pool and the
 * pool's thread was starved (the caller wakes it).
 */
bool chunk_put(struct chunk_pool *p, struct chunk *c, uint32_t n);

#endif
