/*
 * rbuf.h - receive buffers: the bytes a connection (or a layer of its
 * stack) has read and not yet consumed. "rbuf" means only this.
 *
 * A buffer carries its own bookkeeping, so a connection without one (an
 * idle one) pays only a pointer. Buffers of the standard size come from a
 * pool and go back to it once empty; a buffer grown for one large packet
 * is freed when it empties.
 */
#ifndef MIDGE_TRANSPORT_RBUF_H
#define MIDGE_TRANSPORT_RBUF_H

#include <stdint.h>

#define RBUF_SIZE 4096   /* pooled buffer, bookkeeping included */
#define RBUF_POOL_MAX 64 /* idle buffers kept for reuse (256 KiB) */

struct rbuf {
	uint32_t len, cap; /* bytes in data, room in data */
	uint32_t need;     /* size of the packet being assembled, 0 if unknown */
	uint8_t data[];
};

struct rbuf_pool {
	struct rbuf *idle[RBUF_POOL_MAX];
	int n;
};

/* Makes room in *pb for at least one more byte, and for `need` bytes in
 * all (the packet being assembled); takes a pooled buffer when *pb is
 * NULL. Returns 0 or -1 on OOM (*pb unchanged). */
int rbuf_reserve(struct rbuf_pool *pool, struct rbuf **pb, uint32_t need);
/* Appends p[0..len) to *pb (a pooled buffer when NULL), with room for
 * `need` bytes in all when need is larger. Returns 0 or -1 on OOM (*pb
 * unchanged). */
int rbuf_append(struct rbuf_pool *pool, struct rbuf **pb, const uint8_t *p, uint32_t len,
		uint32_t need);
/* Drops data[0..used): the rest moves to the front. */
void rbuf_consume(struct rbuf *b, uint32_t used);
/* Returns *pb to the pool when it holds nothing, so idle connections hold
 * no buffer. */
void rbuf_release_if_empty(struct rbuf_pool *pool, struct rbuf **pb);
/* Returns b (may be NULL) to the pool, or frees it. */
void rbuf_put(struct rbuf_pool *pool, struct rbuf *b);
/* Frees every idle buffer. */
void rbuf_pool_clear(struct rbuf_pool *pool);

#endif
