/*
 * topics.c - the busiest topics, in bounded memory whatever the number
 * of topics: the Space-Saving algorithm (Metwally, Agrawal, El Abbadi,
 * 2005) over HTTP_TOPK counters, fed a random sample of the published
 * messages (one in HTTP_TOPK_SAMPLE on average, the gaps drawn from a
 * xorshift generator so that no periodic pattern of publishers aliases
 * with the sampling). The engine counts the gaps down (engine_io.sample):
 * per message that is one decrement and no event; per sampled
 * message a hash of the topic and a probe of a table twice the size of
 * the counters; a miss replaces the smallest counter (a scan of
 * HTTP_TOPK entries), whose count the newcomer inherits as its error
 * bound.
 *
 * Rates: every HTTP_TOPK_WINDOW_MS the messages seen in the window give
 * each topic's rate, and every count is halved, so the ranking follows
 * what is busy now, not what was busy an hour ago.
 */
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"

#define HTTP_TOPK_SAMPLE 16
#define HTTP_TOPK_SLOTS (2 * HTTP_TOPK)
#define HTTP_TOPK_WINDOW_MS 5000

struct http_topk_entry {
	uint64_t count;  /* sampled hits, halved every window (the ranking) */
	uint64_t err;    /* count inherited on admission: the overestimate bound */
	uint64_t window; /* sampled hits in the current window */
	double rate;     /* messages per second over the last window (estimated) */
	uint64_t total;  /* sampled hits since admitted */
	uint32_t hash;
	uint16_t len;
	bool used, truncated;
	char topic[HTTP_TOPK_TOPIC_MAX];
};

struct http_topk {
	struct http_topk_entry e[HTTP_TOPK];
	int16_t slot[HTTP_TOPK_SLOTS]; /* index into e + 1, 0 empty (open addressing) */
	uint64_t rng;
	uint64_t window_start;
	uint64_t sampled;
};

static uint32_t topk_hash(const char *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 16777619u;
	return h;
}

/* The next gap: uniform in 1..2*SAMPLE-1, mean SAMPLE. */
static uint32_t topk_gap(struct http_topk *t)
{
	t->rng ^= t->rng << 13;
	t->rng ^= t->rng >> 7;
	t->rng ^= t->rng << 17;
	return 1 + (uint32_t)(t->rng % (2 * HTTP_TOPK_SAMPLE - 1));
}

struct http_topk *http_topk_new(uint64_t seed)
{
	struct http_topk *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->rng = seed | 1;
	t->window_start = seed;
	return t;
}

void http_topk_free(struct http_topk *t)
{
	free(t);
}

/* How much of a topic is kept: all of it, or a prefix that ends on a
 * UTF-8 character boundary (topics are valid UTF-8: the codec checked). */
static size_t topk_keep(const char *p, size_t n)
{
	if (n <= HTTP_TOPK_TOPIC_MAX)
		return n;
	size_t keep = HTTP_TOPK_TOPIC_MAX;
	while (keep > 0 && ((uint8_t)p[keep] & 0xC0) == 0x80)
		keep--;
	return keep;
}

static bool topk_same(const struct http_topk_entry *x, uint32_t h, const char *p, size_t n)
{
	size_t keep = topk_keep(p, n);
	return x->hash == h && x->len == keep && x->truncated == (n > keep) &&
	       memcmp(x->topic, p, keep) == 0;
}

/* Rebuilds the probe table (after a replacement moved an entry out). */
static void topk_reindex(struct http_topk *t)
{
	memset(t->slot, 0, sizeof t->slot);
	for (int i = 0; i < HTTP_TOPK; i++) {
		if (!t->e[i].used)
			continue;
		uint32_t s = t->e[i].hash % HTTP_TOPK_SLOTS;
		while (t->slot[s])
			s = (s + 1) % HTTP_TOPK_SLOTS;
		t->slot[s] = (int16_t)(i + 1);
	}
}

/* One sampled message on topic p[0..n). */
static void topk_count(struct http_topk *t, const char *p, size_t n)
{
	t->sampled++;
	uint32_t h = topk_hash(p, n);
	for (uint32_t s = h % HTTP_TOPK_SLOTS; t->slot[s]; s = (s + 1) % HTTP_TOPK_SLOTS) {
		struct http_topk_entry *x = &t->e[t->slot[s] - 1];
		if (topk_same(x, h, p, n)) {
			x->count++;
			x->window++;
			x->total++;
			return;
		}
	}
	/* Not tracked: take a free counter or the smallest one. */
	struct http_topk_entry *min = &t->e[0];
	for (int i = 0; i < HTTP_TOPK; i++) {
		if (!t->e[i].used) {
			min = &t->e[i];
			break;
		}
		if (t->e[i].count < min->count)
			min = &t->e[i];
	}
	uint64_t inherited = min->used ? min->count : 0;
	size_t keep = topk_keep(p, n);
	bool reuse = min->used;
	memset(min, 0, sizeof *min);
	min->used = true;
	min->hash = h;
	min->len = (uint16_t)keep;
	min->truncated = n > keep;
	memcpy(min->topic, p, keep);
	min->count = inherited + 1;
	min->err = inherited;
	min->window = 1;
	min->total = 1;
	if (reuse) {
		topk_reindex(t);
		return;
	}
	uint32_t s = h % HTTP_TOPK_SLOTS;
	while (t->slot[s])
		s = (s + 1) % HTTP_TOPK_SLOTS;
	t->slot[s] = (int16_t)(min - t->e + 1);
}

uint32_t http_topk_sample(struct http_topk *t, const char *p, size_t n)
{
	topk_count(t, p, n);
	return topk_gap(t);
}

void http_topk_tick(struct http_topk *t, uint64_t now_ms)
{
	if (!t || now_ms - t->window_start < HTTP_TOPK_WINDOW_MS)
		return;
	double secs = (double)(now_ms - t->window_start) / 1000.0;
	t->window_start = now_ms;
	for (int i = 0; i < HTTP_TOPK; i++) {
		struct http_topk_entry *x = &t->e[i];
		if (!x->used)
			continue;
		x->rate = (double)x->window * HTTP_TOPK_SAMPLE / secs;
		x->window = 0;
		x->count /= 2;
		x->err /= 2;
	}
}

static int topk_cmp(const void *a, const void *b)
{
	const struct http_topk_entry *x = *(const struct http_topk_entry *const *)a;
	const struct http_topk_entry *y = *(const struct http_topk_entry *const *)b;
	if (x->rate != y->rate)
		return x->rate < y->rate ? 1 : -1;
	return x->count < y->count ? 1 : x->count > y->count ? -1 : 0;
}

json_t *http_topk_json(const struct http_topk *t, uint32_t limit)
{
	const struct http_topk_entry *v[HTTP_TOPK];
	int n = 0;
	json_t *arr = json_array();
	if (!arr || !t)
		return arr;
	for (int i = 0; i < HTTP_TOPK; i++)
		if (t->e[i].used)
			v[n++] = &t->e[i];
	qsort(v, (size_t)n, sizeof v[0], topk_cmp);
	for (int i = 0; i < n && (uint32_t)i < limit; i++) {
		json_t *o = json_pack("{s:s%, s:b, s:f, s:I, s:I}", "topic", v[i]->topic,
				      (size_t)v[i]->len, "truncated", v[i]->truncated, "rate",
				      v[i]->rate, "messages",
				      (json_int_t)(v[i]->total * HTTP_TOPK_SAMPLE), "error",
				      (json_int_t)(v[i]->err * HTTP_TOPK_SAMPLE));
		if (o)
			json_array_append_new(arr, o);
	}
	return arr;
}
