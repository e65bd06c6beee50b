/*
 * history.c - replay logs and $replay/ subscriptions.
 *
 * A log (midge_history FILTER MAX_MESSAGES [MAX_AGE_SECONDS]) is a
 * subscriber of its own kind in the topic tree (SUBSCRIBER_HISTORY), so a
 * published message reaches the logs that want it through the same match
 * as the sessions, at no cost per message beyond the match. Each log is a
 * ring of references to the shared message (no copy), with a number from
 * one counter for every log (seq: the order of publication) and the time;
 * past MAX_MESSAGES, or older than MAX_AGE_SECONDS, entries go.
 *
 * SUBSCRIBE to $replay/SPEC/FILTER (SPEC: last:N, since:UNIX_SECONDS,
 * all) subscribes to FILTER and then delivers the logged messages that
 * match FILTER, oldest first, from every log, each once. The engine is
 * single-threaded and both happen while the SUBSCRIBE is handled, so no
 * message can be published between the last one replayed and the first
 * one routed live: the seam has no gap and no duplicate by construction.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

struct history_entry {
	struct emsg *m;
	uint64_t seq;
	uint64_t at; /* ms */
};

struct history {
	struct subscriber subscriber; /* SUBSCRIBER_HISTORY: what the tree holds */
	uint32_t max;                  /* entries */
	uint32_t max_age_s;            /* 0: no age bound */
	struct history_entry *ring;
	uint32_t cap, head, n;
	uint16_t len;
	uint8_t filter[];
};

static struct history *history_of(struct subscriber *sb)
{
	return container_of(sb, struct history, subscriber);
}

static struct midge_str history_name(const struct history *h)
{
	struct midge_str f = {(const char *)h->filter, h->len};
	return f;
}

struct history *history_find(struct engine *e, const uint8_t *filter, size_t len)
{
	for (uint32_t i = 0; i < e->n_histories; i++) {
		struct history *h = e->histories[i];
		if (h->len == len && memcmp(h->filter, filter, len) == 0)
			return h;
	}
	return NULL;
}

int engine_history_add(struct engine *e, const char *filter, uint32_t max_messages,
		       uint32_t max_age_s)
{
	size_t len = strlen(filter);
	const uint8_t *f = (const uint8_t *)filter;
	if (!max_messages || len > UINT16_MAX || !codec_topic_filter_valid(f, len) ||
	    (len >= 7 && memcmp(f, "$share/", 7) == 0) || (len >= 8 && memcmp(f, "$replay/", 8) == 0) ||
	    history_find(e, f, len))
		return -1;
	struct history **v = realloc(e->histories, (e->n_histories + 1) * sizeof *v);
	if (!v)
		return -1;
	e->histories = v;
	struct history *h = calloc(1, sizeof *h + len);
	if (!h)
		return -1;
	h->subscriber.kind = SUBSCRIBER_HISTORY;
	h->max = max_messages;
	h->max_age_s = max_age_s;
	h->len = (uint16_t)len;
	memcpy(h->filter, f, len);
	if (topic_tree_subscribe(e->tree, f, len, &h->subscriber, 0, 0) < 0) {
		free(h);
		return -1;
	}
	e->histories[e->n_histories++] = h;
	return 0;
}

/* Drops the oldest entry, telling the store. */
static void history_drop_oldest(struct engine *e, struct history *h)
{
	struct history_entry *x = &h->ring[h->head];
	struct midge_str f = history_name(h);
	STORE_CALL(e, history_removed, &f, x->seq, x->m->id);
	emsg_unref(x->m);
	h->head = (h->head + 1) % h->cap;
	h->n--;
	e->st.history_count--;
}

/* Applies the log's bounds: at most max entries (keep room for one more
 * when room is set), none older than max_age_s. */
static void history_trim(struct engine *e, struct history *h, bool room)
{
	uint32_t keep = room ? h->max - 1 : h->max;
	while (h->n > keep)
		history_drop_oldest(e, h);
	if (!h->max_age_s)
		return;
	uint64_t age_ms = (uint64_t)h->max_age_s * 1000;
	while (h->n && h->ring[h->head].at + age_ms <= e->now)
		history_drop_oldest(e, h);
}

