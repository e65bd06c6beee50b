/*
 * persist.c - the store (store/) on the loop: opened before the
 * listeners (recovery included) with the replay logs declared first, its
 * batches handed over at the end of every loop pass, its completions
 * brought back through a uv_async_t (the writer thread never touches the
 * loop or the engine), a timer for commit delays and periodic commits,
 * log lines and store.status events for failures and recovery, the
 * $SYS/broker/midge/store/ topics, and the final commit at shutdown.
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "engine/engine.h"
#include "hooks/hooks.h"
#include "midge.h"
#include "store/store.h"
#include "transport/broker.h"
#include "transport/log.h"

struct persist {
	struct store *st;
	uv_async_t async;
	uv_timer_t timer;
	bool handles;          /* async and timer initialised */
	/* figures at the last $SYS / store.status, for rates */
	uint64_t last_ms, last_commits, last_messages, last_fsyncs, last_us, last_lost;
};

/* Writer thread: a commit finished (or failed). Only wakes the loop. */
static void persist_notify(void *arg)
{
	struct persist *p = arg;
	uv_async_send(&p->async);
}

/* A store.status event to the hooks and the log's consumers. */
static void persist_event(struct midge *m, const char *state, const char *why, uint64_t now)
{
	struct persist *p = m->persist;
	struct store_stats s;
	store_get_stats(p->st, &s);
	struct midge_event ev;
	memset(&ev, 0, sizeof ev);
	ev.type = MIDGE_EV_STORE;
	ev.time_ms = now;
	ev.u.store.state = state;
	ev.u.store.why = why;
	ev.u.store.commits = s.commits;
	ev.u.store.messages = s.messages;
	ev.u.store.fsyncs = s.fsyncs;
	ev.u.store.errors = s.errors;
	ev.u.store.db_bytes = s.db_bytes;
	uint64_t dc = s.commits - p->last_commits;
	double secs = p->last_ms && now > p->last_ms ? (double)(now - p->last_ms) / 1000.0 : 0;
	ev.u.store.commit_ms_avg = dc ? (double)(s.commit_us_total - p->last_us) / 1000.0 / (double)dc : 0;
	ev.u.store.commit_ms_max = (double)s.commit_us_max / 1000.0;
	ev.u.store.messages_per_commit = dc ? (double)(s.messages - p->last_messages) / (double)dc : 0;
	ev.u.store.fsyncs_per_second = secs > 0 ? (double)(s.fsyncs - p->last_fsyncs) / secs : 0;
	hooks_emit(m->hooks, &ev, NULL);
}

static void persist_on_timer(uv_timer_t *t);

/* Hands the batch over when due, and arms the timer for one that will be. */
void persist_pass(struct midge *m)
{
	struct persist *p = m->persist;
	if (!p || !p->st)
		return;
	uint64_t now = broker_now_ms();
	store_pass(p->st, now);
	uint64_t due = store_next_due(p->st, now);
	if (due != UINT64_MAX && p->handles && !uv_is_active((uv_handle_t *)&p->timer))
		uv_timer_start(&p->timer, persist_on_timer, due ? due : 1, 0);
}

static void persist_on_timer(uv_timer_t *t)
{
	struct midge *m = t->data;
	persist_pass(m);
}

static void persist_on_async(uv_async_t *a)
{
	struct midge *m = a->data;
	struct persist *p = m->persist;
	struct store_change chg;
	uint64_t now = broker_now_ms();
	store_completed(p->st, now, &chg);
	if (chg.changed && chg.failing) {
		log_err("persistence: %s cannot be written: %s; QoS 1/2 PUBLISH and new persistent "
			"sessions are refused, QoS 0 and accepted messages go on; retrying every second",
			store_path(p->st), chg.why);
		persist_event(m, "failing", chg.why, now);
	} else if (chg.changed) {
		log_notice("persistence: %s is written again; service resumed", store_path(p->st));
		persist_event(m, "recovered", NULL, now);
	}
}

/* Declares the replay logs to the engine (before recovery fills them). */
static int persist_histories(struct midge *m)
{
	for (int i = 0; i < m->conf.n_history; i++) {
		const struct conf_history *h = &m->conf.history[i];
		if (engine_history_add(m->engine, h->filter, h->max_messages, h->max_age_s) < 0) {
			log_err("midge_history %s: cannot keep this log", h->filter);
			return -1;
		}
	}
	return 0;
}

static void persist_config(const struct conf *c, const char *path, struct store_config *sc)
{
	memset(sc, 0, sizeof *sc);
	sc->path = path;
	sc->sync = c->persist_sync == CONF_PERSIST_PERIODIC ? STORE_SYNC_PERIODIC : STORE_SYNC_ACK;
	uint32_t period = c->persist_period_set ? c->persist_period : c->autosave_interval;
	if (c->autosave_on_changes && !c->persist_period_set)
		sc->period_changes = period ? period : 1;
	else
		sc->period_s = period;
	sc->commit_delay_ms = c->persist_commit_delay_ms;
	sc->move_damaged = c->persist_move_damaged;
	sc->quick_check = c->persist_quick_check;
}

