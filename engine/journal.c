/*
 * journal.c - the engine's side of the cluster's QoS 1/2 journal
 * (docs/cluster.md, "The journal"; cluster/journal.c keeps the stream).
 *
 * Every QoS 1/2 message a node forwards carries its run (random at the
 * node's start) and a sequence number counted by that run. A node sees
 * each run's messages in that order (one NATS connection, and libnats's
 * global delivery pool has one thread unless raised: checked with
 * Debian's libnats 3.4, whose subscriptions all deliver on one thread),
 * so "run R up to sequence N" (a mark) says which of R's messages it has
 * routed. A checkpoint carries the
 * marks of its node at that moment (and this node's own run), and the
 * time. A session resumed from a dead node's checkpoint therefore knows
 * exactly what it had: the cluster reads the journal back from the
 * checkpoint's time, and each message goes to the session only past its
 * marks. Until that replay ends, new messages for the session wait in
 * order behind it (a live message may be in the replay too: it is given
 * once), so every publisher's order holds [MQTT-4.6.0-5].
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

/* A replay that never ends (the cluster stopped reading) lets the
 * waiting messages go after this. */
#define JOURNAL_WAIT_MAX_MS 120000

struct journal_held {
	struct emsg *m;
	struct delivery d;
	uint64_t run, seq;
};

struct journal_wait {
	struct journal_wait *next;
	struct session *s;
	uint64_t job;
	uint64_t from_ms; /* the checkpoint's time: encoded again meanwhile */
	uint64_t since;
	struct journal_mark *seen; /* per run: the last sequence the session has */
	uint32_t n_seen;
	struct journal_held *held;
	uint32_t n_held, cap_held;
};

int journal_attach(struct engine *e)
{
	if (e->jr || !e->cluster.replay)
		return 0;
	e->jr = calloc(1, sizeof *e->jr);
	return e->jr ? 0 : -1;
}

static struct journal_mark *mark_find(struct journal_mark *v, uint32_t n, uint64_t run)
{
	for (uint32_t i = 0; i < n; i++)
		if (v[i].run == run)
			return &v[i];
	return NULL;
}

/* The node's mark of run moves to seq. */
static void mark_node(struct journal *j, uint64_t run, uint64_t seq)
{
	struct journal_mark *k = j->n_marks && j->marks[j->last].run == run ? &j->marks[j->last]
									      : mark_find(j->marks, j->n_marks, run);
	if (!k) {
		if (j->n_marks == JOURNAL_RUNS_MAX)
			return; /* a run past the bound is replayed whole: duplicates, no loss */
		if (j->n_marks == j->cap_marks) {
			uint32_t cap = j->cap_marks ? j->cap_marks * 2 : 8;
			struct journal_mark *n = realloc(j->marks, cap * sizeof *n);
			if (!n)
				return;
			j->marks = n;
			j->cap_marks = cap;
		}
		k = &j->marks[j->n_marks++];
		k->run = run;
		k->seq = 0;
	}
	j->last = (uint32_t)(k - j->marks);
	if (seq > k->seq)
		k->seq = seq;
}

void journal_forward(struct engine *e, struct engine_cluster_msg *v)
{
	struct journal *j = e->jr;
	if (!j)
		return;
	/* a message published here, also from an event callback while a
	 * replay's message is delivered: not the replay's */
	j->cur_run = j->cur_seq = j->cur_job = 0;
	if (!v->qos)
		return;
	v->node_run = e->cluster.node_run;
	v->seq = ++j->self_seq;
	j->cur_run = v->node_run;
	j->cur_seq = v->seq;
}

void journal_input(struct engine *e, const struct engine_cluster_msg *v, bool shared)
{
	struct journal *j = e->jr;
	if (!j)
		return;
	j->cur_run = v->seq ? v->node_run : 0;
	j->cur_seq = v->seq;
	j->cur_job = 0;
	/* a queue group's messages come on another connection, in another
	 * order: they are never replayed, so they mark nothing */
	if (v->seq && !shared)
		mark_node(j, v->node_run, v->seq);
}

/* Whether the session of w has no message of run at seq or later yet. */
static bool wait_fresh(const struct journal_wait *w, uint64_t run, uint64_t seq)
{
	const struct journal_mark *k = mark_find(w->seen, w->n_seen, run);
	return !k || seq > k->seq;
}

bool journal_skip(const struct engine *e, const struct session *s)
{
	const struct journal *j = e->jr;
	return !s->jwait || s->jwait->job != j->cur_job ||
	       !wait_fresh(s->jwait, j->cur_run, j->cur_seq);
}

/* The session of w has run's message seq. */
static void wait_seen(struct journal_wait *w, uint64_t run, uint64_t seq)
{
	struct journal_mark *k = mark_find(w->seen, w->n_seen, run);
	if (!k) {
		struct journal_mark *n = realloc(w->seen, (w->n_seen + 1) * sizeof *n);
		if (!n)
			return;
		w->seen = n;
		k = &w->seen[w->n_seen++];
		k->run = run;
		k->seq = 0;
	}
	if (seq > k->seq)
		k->seq = seq;
}

