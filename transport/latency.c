/*
 * latency.c - delivery and authentication latency histograms
 * (transport/latency.h says what is measured where).
 */
#include "transport/latency.h"

#include <time.h>

#include "transport/outq.h"

const uint32_t latency_bounds_us[LATENCY_BUCKETS] = {
	10,    25,    50,     100,    250,    500,    1000,    2500,    5000,
	10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
};

uint64_t latency_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* n observations in the bucket of us, adding total_us to the sum. */
static void latency_observe_sum(struct latency_hist *h, uint64_t us, uint64_t n, uint64_t total_us)
{
	int i = 0;
	while (i < LATENCY_BUCKETS && us > latency_bounds_us[i])
		i++;
	h->bucket[i] += n;
	h->count += n;
	h->sum_us += total_us;
}

void latency_observe(struct latency_hist *h, uint64_t us, uint64_t n)
{
	latency_observe_sum(h, us, n, us * n);
}

void latency_carry(struct latency *l, struct outq *q, uint8_t first)
{
	if (!l->read_us || (first >> 4) != 3) /* PUBLISH only, and only during input */
		return;
	q->lat_read_sum += l->read_us;
	q->lat_n++;
}

void latency_mark_written(struct latency *l, struct outq *q)
{
	if (!q->lat_n)
		return;
	uint64_t now = latency_now_us();
	uint64_t total = now * q->lat_n > q->lat_read_sum ? now * q->lat_n - q->lat_read_sum : 0;
	latency_observe_sum(&l->delivery, total / q->lat_n, q->lat_n, total);
	q->lat_read_sum = 0;
	q->lat_n = 0;
}

double latency_quantile_us(const struct latency_hist *h, double p)
{
	if (!h->count)
		return 0;
	double want = p * (double)h->count, seen = 0, lo = 0;
	for (int i = 0; i <= LATENCY_BUCKETS; i++) {
		double hi = i < LATENCY_BUCKETS ? latency_bounds_us[i] : lo * 2;
		if (h->bucket[i] && seen + (double)h->bucket[i] >= want)
			return lo + (hi - lo) * (want - seen) / (double)h->bucket[i];
		seen += (double)h->bucket[i];
		lo = hi;
	}
	return lo;
}