int persist_start(struct midge *m)
{
	char path[4096], err[2048];
	if (persist_histories(m) < 0)
		return -1;
	if (!m->conf.persistence)
		return 0;
	if (conf_persist_path(&m->conf, path, sizeof path) < 0) {
		log_err("persistence_location and persistence_file make too long a path");
		return -1;
	}
	struct persist *p = calloc(1, sizeof *p);
	if (!p) {
		log_err("out of memory");
		return -1;
	}
	m->persist = p;
	uv_async_init(&m->loop, &p->async, persist_on_async);
	p->async.data = m;
	uv_timer_init(&m->loop, &p->timer);
	p->timer.data = m;
	p->handles = true;
	struct store_config sc;
	persist_config(&m->conf, path, &sc);
	if (m->conf.user && getuid() == 0) {
		/* privileges are dropped after the listeners are bound: the
		 * files must be the run-as user's by then */
		struct passwd *pw = getpwnam(m->conf.user);
		if (!pw) {
			log_err("user %s does not exist", m->conf.user);
			return -1;
		}
		sc.set_owner = true;
		sc.uid = pw->pw_uid;
		sc.gid = pw->pw_gid;
	}
	bool retry = false;
	p->st = store_open(&sc, m->engine, persist_notify, p, broker_now_ms(), &retry, err, sizeof err);
	if (!p->st && retry) {
		/* the damaged file is moved aside: a fresh engine, an empty store */
		log_err("persistence: %s", err);
		engine_free(m->engine);
		m->engine = NULL;
		if (glue_engine_start(m) < 0)
			return -1;
		engine_reconfigure(m->engine, &m->conf.engine);
		if (persist_histories(m) < 0)
			return -1;
		p->st = store_open(&sc, m->engine, persist_notify, p, broker_now_ms(), &retry, err,
				   sizeof err);
	}
	if (!p->st) {
		log_err("persistence: %s", err);
		return -1;
	}
	struct store_stats s;
	store_get_stats(p->st, &s);
	p->last_ms = broker_now_ms();
	log_notice("persistence: %s (%s%s): %llu sessions and %llu messages recovered in %llu ms",
		   path, sc.sync == STORE_SYNC_ACK ? "acknowledged = committed" : "periodic",
		   sc.sync == STORE_SYNC_ACK ? "" : (sc.period_changes ? ", by changes" : ""),
		   (unsigned long long)s.recovered_sessions, (unsigned long long)s.recovered_messages,
		   (unsigned long long)s.recovered_ms);
	if (sc.sync == STORE_SYNC_ACK && (m->conf.autosave_on_changes || m->conf.autosave_interval != 1800))
		log_info("persistence: autosave_interval / autosave_on_changes only apply with "
			 "'midge_persist_sync periodic'; every change is committed before it is "
			 "acknowledged");
	persist_event(m, "loaded", NULL, p->last_ms);
	return 0;
}

/* The loop is about to close its handles: the writer must not wake it any
 * more. The store stays open for what the teardown still reports. */
void persist_quiet(struct midge *m)
{
	struct persist *p = m->persist;
	if (p && p->st)
		store_quiet(p->st);
}

void persist_stop(struct midge *m)
{
	struct persist *p = m->persist;
	char err[1024];
	if (!p)
		return;
	if (p->st) {
		char path[4096];
		struct store_stats s;
		snprintf(path, sizeof path, "%s", store_path(p->st));
		store_get_stats(p->st, &s);
		if (store_close(p->st, broker_now_ms(), err, sizeof err) < 0)
			log_err("persistence: %s", err);
		else
			log_notice("persistence: %s closed: %llu commits, %llu changes, %llu rows "
				   "written (%llu message bodies), %llu cancelled before writing, "
				   "%llu fsyncs, %.3f ms per commit",
				   path, (unsigned long long)s.commits, (unsigned long long)s.changes,
				   (unsigned long long)s.ops, (unsigned long long)s.messages,
				   (unsigned long long)s.cancelled, (unsigned long long)s.fsyncs,
				   s.commits ? (double)s.commit_us_total / 1000.0 / (double)s.commits : 0.0);
	}
	p->st = NULL;
	free(p);
	m->persist = NULL;
}

/* The $SYS/broker/midge/store/ topics (slot: the first of sys.c's cache
 * slots given to them), then a store.status event with the same figures. */