bool journal_divert(struct engine *e, struct session *s, struct emsg *m, const struct delivery *d)
{
	struct journal *j = e->jr;
	struct journal_wait *w = s->jwait;
	if (j->cur_job) { /* from the replay: it goes now */
		wait_seen(w, j->cur_run, j->cur_seq);
		return false;
	}
	uint32_t max = e->cfg.max_queued_messages ? e->cfg.max_queued_messages : ENGINE_MAX_QUEUED;
	if (w->n_held >= max) {
		event_drop(e, s, m, d->qos, MIDGE_DROP_QUEUE_FULL, "waiting for the journal's replay");
		return true;
	}
	if (w->n_held == w->cap_held) {
		uint32_t cap = w->cap_held ? w->cap_held * 2 : 16;
		struct journal_held *n = realloc(w->held, cap * sizeof *n);
		if (!n) {
			event_drop(e, s, m, d->qos, MIDGE_DROP_QUEUE_FULL, "out of memory");
			return true;
		}
		w->held = n;
		w->cap_held = cap;
	}
	struct journal_held *h = &w->held[w->n_held++];
	h->m = emsg_ref(m);
	h->d = *d;
	h->run = j->cur_run;
	h->seq = j->cur_seq;
	return true;
}

/* Whether s has a subscription the journal replays (a queue group's
 * message is never replayed). */
static bool journal_wants(const struct session *s)
{
	for (const struct sub *x = s->subs; x; x = x->next)
		if (!(x->len > 7 && memcmp(x->filter, "$share/", 7) == 0))
			return true;
	return false;
}

void engine_cluster_resync(struct engine *e, uint64_t from_ms, uint64_t now_ms)
{
	e->now = now_ms;
	struct journal *j = e->jr;
	if (!j)
		return;
	mark_node(j, e->cluster.node_run, j->self_seq);
	for (uint32_t i = 0; i < e->table_size; i++)
		for (struct session *s = e->session_table[i]; s; s = s->hash_next)
			if (!s->jwait && journal_wants(s))
				journal_resume(e, s, from_ms, j->marks, j->n_marks);
}

void journal_marks(struct engine *e, const struct session *s, bool resume, struct journal_trailer *t)
{
	struct journal *j = e->jr;
	memset(t, 0, sizeof *t);
	if (!j)
		return;
	if (s->jwait) { /* still missing what its replay brings: from the same point */
		t->resume = true;
		t->from_ms = s->jwait->from_ms;
		t->marks = s->jwait->seen;
		t->n = s->jwait->n_seen;
		return;
	}
	t->resume = resume;
	t->from_ms = e->now;
	mark_node(j, e->cluster.node_run, j->self_seq);
	t->marks = j->marks;
	t->n = j->n_marks;
}

int journal_resume(struct engine *e, struct session *s, uint64_t from_ms,
		   const struct journal_mark *marks, uint32_t n)
{
	if (!e->jr || s->jwait)
		return 0;
	struct journal_wait *w = calloc(1, sizeof *w);
	if (!w || (n && !(w->seen = malloc(n * sizeof *w->seen)))) {
		free(w);
		return -1;
	}
	uint64_t job = e->cluster.replay(e->cluster.ctx, from_ms);
	if (!job) {
		free(w->seen);
		free(w);
		return 0;
	}
	if (n)
		memcpy(w->seen, marks, n * sizeof *w->seen);
	w->n_seen = n;
	w->s = s;
	w->job = job;
	w->from_ms = from_ms;
	w->since = e->now;
	w->next = e->jr->waits;
	e->jr->waits = w;
	s->jwait = w;
	return 0;
}

/* The session of w stops waiting: what waited goes, but for what the
 * replay gave already. */
static void wait_end(struct engine *e, struct journal_wait *w)
{
	struct session *s = w->s;
	s->jwait = NULL;
	for (uint32_t i = 0; i < w->n_held; i++) {
		struct journal_held *h = &w->held[i];
		/* a queue group's message is never in the replay */
		if (h->d.shared || !h->seq || wait_fresh(w, h->run, h->seq))
			session_offer(e, s, h->m, &h->d);
		emsg_unref(h->m);
	}
	free(w->held);
	free(w->seen);
	free(w);
	move_touch(e, s);
}

int engine_cluster_replay(struct engine *e, uint64_t job, const struct engine_cluster_msg *v,
			  uint64_t now_ms)
{
	e->now = now_ms;
	struct journal *j = e->jr;
	if (!j || !v->seq)
		return -1;
	struct emsg *m = cluster_msg(e, v);
	if (!m)
		return -1;
	j->cur_job = job;
	j->cur_run = v->node_run;
	j->cur_seq = v->seq;
	uint32_t n = route_message(e, m, true); /* groups: never from the replay */
	j->cur_job = 0;
	emsg_unref(m);
	return (int)n;
}

void engine_cluster_replay_end(struct engine *e, uint64_t job, uint64_t now_ms)
{
	e->now = now_ms;
	if (!e->jr)
		return;
	for (struct journal_wait **p = &e->jr->waits; *p;) {
		struct journal_wait *w = *p;
		if (w->job == job) {
			*p = w->next;
			wait_end(e, w);
		} else {
			p = &w->next;
		}
	}
}

void journal_expire(struct engine *e)
{
	if (!e->jr)
		return;
	for (struct journal_wait **p = &e->jr->waits; *p;) {
		struct journal_wait *w = *p;
		if (e->now >= w->since + JOURNAL_WAIT_MAX_MS) {
			*p = w->next;
			wait_end(e, w);
		} else {
			p = &w->next;
		}
	}
}

void journal_forget(struct engine *e, struct session *s)
{
	struct journal_wait *w = s->jwait;
	if (!w)
		return;
	for (struct journal_wait **p = &e->jr->waits; *p; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			break;
		}
	}
	s->jwait = NULL;
	for (uint32_t i = 0; i < w->n_held; i++)
		emsg_unref(w->held[i].m);
	free(w->held);
	free(w->seen);
	free(w);
}

void journal_free(struct engine *e)
{
	if (!e->jr)
		return;
	while (e->jr->waits)
		journal_forget(e, e->jr->waits->s);
	free(e->jr->marks);
	free(e->jr);
	e->jr = NULL;
}