/* Appends an entry (taking a reference to m). Returns 0 or -1 on OOM. */
static int history_put(struct engine *e, struct history *h, uint64_t seq, uint64_t at,
		       struct emsg *m)
{
	if (h->n == h->cap) {
		/* by doubling up to max: a log configured for a million
		 * messages that sees ten holds ten */
		uint32_t cap = h->cap ? h->cap * 2 : 16;
		if (cap > h->max && h->max > h->n)
			cap = h->max;
		if (ring_regrow(&h->ring, sizeof *h->ring, &h->cap, &h->head, h->n, cap) < 0)
			return -1;
	}
	struct history_entry *x = &h->ring[(h->head + h->n) % h->cap];
	x->m = emsg_ref(m);
	x->seq = seq;
	x->at = at;
	h->n++;
	e->st.history_count++;
	return 0;
}

/* route.c: a published message matched the log's filter. */
void history_append(struct engine *e, struct subscriber *sb, struct emsg *m)
{
	struct history *h = history_of(sb);
	history_trim(e, h, true);
	uint64_t seq = e->history_seq + 1;
	if (history_put(e, h, seq, e->now, m) < 0)
		return; /* out of memory: the log misses it, nobody else does */
	e->history_seq = seq;
	struct midge_str f = history_name(h);
	struct engine_store_msg v;
	store_msg_view(m, &v);
	STORE_CALL(e, history_added, &f, seq, e->now, &v);
}

/* restore.c: an entry the store kept (bounds applied at the end). */
int history_restore(struct engine *e, struct history *h, uint64_t seq, uint64_t at, struct emsg *m)
{
	if (h->n && seq <= h->ring[(h->head + h->n - 1) % h->cap].seq)
		return -1;
	/* the bound is applied once the store is attached, so it hears of it */
	uint32_t save = h->max;
	h->max = UINT32_MAX;
	int rc = history_put(e, h, seq, at, m);
	h->max = save;
	if (rc == 0 && seq > e->history_seq)
		e->history_seq = seq;
	return rc;
}

/* restore.c: the bounds, through the store, once it is attached. */
void history_trim_all(struct engine *e)
{
	for (uint32_t i = 0; i < e->n_histories; i++)
		history_trim(e, e->histories[i], false);
}

void history_free_all(struct engine *e)
{
	for (uint32_t i = 0; i < e->n_histories; i++) {
		struct history *h = e->histories[i];
		for (uint32_t k = 0; k < h->n; k++)
			emsg_unref(h->ring[(h->head + k) % h->cap].m);
		free(h->ring);
		free(h);
	}
	free(e->histories);
	e->histories = NULL;
	e->n_histories = 0;
}

/* ---- $replay/SPEC/FILTER -------------------------------------------------- */

