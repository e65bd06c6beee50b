/*
 * route_bench.c - routing benchmark (make bench-route): builds a
 * subscription trie of 1,000,000 subscriptions with a realistic mix of
 * filters, then times matching 7-level topics, subscribe and unsubscribe,
 * and measures memory per subscription; then the same for the retained
 * store. Every loop is bounded in count and time.
 *
 * Topics look like tenant/site/device/kind/metric/channel/variant. Filters:
 * 85% literal, 3 to 7 levels; 10% with one '+' (not first level); 5% a 2
 * to 5 level prefix followed by '#'. 100,000 subscribers, each with about
 * ten subscriptions.
 *
 * Usage: route-bench [subscriptions]   (default 1000000)
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/topic.h"
#include "engine/topic_debug.h"

enum { TENANTS = 20, SITES = 50, DEVICES = 200, CHANNELS = 8, VARIANTS = 4 };
enum { SUBSCRIBERS = 100000, NAME_MAX_LEN = 96, TOPICS = 1 << 16 };
static const double MATCH_SECONDS = 2.0;
static const size_t MATCH_MAX = 5000000;

static const char *kinds[] = {"telemetry", "status", "cmd", "config",
			      "event",     "alarm",  "log", "ota"};
static const char *metrics[] = {"temp",  "humidity", "pressure", "voltage", "current", "power",
				"rssi",  "battery",  "door",     "motion",  "co2",     "pm25",
				"noise", "light",    "flow",     "level"};

static uint64_t rng_state = 0x853c49e6748fea9bULL;
static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 16);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Resident set size in bytes, from /proc/self/statm. */
static size_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size = 0, res = 0;
	if (f) {
		if (fscanf(f, "%lu %lu", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return (size_t)res * 4096;
}

static size_t heap_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

/* Level l (0..6) of a topic path, drawn at random. */
static int level_write(char *out, size_t cap, int l)
{
	switch (l) {
	case 0:
		return snprintf(out, cap, "tenant%u", rng() % TENANTS);
	case 1:
		return snprintf(out, cap, "site%u", rng() % SITES);
	case 2:
		return snprintf(out, cap, "dev%u", rng() % DEVICES);
	case 3:
		return snprintf(out, cap, "%s", kinds[rng() % 8]);
	case 4:
		return snprintf(out, cap, "%s", metrics[rng() % 16]);
	case 5:
		return snprintf(out, cap, "ch%u", rng() % CHANNELS);
	default:
		return snprintf(out, cap, "v%u", rng() % VARIANTS);
	}
}

/* A random path of `levels` levels; '+' at level plus_at (-1: none);
 * "/#" appended when hash is set. */
static size_t path_write(char *out, int levels, int plus_at, int hash)
{
	size_t o = 0;
	for (int l = 0; l < levels; l++) {
		if (l)
			out[o++] = '/';
		if (l == plus_at) {
			rng(); /* keep the other levels' draws independent of it */
			out[o++] = '+';
		} else {
			o += (size_t)level_write(out + o, NAME_MAX_LEN - o, l);
		}
	}
	if (hash) {
		out[o++] = '/';
		out[o++] = '#';
	}
	out[o] = 0;
	return o;
}

static size_t filter_write(char *out)
{
	uint32_t x = rng() % 100;
	if (x < 85)
		return path_write(out, 3 + (int)(rng() % 5), -1, 0);
	if (x < 95) {
		int levels = 3 + (int)(rng() % 5);
		return path_write(out, levels, 1 + (int)(rng() % (uint32_t)(levels - 1)), 0);
	}
	return path_write(out, 2 + (int)(rng() % 4), -1, 1);
}

struct counter {
	size_t calls;
};

static bool count_cb(void *ctx, void *subscriber, uint8_t options, uint32_t sub_id, bool shared)
{
	struct counter *c = ctx;
	c->calls++;
	return true;
}

/* Times matching topics[] round robin for at most MATCH_SECONDS or
 * MATCH_MAX matches. Prints ns/match and deliveries per match. */
static void time_match(struct topic_tree *t, char (*topics)[NAME_MAX_LEN], const size_t *lens,
		       const char *what)
{
	struct counter c = {0};
	size_t done = 0;
	double t0 = now(), t1 = t0;
	while (done < MATCH_MAX && t1 - t0 < MATCH_SECONDS) {
		for (size_t i = 0; i < 4096; i++, done++) {
			size_t k = done & (TOPICS - 1);
			topic_tree_match(t, (const uint8_t *)topics[k], lens[k], count_cb, &c);
		}
		t1 = now();
	}
	printf("match %-34s %8.1f ns/match  (%zu matches, %.2f deliveries/match)\n", what,
	       (t1 - t0) * 1e9 / (double)done, done, (double)c.calls / (double)done);
}

static void retain_unref(void *msg)
{
	(void)msg;
}

struct rcount {
	size_t n;
};

static void rcount_cb(void *ctx, void *msg)
{
	((struct rcount *)ctx)->n++;
}

/* Retained store: set N topics of 3-7 levels, time filter walks. */
static void bench_retain(size_t n)
{
	char(*tp)[NAME_MAX_LEN] = malloc(n * NAME_MAX_LEN);
	size_t *len = malloc(n * sizeof(*len));
	if (!tp || !len) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < n; i++)
		len[i] = path_write(tp[i], 3 + (int)(rng() % 5), -1, 0);
	static int msg;
	size_t heap0 = heap_bytes();
	double t0 = now();
	struct retain_store *r = retain_store_new(retain_unref);
	for (size_t i = 0; i < n; i++)
		retain_store_set(r, (const uint8_t *)tp[i], len[i], &msg);
	double t1 = now();
	size_t heap1 = heap_bytes();
	size_t count = retain_store_count(r);
	printf("retain set      %zu topics (%zu distinct): %.0f ns/set, %.1f bytes/message "
	       "(heap), %zu nodes\n",
	       n, count, (t1 - t0) * 1e9 / (double)n, (double)(heap1 - heap0) / (double)count,
	       retain_store_node_count(r));
	static const char *filters[] = {"tenant3/site7/dev42/#", "tenant3/site7/+/status",
					"tenant3/+/dev42/telemetry/temp/#", "+/+/+/alarm/+",
					"tenant3/site7/dev42/telemetry/temp/ch1/v2"};
	for (size_t f = 0; f < sizeof(filters) / sizeof(filters[0]); f++) {
		struct rcount rc = {0};
		size_t iters = 0;
		double a = now(), b = a;
		while (iters < 100000 && b - a < 0.5) {
			rc.n = 0;
			retain_store_match(r, (const uint8_t *)filters[f], strlen(filters[f]),
					   rcount_cb, &rc);
			iters++;
			if ((iters & 15) == 0)
				b = now();
		}
		b = now();
		printf("retain match %-42s %10.0f ns  (%zu messages)\n", filters[f],
		       (b - a) * 1e9 / (double)iters, rc.n);
	}
	t0 = now();
	for (size_t i = 0; i < n; i++)
		retain_store_set(r, (const uint8_t *)tp[i], len[i], NULL);
	t1 = now();
	printf("retain clear    %.0f ns/clear, %zu nodes left\n", (t1 - t0) * 1e9 / (double)n,
	       retain_store_node_count(r));
	retain_store_free(r);
	free(tp);
	free(len);
}

/* Latency of one dependent load from main memory (a random cycle through
 * 256 MB): the yardstick for the cold-cache match figures, since a match
 * that leaves the cache costs about one such load per trie level. */
static double memory_latency_ns(void)
{
	size_t n = (256u << 20) / 64;
	size_t *a = malloc(n * 64);
	uint32_t *perm = malloc(n * sizeof(*perm));
	if (!a || !perm) {
		free(a);
		free(perm);
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		perm[i] = (uint32_t)i;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = ((size_t)rng() << 16 ^ rng()) % (i + 1);
		uint32_t x = perm[i];
		perm[i] = perm[j];
		perm[j] = x;
	}
	for (size_t i = 0; i < n; i++)
		a[(size_t)perm[i] * 8] = (size_t)perm[(i + 1) % n] * 8;
	enum { HOPS = 1000000 };
	size_t p = 0;
	double t0 = now();
	for (int i = 0; i < HOPS; i++)
		p = a[p];
	double t1 = now();
	free(a);
	free(perm);
	return p == SIZE_MAX ? 0 : (t1 - t0) * 1e9 / HOPS;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
	if (n == 0 || n > 20000000) {
		fprintf(stderr, "usage: route-bench [subscriptions 1..20000000]\n");
		return 2;
	}
	char(*flt)[NAME_MAX_LEN] = malloc(n * NAME_MAX_LEN);
	size_t *flen = malloc(n * sizeof(*flen));
	char(*topics)[NAME_MAX_LEN] = malloc((size_t)TOPICS * NAME_MAX_LEN);
	size_t *tlen = malloc(TOPICS * sizeof(*tlen));
	char(*hits)[NAME_MAX_LEN] = malloc((size_t)TOPICS * NAME_MAX_LEN);
	size_t *hlen = malloc(TOPICS * sizeof(*hlen));
	static char subscribers[SUBSCRIBERS];
	if (!flt || !flen || !topics || !tlen || !hits || !hlen) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < n; i++)
		flen[i] = filter_write(flt[i]);
	for (size_t i = 0; i < TOPICS; i++)
		tlen[i] = path_write(topics[i], 7, -1, 0);

	size_t rss0 = rss_bytes(), heap0 = heap_bytes();
	double t0 = now();
	struct topic_tree *t = topic_tree_new();
	size_t replaced = 0;
	for (size_t i = 0; i < n; i++) {
		int rc = topic_tree_subscribe(t, (const uint8_t *)flt[i], flen[i],
					      &subscribers[i % SUBSCRIBERS], 1, 0);
		if (rc < 0) {
			fprintf(stderr, "subscribe failed\n");
			return 1;
		}
		replaced += (size_t)rc;
	}
	double t1 = now();
	size_t rss1 = rss_bytes(), heap1 = heap_bytes();
	size_t count = topic_tree_count(t);
	printf("routing bench: %zu subscribe calls, %zu subscriptions (%zu replaced), %zu trie "
	       "nodes, %d subscribers\n",
	       n, count, replaced, topic_tree_node_count(t), SUBSCRIBERS);
	printf("subscribe       %8.0f ns/op  (%.2f M/s)\n", (t1 - t0) * 1e9 / (double)n,
	       (double)n / (t1 - t0) / 1e6);
	printf("memory          %8.1f bytes/subscription RSS delta, %.1f heap delta (%.1f MB)\n",
	       (double)(rss1 - rss0) / (double)count, (double)(heap1 - heap0) / (double)count,
	       (double)(rss1 - rss0) / 1e6);

	/* Topics every level of which exists: copy 7-level literal filters. */
	size_t nh = 0;
	for (size_t i = 0; i < n && nh < TOPICS; i++) {
		if (flen[i] && !memchr(flt[i], '+', flen[i]) && !memchr(flt[i], '#', flen[i]) &&
		    memchr(flt[i], '/', flen[i])) {
			int slashes = 0;
			for (size_t k = 0; k < flen[i]; k++)
				slashes += flt[i][k] == '/';
			if (slashes == 6) {
				memcpy(hits[nh], flt[i], flen[i] + 1);
				hlen[nh++] = flen[i];
			}
		}
	}
	for (size_t i = nh; i < TOPICS; i++) { /* fewer than TOPICS: repeat */
		memcpy(hits[i], hits[i % (nh ? nh : 1)], NAME_MAX_LEN);
		hlen[i] = hlen[i % (nh ? nh : 1)];
	}
	time_match(t, topics, tlen, "random 7-level topics");
	time_match(t, hits, hlen, "7-level topics that are subscribed");
	/* The same, with 256 distinct topics whose paths stay in cache: the
	 * trie's own cost without main-memory latency. */
	for (size_t i = 256; i < TOPICS; i++) {
		memcpy(topics[i], topics[i % 256], NAME_MAX_LEN);
		tlen[i] = tlen[i % 256];
		memcpy(hits[i], hits[i % 256], NAME_MAX_LEN);
		hlen[i] = hlen[i % 256];
	}
	time_match(t, topics, tlen, "random, 256 distinct (cached)");
	time_match(t, hits, hlen, "subscribed, 256 distinct (cached)");

	t0 = now();
	size_t removed = 0;
	for (size_t i = 0; i < n; i++)
		removed += topic_tree_unsubscribe(t, (const uint8_t *)flt[i], flen[i],
						  &subscribers[i % SUBSCRIBERS]) == 0;
	t1 = now();
	printf("unsubscribe     %8.0f ns/op  (%.2f M/s), %zu removed, %zu nodes left, heap after "
	       "%+.1f MB\n",
	       (t1 - t0) * 1e9 / (double)n, (double)n / (t1 - t0) / 1e6, removed,
	       topic_tree_node_count(t), ((double)heap_bytes() - (double)heap0) / 1e6);
	topic_tree_free(t);
	free(flt);
	free(flen);
	free(topics);
	free(tlen);
	free(hits);
	free(hlen);

	bench_retain(n);
	printf("main-memory latency (dependent random loads over 256 MB): %.0f ns\n",
	       memory_latency_ns());
	return 0;
}