void persist_sys(struct midge *m, uint64_t now, sys_put_fn put, int slot)
{
	struct persist *p = m->persist;
	if (!p || !p->st)
		return;
	struct store_stats s;
	store_get_stats(p->st, &s);
	uint64_t dc = s.commits - p->last_commits;
	double secs = p->last_ms && now > p->last_ms ? (double)(now - p->last_ms) / 1000.0 : 0;
	put(m, slot, "$SYS/broker/midge/store/state", "%s", s.failing ? "failing" : "ok");
	put(m, slot + 1, "$SYS/broker/midge/store/commits", "%llu", (unsigned long long)s.commits);
	put(m, slot + 2, "$SYS/broker/midge/store/errors", "%llu", (unsigned long long)s.errors);
	put(m, slot + 3, "$SYS/broker/midge/store/bytes", "%llu", (unsigned long long)s.db_bytes);
	put(m, slot + 4, "$SYS/broker/midge/store/commit/latency/avg", "%.3f",
	    dc ? (double)(s.commit_us_total - p->last_us) / 1000.0 / (double)dc : 0.0);
	put(m, slot + 5, "$SYS/broker/midge/store/commit/latency/max", "%.3f",
	    (double)s.commit_us_max / 1000.0);
	put(m, slot + 6, "$SYS/broker/midge/store/messages per commit", "%.2f",
	    dc ? (double)(s.messages - p->last_messages) / (double)dc : 0.0);
	put(m, slot + 7, "$SYS/broker/midge/store/fsyncs per second", "%.2f",
	    secs > 0 ? (double)(s.fsyncs - p->last_fsyncs) / secs : 0.0);
	put(m, slot + 8, "$SYS/broker/midge/store/messages written", "%llu",
	    (unsigned long long)s.messages);
	put(m, slot + 9, "$SYS/broker/midge/store/fsyncs", "%llu", (unsigned long long)s.fsyncs);
	persist_event(m, s.failing ? "failing" : "ok", NULL, now);
	if (s.lost > p->last_lost)
		log_err("persistence: %llu changes could not be recorded (out of memory): the "
			"database may not hold everything acknowledged since",
			(unsigned long long)(s.lost - p->last_lost));
	p->last_lost = s.lost;
	p->last_ms = now;
	p->last_commits = s.commits;
	p->last_messages = s.messages;
	p->last_fsyncs = s.fsyncs;
	p->last_us = s.commit_us_total;
	store_stats_reset_max(p->st);
}

static bool persist_str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* SIGHUP: persistence and the replay logs are set up at start-up only.
 * When the new file changes them, say so; the running settings stay in
 * nc (the strings and logs swap, so each conf frees its own). */
void persist_reload(struct midge *m, struct conf *nc)
{
	struct conf *c = &m->conf;
	bool same = nc->persistence == c->persistence &&
		    persist_str_eq(nc->persistence_location, c->persistence_location) &&
		    persist_str_eq(nc->persistence_file, c->persistence_file) &&
		    nc->autosave_interval == c->autosave_interval &&
		    nc->autosave_on_changes == c->autosave_on_changes &&
		    nc->persist_sync == c->persist_sync && nc->persist_period == c->persist_period &&
		    nc->persist_period_set == c->persist_period_set &&
		    nc->persist_commit_delay_ms == c->persist_commit_delay_ms &&
		    nc->persist_move_damaged == c->persist_move_damaged &&
		    nc->persist_quick_check == c->persist_quick_check && nc->n_history == c->n_history;
	for (int i = 0; same && i < nc->n_history; i++)
		same = persist_str_eq(nc->history[i].filter, c->history[i].filter) &&
		       nc->history[i].max_messages == c->history[i].max_messages &&
		       nc->history[i].max_age_s == c->history[i].max_age_s;
	if (!same)
		log_warn("reload: persistence keys and midge_history need a restart; the running "
			 "settings stay");
	nc->persistence = c->persistence;
	char *t = nc->persistence_location;
	nc->persistence_location = c->persistence_location;
	c->persistence_location = t;
	t = nc->persistence_file;
	nc->persistence_file = c->persistence_file;
	c->persistence_file = t;
	nc->autosave_interval = c->autosave_interval;
	nc->autosave_on_changes = c->autosave_on_changes;
	nc->persist_sync = c->persist_sync;
	nc->persist_period = c->persist_period;
	nc->persist_period_set = c->persist_period_set;
	nc->persist_commit_delay_ms = c->persist_commit_delay_ms;
	nc->persist_move_damaged = c->persist_move_damaged;
	nc->persist_quick_check = c->persist_quick_check;
	struct conf_history tmp[CONF_MAX_HISTORY];
	int n = nc->n_history;
	memcpy(tmp, nc->history, sizeof tmp);
	memcpy(nc->history, c->history, sizeof tmp);
	nc->n_history = c->n_history;
	memcpy(c->history, tmp, sizeof tmp);
	c->n_history = n;
}