/* A decimal number filling p[0..n), at most max. Returns 0 or -1. */
static int history_number(const uint8_t *p, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (!n || n > 20)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		uint64_t d = (uint64_t)(p[i] - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int history_parse_replay(const uint8_t *f, size_t len, struct replay_spec *out)
{
	static const char pfx[] = "$replay/";
	if (len < sizeof pfx - 1 || memcmp(f, pfx, sizeof pfx - 1) != 0)
		return 1;
	const uint8_t *spec = f + sizeof pfx - 1;
	const uint8_t *end = f + len;
	const uint8_t *slash = memchr(spec, '/', (size_t)(end - spec));
	if (!slash || slash + 1 >= end)
		return -1;
	size_t sl = (size_t)(slash - spec);
	memset(out, 0, sizeof *out);
	out->filter = slash + 1;
	out->len = (size_t)(end - out->filter);
	if (sl == 3 && memcmp(spec, "all", 3) == 0) {
		out->kind = REPLAY_ALL;
	} else if (sl > 5 && memcmp(spec, "last:", 5) == 0) {
		out->kind = REPLAY_LAST;
		if (history_number(spec + 5, sl - 5, UINT32_MAX, &out->n) < 0 || out->n == 0)
			return -1;
	} else if (sl > 6 && memcmp(spec, "since:", 6) == 0) {
		out->kind = REPLAY_SINCE;
		/* seconds that fit in ms without overflow */
		if (history_number(spec + 6, sl - 6, UINT64_MAX / 1000, &out->n) < 0)
			return -1;
	} else {
		return -1;
	}
	if (!codec_topic_filter_valid(out->filter, out->len) ||
	    (out->len >= 7 && memcmp(out->filter, "$share/", 7) == 0) ||
	    (out->len >= 8 && memcmp(out->filter, "$replay/", 8) == 0))
		return -1;
	return 0;
}

static int history_entry_cmp(const void *a, const void *b)
{
	const struct history_entry *x = a, *y = b;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Whether m was published by the session s (no-local), across restarts. */
static bool history_from(const struct emsg *m, const struct session *s)
{
	return m->origin_len == s->cid_len && memcmp(m->origin_id, s->cid, s->cid_len) == 0;
}

/*
 * The entries of every log that match r, in publication order, each
 * message once, within SPEC and the logs' bounds. Returns their number
 * (*out malloc'd, the caller frees it), or -1 on OOM.
 */
static int64_t history_select(struct engine *e, const struct replay_spec *r,
			      struct history_entry **out)
{
	size_t n = 0, cap = 0;
	struct history_entry *v = NULL;
	for (uint32_t i = 0; i < e->n_histories; i++) {
		struct history *h = e->histories[i];
		uint64_t oldest = h->max_age_s && e->now > (uint64_t)h->max_age_s * 1000
					  ? e->now - (uint64_t)h->max_age_s * 1000 : 0;
		for (uint32_t k = 0; k < h->n; k++) {
			const struct history_entry *x = &h->ring[(h->head + k) % h->cap];
			if (x->at <= oldest && h->max_age_s)
				continue;
			if (r->kind == REPLAY_SINCE && x->at < r->n * 1000)
				continue;
			if (!topic_filter_matches(r->filter, r->len, x->m->topic, x->m->topic_len))
				continue;
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 64;
				struct history_entry *nv = realloc(v, nc * sizeof *nv);
				if (!nv) {
					free(v);
					return -1;
				}
				v = nv;
				cap = nc;
			}
			v[n++] = *x;
		}
	}
	if (n > 1)
		qsort(v, n, sizeof *v, history_entry_cmp);
	/* one message in several logs has neighbouring numbers: keep the first */
	size_t w = 0;
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		for (size_t j = w; j > 0 && v[j - 1].seq + e->n_histories >= v[i].seq; j--)
			if (v[j - 1].m == v[i].m) {
				dup = true;
				break;
			}
		if (!dup)
			v[w++] = v[i];
	}
	*out = v;
	return (int64_t)w;
}

void history_replay(struct engine *e, struct session *s, const struct replay_spec *r, uint8_t qos,
		    uint8_t options, uint32_t sub_id)
{
	struct history_entry *v = NULL;
	int64_t n = history_select(e, r, &v);
	if (n <= 0)
		return;
	int64_t from = r->kind == REPLAY_LAST && (uint64_t)n > r->n ? n - (int64_t)r->n : 0;
	bool v5 = s->version == CODEC_V5;
	for (int64_t i = from; i < n && s->conn; i++) {
		struct emsg *m = v[i].m;
		if (emsg_has_expiry(m) && m->expiry.at <= e->now)
			continue; /* [MQTT-3.3.2-5] */
		if (v5 && (options & SUB_NO_LOCAL) && history_from(m, s)) /* [MQTT-3.8.3-3] */
			continue;
		bool retain = v5 && (options & SUB_RAP) ? m->retain : false;
		struct delivery d = {0};
		d.qos = qos;
		d.retain = retain;
		if (sub_id && v5) {
			d.n_sub_ids = 1;
			d.sub_ids[0] = sub_id;
		}
		emsg_ref(m); /* a delivery may free the log's entry (a nested publish) */
		session_offer(e, s, m, &d); /* the receiver's read permission, as live */
		emsg_unref(m);
	}
	free(v);
}
