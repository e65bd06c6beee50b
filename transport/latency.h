/*
 * latency.h - histograms of time spent inside the broker: delivery (a
 * PUBLISH read from its publisher's socket until the delivery is written
 * to the subscriber's socket) and authentication (a CONNECT's password
 * check). Read by /metrics (http/metrics.c).
 *
 * Delivery is measured at two points, each one small function, so that
 * they can move with the I/O threads: latency_mark_read() when bytes were
 * read and are about to be framed, latency_mark_written() when an output
 * queue has gone to the socket. Between them each queued PUBLISH adds the
 * read time of the bytes it came from to its queue (latency_carry()),
 * which costs an addition per delivery and no clock read. A queue written
 * in one go observes its n deliveries at their mean latency: the sum is
 * exact, the bucket is the batch's mean. Deliveries not caused by a read
 * (retained messages on subscribe, queued messages on reconnect, $SYS,
 * the HTTP API) are not measured.
 */
#ifndef MIDGE_TRANSPORT_LATENCY_H
#define MIDGE_TRANSPORT_LATENCY_H

#include <stdint.h>

#define LATENCY_BUCKETS 18

/* Upper bounds of the buckets in microseconds (the last bucket is +Inf). */
extern const uint32_t latency_bounds_us[LATENCY_BUCKETS];

struct latency_hist {
	uint64_t bucket[LATENCY_BUCKETS + 1]; /* not cumulative; [LATENCY_BUCKETS] is +Inf */
	uint64_t count;
	uint64_t sum_us;
};

struct latency {
	uint64_t read_us; /* read time of the bytes being framed now; 0 outside input */
	struct latency_hist delivery;
	struct latency_hist auth;
};

struct outq;

/* Monotonic microseconds. */
uint64_t latency_now_us(void);

/* Records n observations of us microseconds each. */
void latency_observe(struct latency_hist *h, uint64_t us, uint64_t n);

/* Measuring point 1: bytes just read are about to be framed (and routed). */
static inline void latency_mark_read(struct latency *l)
{
	l->read_us = latency_now_us();
}

/* Input framing is over: what is sent from now on was not caused by a read. */
static inline void latency_read_done(struct latency *l)
{
	l->read_us = 0;
}

/* A frame whose first byte is first was queued on q. */
void latency_carry(struct latency *l, struct outq *q, uint8_t first);

/* Measuring point 2: q (all of it) was written to the socket. */
void latency_mark_written(struct latency *l, struct outq *q);

/* The value below which a fraction p (0..1) of the observations fall,
 * interpolated within its bucket, in microseconds (0 without any). */
double latency_quantile_us(const struct latency_hist *h, double p);

#endif
