/*
 * want.c - one socket's subscription prefixes and the per-type want sets
 * derived from them (see want.h).
 */
#include "hooks/want.h"

#include <stdlib.h>
#include <string.h>

#include "hooks/hooks_info.h"
#include "hooks/render.h"

/* Byte order, a prefix before every longer string it starts. */
static int bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

void hooks_want_init(struct hooks_want *w, size_t max)
{
	memset(w, 0, sizeof *w);
	w->max = max ? max : HOOKS_DEFAULT_MAX_PREFIXES;
}

void hooks_want_clear(struct hooks_want *w)
{
	for (size_t i = 0; i < w->n; i++)
		free((void *)w->v[i].p);
	free(w->v);
	free(w->tv);
	size_t max = w->max;
	hooks_want_init(w, max);
}

/* Index of the first prefix not before p (w->n if none); *found says
 * whether it is p. */
static size_t want_find(const struct hooks_want *w, const char *p, size_t len, bool *found)
{
	size_t lo = 0, hi = w->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (bytes_cmp(w->v[mid].p, w->v[mid].len, p, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < w->n && bytes_cmp(w->v[lo].p, w->v[lo].len, p, len) == 0;
	return lo;
}

enum hooks_want_add hooks_want_add(struct hooks_want *w, const char *p, size_t len)
{
	bool found;
	size_t i = want_find(w, p, len, &found);
	if (found)
		return HOOKS_WANT_KNOWN;
	if (w->n >= w->max)
		return HOOKS_WANT_IGNORED;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 8;
		if (cap > w->max)
			cap = w->max;
		struct hooks_bytes *v = realloc(w->v, cap * sizeof *v);
		if (!v) {
			w->everything = true;
			return HOOKS_WANT_ADDED;
		}
		w->v = v;
		w->cap = cap;
	}
	char *copy = malloc(len ? len : 1);
	if (!copy) {
		w->everything = true;
		return HOOKS_WANT_ADDED;
	}
	if (len)
		memcpy(copy, p, len);
	memmove(w->v + i + 1, w->v + i, (w->n - i) * sizeof *w->v);
	w->v[i].p = copy;
	w->v[i].len = len;
	w->n++;
	return HOOKS_WANT_ADDED;
}

void hooks_want_remove(struct hooks_want *w, const char *p, size_t len)
{
	bool found;
	size_t i = want_find(w, p, len, &found);
	if (!found)
		return;
	free((void *)w->v[i].p);
	memmove(w->v + i, w->v + i + 1, (w->n - i - 1) * sizeof *w->v);
	w->n--;
}

/*
 * What prefix pr means for events named name: 2 all of them, 1 the topics
 * starting with pr's tail (*tail), 0 none.
 */
static int want_classify(const struct hooks_bytes *pr, const char *name, size_t nlen, bool msg,
			 struct hooks_bytes *tail)
{
	if (pr->len <= nlen)
		return memcmp(pr->p, name, pr->len) == 0 ? 2 : 0;
	if (!msg || pr->p[nlen] != '/' || memcmp(pr->p, name, nlen) != 0)
		return 0;
	if (pr->len == nlen + 1)
		return 2;
	tail->p = pr->p + nlen + 1;
	tail->len = pr->len - nlen - 1;
	return 1;
}

void hooks_want_rebuild(struct hooks_want *w)
{
	w->all = w->some = w->topical = 0;
	memset(w->tn, 0, sizeof w->tn);
	memset(w->toff, 0, sizeof w->toff);
	free(w->tv);
	w->tv = NULL;
	if (w->everything) {
		w->all = ~(uint32_t)0;
		return;
	}
	if (w->n && !(w->tv = malloc(w->n * sizeof *w->tv))) {
		w->all = ~(uint32_t)0; /* out of memory: want everything */
		return;
	}
	size_t used = 0;
	for (int t = 1; t < MIDGE_EV__COUNT; t++) {
		const char *name = midge_event_name((enum midge_event_type)t);
		size_t nlen = strlen(name);
		bool msg = hooks_event_has_message((enum midge_event_type)t);
		w->toff[t] = used;
		for (size_t i = 0; i < w->n; i++) {
			struct hooks_bytes tail;
			int c = want_classify(&w->v[i], name, nlen, msg, &tail);
			if (c == 1)
				w->topical |= 1u << t;
			if (c == 2) {
				w->all |= 1u << t;
			} else if (c == 1 && !(w->all & (1u << t))) {
				/* v is sorted, so the tails of one name are too: an
				 * entry another is a prefix of follows it directly. */
				size_t k = w->tn[t];
				const struct hooks_bytes *last = k ? &w->tv[used + k - 1] : NULL;
				if (last && last->len <= tail.len &&
				    memcmp(last->p, tail.p, last->len) == 0)
					continue;
				w->tv[used + k] = tail;
				w->tn[t]++;
			}
		}
		if (w->all & (1u << t)) {
			w->tn[t] = 0;
			continue;
		}
		if (w->tn[t])
			w->some |= 1u << t;
		used += w->tn[t];
	}
}

bool hooks_want_match(const struct hooks_want *w, enum midge_event_type type, const char *topic,
		      size_t tlen)
{
	if ((int)type <= 0 || type >= MIDGE_EV__COUNT)
		return false;
	uint32_t bit = 1u << type;
	if (w->all & bit)
		return true;
	if (!(w->some & bit) || !topic)
		return false;
	/* The greatest topic prefix not after the topic. */
	const struct hooks_bytes *v = w->tv + w->toff[type];
	size_t lo = 0, hi = w->tn[type];
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (bytes_cmp(v[mid].p, v[mid].len, topic, tlen) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return false;
	const struct hooks_bytes *c = &v[lo - 1];
	return c->len <= tlen && memcmp(c->p, topic, c->len) == 0;
}
