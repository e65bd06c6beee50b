/*
 * loop.c - the libuv loop: midge_run (set-up, run, take-down), the
 * one-second tick (engine deadlines, connection time bounds, $SYS), the
 * check phase that flushes output once per loop pass (and hands the event
 * publisher's thread its records), signals (SIGINT/SIGTERM stop, SIGHUP
 * reloads) and the graceful shutdown.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h> /* mallinfo2: memory_limit */
#endif

#include <uv.h>

#include "engine/engine.h"
#include "hooks/hooks.h"
#include "hooks/hooks_info.h"
#include "http/http.h"
#include "midge.h"
#include "transport/broker.h"

#include "bridge/bridge.h"
#include "transport/config.h"
#include "transport/conn.h"
#include "transport/iothr.h"
#include "transport/log.h"
#include "transport/security.h"
#include "transport/tls.h"
#include "transport/zauth.h"

#define SHUTDOWN_GRACE_MS 3000

uint64_t broker_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint32_t broker_rel_ms(const struct midge *m, uint64_t now)
{
	return (uint32_t)(now - m->started_ms);
}

/* An idle handle only makes the next poll not block. */
static void loop_on_busy(uv_idle_t *h)
{
	(void)h;
}

void broker_keep_busy(struct midge *m)
{
	uv_idle_start(&m->busy, loop_on_busy);
}

/* Whether an inline I/O thread has reads to do without the poller. */
static bool loop_io_pending(const struct midge *m)
{
	return m->n_io == 1 && m->io[0]->inline_mode && m->io[0]->pending.n > 0;
}

/*
 * The end of a loop pass: the connections' news goes to their I/O
 * threads, what those reported is handled (which makes more news: output
 * written lets the next batch go), until nothing moves, a few rounds at
 * most. An inline I/O thread does its work here; the store's writer
 * gets the pass's changes. Only from top-level
 * callbacks. Whatever is left keeps the loop from blocking in poll.
 */
static void loop_settle(struct midge *m)
{
	for (int rounds = 0; rounds < 16; rounds++) {
		conn_flush_dirty(m, true);
		int moved = iothr_kick_all(m);
		moved += conn_drain(m);
		if (!moved)
			break;
	}
	/* this pass's changes go to the store's writer (the acknowledgements
	 * that wait for them go out when it says they are durable) */
	persist_pass(m);
	/* Once per pass: the publisher's thread is woken for the pass's
	 * events, and what it has read is given back. */
	hooks_flush(m->hooks);
	glue_event_mask(m);
	if (m->n_dirty || loop_io_pending(m))
		uv_idle_start(&m->busy, loop_on_busy);
	else
		uv_idle_stop(&m->busy);
}

/* An I/O thread reported: handled now, settled in the check phase. */
static void loop_on_io_wake(uv_async_t *a)
{
	conn_drain(a->data);
}

/* The publisher's thread: its subscribers want other event types now.
 * The pass this wakes tells the engine (glue_event_mask) before it reads
 * anything more. */
static void loop_wake_for_events(void *ctx)
{
	struct midge *m = ctx;
	uv_async_send(&m->io_wake);
}

static void loop_on_check(uv_check_t *h)
{
	loop_settle(h->data);
}

static void loop_log_hooks_dropped(struct midge *m, uint64_t now)
{
	uint64_t every = (uint64_t)(m->conf.sys_interval ? m->conf.sys_interval : 10) * 1000u;
	if (now - m->last_hooks_check_ms < every)
		return;
	m->last_hooks_check_ms = now;
	uint64_t d = hooks_dropped(m->hooks);
	if (d == m->hooks_dropped_logged)
		return;
	log_warn("event publisher dropped %llu events (%llu in all): a subscriber or the "
		 "publisher's thread does not keep up (midge_hooks_hwm %d)",
		 (unsigned long long)(d - m->hooks_dropped_logged), (unsigned long long)d,
		 m->conf.hooks_hwm > 0 ? m->conf.hooks_hwm : HOOKS_DEFAULT_SNDHWM);
	m->hooks_dropped_logged = d;
}

static void loop_log_hooks_note(void *ctx, const char *line)
{
	(void)ctx;
	log_warn("%s", line);
}

/* The heap in use, in bytes: glibc's own count (what free() gives back
 * lowers it), else (another libc, or an allocator that replaces glibc's
 * and leaves its count at 0, as sanitizers do) the resident set. */
static uint64_t loop_memory_used(void)
{
	uint64_t used = 0;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
	struct mallinfo2 mi = mallinfo2();
	used = (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
#endif
	size_t rss = 0;
	if (!used && uv_resident_set_memory(&rss) == 0)
		used = rss;
	return used;
}

/* memory_limit, measured once a tick: past it the engine refuses
 * publishes until the heap is below it again. */
static void loop_check_memory(struct midge *m)
{
	if (!m->conf.memory_limit) {
		if (m->memory_full)
			engine_set_memory_full(m->engine, m->memory_full = false);
		return;
	}
	uint64_t used = loop_memory_used();
	bool full = used > m->conf.memory_limit;
	if (full != m->memory_full) {
		if (full)
			log_warn("memory_limit %llu reached (%llu bytes in use): publishes are refused",
				 (unsigned long long)m->conf.memory_limit, (unsigned long long)used);
		else
			log_notice("below memory_limit again (%llu bytes in use)", (unsigned long long)used);
		engine_set_memory_full(m->engine, full);
		m->memory_full = full;
	}
}

static void loop_on_tick(uv_timer_t *t)
{
	struct midge *m = t->data;
	uint64_t now = broker_now_ms();
	loop_check_memory(m);
	engine_tick(m->engine, now);
	conn_expire(m, now);
	zauth_tick(m);
	cluster_link_tick(m);
	if (m->hooks) {
		hooks_notes(m->hooks, loop_log_hooks_note, NULL);
		loop_log_hooks_dropped(m, now);
	}
	if (m->conf.sys_interval && !m->stopping &&
	    now - m->last_sys_ms >= (uint64_t)m->conf.sys_interval * 1000u)
		sys_publish(m, now);
	loop_settle(m);
}

static void loop_close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void loop_on_shutdown_grace(uv_timer_t *t)
{
	struct midge *m = t->data;
	iothr_teardown_all(m, "server shutting down");
	uv_stop(&m->loop);
}

static void loop_begin_stop(struct midge *m)
{
	if (m->stopping)
		return;
	m->stopping = true;
	notify_stopping(m);
	log_notice("shutting down: %d connection(s) to close", m->n_conns);
	listeners_close(m);
	iothr_linger_drop(m, true);
	engine_shutdown(m->engine, broker_now_ms());
	conn_flush_dirty(m, true);
	if (m->n_conns == 0)
		uv_stop(&m->loop);
	else
		uv_timer_start(&m->shutdown_grace, loop_on_shutdown_grace, SHUTDOWN_GRACE_MS, 0);
}

static void loop_on_async(uv_async_t *a)
{
	struct midge *m = a->data;
	if (atomic_load(&m->stop_requested))
		loop_begin_stop(m);
}

/* Two listener lines name the same socket: same address (none = all)
 * and port. */
static bool loop_same_listener(const struct conf_listener *a, const struct conf_listener *b)
{
	return a->port == b->port && ((!a->host && !b->host) || (a->host && b->host && strcmp(a->host, b->host) == 0));
}

/*
 * Which listener of the new configuration nc each running one is:
 * order[i] for m->conf.listeners[i], matched by address and port (NULL:
 * the file no longer has it). Listeners the file adds, removes or turns
 * TLS on or off need a restart: logged. Returns the number of listeners.
 */
static int loop_match_listeners(struct midge *m, const struct conf *nc,
				const struct conf_listener **order)
{
	bool used[CONF_MAX_LISTENERS] = {false};
	int n = m->conf.n_listeners;
	for (int i = 0; i < n; i++) {
		const struct conf_listener *old = &m->conf.listeners[i];
		order[i] = NULL;
		for (int j = 0; j < nc->n_listeners; j++)
			if (!used[j] && loop_same_listener(old, &nc->listeners[j])) {
				order[i] = &nc->listeners[j];
				used[j] = true;
				break;
			}
		/* midge's own localhost listener (no listener configured) stays */
		if (!order[i] && nc->n_listeners == 0 && m->conf.default_listener < 0)
			continue;
		if (!order[i])
			log_warn("reload: the listener on %s port %u is no longer configured: it stays "
				 "open until a restart%s",
				 old->host ? old->host : "all addresses", old->port,
				 nc->per_listener_settings ? ", refusing every client" : "");
		else if ((old->certfile != NULL) != (order[i]->certfile != NULL))
			log_warn("reload: the listener on port %u changes between TLS and plain TCP: "
				 "that needs a restart",
				 old->port);
	}
	for (int j = 0; j < nc->n_listeners; j++)
		if (!used[j])
			log_warn("reload: the new listener on %s port %u needs a restart",
				 nc->listeners[j].host ? nc->listeners[j].host : "all addresses",
				 nc->listeners[j].port);
	return n;
}

/* Warns when a reload drops a password_file or acl_file: the new file is
 * applied as written (as Mosquitto does), but not silently. */
static void loop_warn_dropped(const struct security_set *old, const struct security_set *nw,
			      int n)
{
	for (int i = 0; i <= n; i++) {
		uint16_t id = (uint16_t)i; /* 0: the broker-wide realm */
		const struct security *a = security_of(old, id), *b = security_of(nw, id);
		bool wanted = i == 0 ? !nw->per_listener : nw->per_listener;
		if (!a || !b || !wanted)
			continue;
		if (a->acl_file && !b->acl_file)
			log_warn("reload: acl_file %s removed%s: every client may now publish and receive "
				 "every topic",
				 a->acl_file, i ? " from a listener" : "");
		if (a->password_file && !b->password_file)
			log_warn("reload: password_file %s removed%s: %s", a->password_file,
				 i ? " from a listener" : "",
				 b->allow_anonymous ? "allow_anonymous true now lets every client in"
						    : "no client can connect (allow_anonymous false)");
	}
}

static bool loop_may_stay(void *ctx, const struct midge_client *cl)
{
	struct midge *m = ctx;
	/* a worker's decision stands until the client's next CONNECT */
	if (m->zauth)
		return security_admits(m->sec, cl);
	return security_may_stay(m->sec, cl);
}

/*
 * SIGHUP and POST /api/v1/reload: parse and check the whole file, load
 * every certificate, password file and acl_file it names (and the HTTP
 * server's credentials), and only then apply all of it; if anything fails
 * nothing changes and the log (and err) says why. Listeners are matched by
 * address and port; binding new ones needs a restart.
 */
int broker_reload(struct midge *m, char *err, size_t errlen)
{
	struct conf nc;
	struct tls_creds *fresh[CONF_MAX_LISTENERS * 4] = {0};
	const struct conf_listener *order[CONF_MAX_LISTENERS] = {0};
	struct security_set *sec = NULL;
	int nl = 0, i;
	if (!m->conf_path) {
		snprintf(err, errlen, "no configuration file to reload");
		return -1;
	}
	conf_init(&nc);
	if (conf_load(&nc, m->conf_path, NULL, NULL, err, errlen) < 0)
		goto fail;
	if (nc.n_listeners > 0 && !nc.allow_anonymous_set)
		nc.engine.allow_anonymous = false;
	nl = loop_match_listeners(m, &nc, order);
	/* every certificate first */
	i = 0;
	for (struct listener *l = m->listeners; l && i < CONF_MAX_LISTENERS * 4; l = l->next, i++) {
		const struct conf_listener *nl_conf = l->index < nl ? order[l->index] : NULL;
		if (!l->creds || !nl_conf || !(nl_conf->certfile || nl_conf->psk_hint))
			continue;
		char e[400];
		if (!(fresh[i] = tls_creds_new(nl_conf, nc.psk_file, e, sizeof(e)))) {
			snprintf(err, errlen, "listener on port %u: %s", l->port, e);
			goto fail;
		}
	}
	if (!(sec = security_load(&nc, order, nl, err, errlen)) ||
	    zauth_reload_check(m, &nc.zauth, sec, err, errlen) < 0 ||
	    http_reload(m, &nc.http, err, errlen) < 0)
		goto fail;
	/* nothing fails from here on */
	loop_warn_dropped(m->sec, sec, nl);
	security_free(m->sec);
	m->sec = sec;
	engine_set_acl(m->engine, security_has_acl(sec) || zauth_wants_acl(m));
	uint32_t dropped = engine_recheck(m->engine, loop_may_stay, m, broker_now_ms());
	if (dropped)
		log_notice("reload: %u client(s) no longer allowed by the new configuration: "
			   "disconnected",
			   dropped);
	i = 0;
	for (struct listener *l = m->listeners; l && i < CONF_MAX_LISTENERS * 4; l = l->next, i++) {
		const struct conf_listener *nl_conf = l->index < nl ? order[l->index] : NULL;
		if (fresh[i]) {
			tls_creds_unref(l->creds);
			l->creds = fresh[i];
		}
		if (nl_conf) {
			/* new connections take the new listener settings; an
			 * allocation failure keeps the old mount point */
			char *mp = nl_conf->mount_point ? strdup(nl_conf->mount_point) : NULL;
			if (mp || !nl_conf->mount_point) {
				free(l->mount_point);
				l->mount_point = mp;
			}
			l->max_connections = nl_conf->max_connections;
			l->versions = nl_conf->protocol_versions;
			l->username_as_clientid = nl_conf->use_username_as_clientid;
		}
	}
	struct engine_config cfg;
	glue_engine_config(&nc, &cfg);
	engine_reconfigure(m->engine, &cfg);
	persist_reload(m, &nc);
	cluster_link_reload(m, &nc);
	/* the bound listeners (the HTTP one too) stay as they were read; the
	 * rest moves over */
	/* before the copy: zauth_reload() swaps the bound endpoint's strings
	 * with m->conf's, and `old` must hold the ones it freed (after the
	 * copy, old and nc both held the bound ones: a double free at exit,
	 * a read of freed memory at the next reload) */
	zauth_reload(m, &nc.zauth);
	struct conf old = m->conf;
	conf_take_listeners(&nc, &old);
	conf_take_http_listener(&nc, &old);
	if (nc.bridges.n || old.bridges.n)
		log_notice("reload: bridges are read at start-up only: the running ones stay");
	conf_take_bridges(&nc, &old);
	m->conf = nc;
	conf_clear(&old);
	log_open(&m->conf);
	char desc[600];
	security_describe(m->sec, desc, sizeof desc);
	log_notice("configuration reloaded from %s: %s", m->conf_path, desc);
	return 0;
fail:
	for (i = 0; i < CONF_MAX_LISTENERS * 4; i++)
		tls_creds_unref(fresh[i]);
	security_free(sec);
	conf_clear(&nc);
	log_err("reload failed, nothing changed: %s", err);
	return -1;
}

static void loop_on_signal(uv_signal_t *s, int signum)
{
	struct midge *m = s->data;
	char err[512];
	if (signum == SIGHUP) {
		if (!m->conf_path) {
			log_notice("SIGHUP: no configuration file to reload");
		} else {
			notify_reloading(m);
			broker_reload(m, err, sizeof(err));
			notify_reloaded(m);
		}
	} else
		loop_begin_stop(m);
}

/* tcp:// without CurveZMQ hands every event to whoever can reach the
 * port: allowed (a firewall may stand in front) but said at start-up. */
static void loop_hooks_warn_plain(const struct hooks_config *hc)
{
	for (int i = 0; i < hc->n_endpoints; i++)
		if (!hc->curve_secret && strncmp(hc->endpoints[i], "tcp://", 6) == 0)
			log_warn("event publisher on %s without CurveZMQ: anyone who can reach it "
				 "reads every event (payloads, client ids, user names); set "
				 "midge_hooks_curve_secret_key, or use an ipc:// endpoint",
				 hc->endpoints[i]);
}

static int loop_hooks_start(struct midge *m)
{
	struct hooks_config hc = {0};
	char err[512] = "";
	char def[256];
	if (m->conf.hooks_off) {
		log_info("event publisher off (midge_hooks_endpoint none)");
		return 0;
	}
	if (m->conf.n_hooks_endpoints == 0) {
		/* A directory others can open stops start-up: fail closed. */
		if (hooks_default_endpoint(def, sizeof def, err, sizeof err) < 0) {
			log_err("event publisher: %s", err);
			return -1;
		}
		hc.endpoints[0] = def;
		hc.n_endpoints = 1;
	} else {
		for (int i = 0; i < m->conf.n_hooks_endpoints; i++)
			hc.endpoints[i] = m->conf.hooks_endpoints[i];
		hc.n_endpoints = m->conf.n_hooks_endpoints;
	}
	hc.sndhwm = m->conf.hooks_hwm;
	hc.node = m->conf.node_name;
	hc.curve_secret = m->conf.hooks_curve_secret;
	hc.curve_public = m->conf.hooks_curve_public;
	hc.format = m->conf.hooks_format;
	hc.queue_bytes = (size_t)m->conf.hooks_queue_bytes;
	hc.max_prefixes = m->conf.hooks_max_prefixes;
	hc.nice = m->conf.hooks_nice;
	/* The queue holds message events' messages instead of copying them;
	 * hold and release run on this thread (hooks_emit, hooks_flush),
	 * view on the publisher's. */
	hc.want_changed = loop_wake_for_events;
	hc.want_ctx = m;
	hc.holder.hold = engine_msg_hold;
	hc.holder.release = engine_msg_release;
	hc.holder.view = engine_msg_view;
	char node[256];
	if (!hc.node) {
		if (gethostname(node, sizeof(node)) != 0)
			snprintf(node, sizeof(node), "midge");
		node[sizeof(node) - 1] = '\0';
		hc.node = node;
	}
	if (hooks_zmq_start(m->hooks, &hc, err, sizeof(err)) < 0) {
		if (m->conf.n_hooks_endpoints == 0) {
			/* The default socket may be another broker's on this
			 * machine: events still reach the callbacks. */
			log_warn("event publisher not started on the default %s: %s", def, err);
			return 0;
		}
		log_err("event publisher: %s", err);
		return -1;
	}
	loop_hooks_warn_plain(&hc);
	/* what was bound, with the port a "*" endpoint got */
	for (int i = 0; i < hooks_endpoint_count(m->hooks); i++)
		log_notice("events published on %s%s", hooks_endpoint(m->hooks, i),
			   hc.curve_secret ? " (CurveZMQ)" : "");
	return 0;
}

/* Sets up the loop and every handle but the listeners. Returns 0 or -1. */
static int loop_init(struct midge *m)
{
	if (uv_loop_init(&m->loop) < 0)
		return -1;
	uv_async_init(&m->loop, &m->stop_async, loop_on_async);
	m->stop_async.data = m;
	uv_async_init(&m->loop, &m->io_wake, loop_on_io_wake);
	m->io_wake.data = m;
	m->loop_ready = true;
	uv_check_init(&m->loop, &m->flush_check);
	m->flush_check.data = m;
	uv_check_start(&m->flush_check, loop_on_check);
	uv_idle_init(&m->loop, &m->busy);
	uv_timer_t *timers[] = {&m->tick, &m->shutdown_grace, &m->accept_pause};
	for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
		uv_timer_init(&m->loop, timers[i]);
		timers[i]->data = m;
	}
	uv_signal_t *sigs[] = {&m->sig_int, &m->sig_term, &m->sig_hup};
	int nums[] = {SIGINT, SIGTERM, SIGHUP};
	for (int i = 0; i < 3; i++) {
		uv_signal_init(&m->loop, sigs[i]);
		sigs[i]->data = m;
		uv_signal_start(sigs[i], loop_on_signal, nums[i]);
	}
	return 0;
}

/* Closes every handle and runs the close callbacks, which free the
 * connections (and tell the engine). */
static void loop_take_down(struct midge *m)
{
	m->running = false;
	m->loop_ready = false;
	http_stop(m);
	listeners_close(m);
	/* before the async handle closes: no worker may wake it after */
	auth_stop(m);
	/* the sockets go first; their ends reach the engine before the
	 * loop's own handles close */
	conn_flush_dirty(m, true);
	if (m->io)
		iothr_stop(m);
	/* every connection is gone: nothing marks one dirty again */
	free(m->dirty);
	m->dirty = NULL;
	m->n_dirty = m->cap_dirty = 0;
	bridges_stop(m->bridges); /* DISCONNECT to each remote, sockets closed */
	persist_quiet(m); /* its uv_async_t closes with the rest */
	cluster_link_quiet(m); /* so does the cluster's */
	hooks_quiet(m->hooks); /* the publisher wakes io_wake no more */
	uv_walk(&m->loop, loop_close_walk, NULL);
	while (uv_run(&m->loop, UV_RUN_NOWAIT) != 0)
		;
	bridges_free(m->bridges);
	m->bridges = NULL;
	persist_stop(m); /* every session detached: the final commit */
	cluster_link_free(m);
	/* The last events (connections closed above) are queued: the
	 * publisher sends them, stops, and gives back what it held. */
	hooks_zmq_stop(m->hooks);
	uv_loop_close(&m->loop);
	m->stopping = false;
}

/* The security realms of the configuration, listeners numbered by their
 * place in it (replacing those in force). Returns 0 or -1 after logging
 * why (the realms in force stay). */
int broker_security_start(struct midge *m)
{
	const struct conf_listener *order[CONF_MAX_LISTENERS];
	char err[600];
	if (m->conf.per_listener_settings && m->conf.n_listeners == 0) {
		log_err("per_listener_settings true, but no listener is configured for the settings");
		return -1;
	}
	for (int i = 0; i < m->conf.n_listeners; i++)
		order[i] = &m->conf.listeners[i];
	struct security_set *sec = security_load(&m->conf, order, m->conf.n_listeners, err, sizeof err);
	if (!sec) {
		log_err("%s", err);
		return -1;
	}
	security_free(m->sec);
	m->sec = sec;
	if (m->engine)
		engine_set_acl(m->engine, security_has_acl(sec) || zauth_wants_acl(m));
	char desc[600];
	security_describe(m->sec, desc, sizeof desc);
	log_info("security: %s", desc);
	if (!m->sec->per_listener && !m->sec->global.allow_anonymous && !m->sec->global.passwd &&
	    !zauth_on(m))
		log_warn("allow_anonymous false and no password_file: every client will be refused");
	return 0;
}

/* The configured bridges in the engine, before the store restores their
 * queues. Returns 0 or -1 after logging why. */
static int loop_bridges_declare(struct midge *m)
{
	char err[600];
	if (!m->conf.bridges.n)
		return 0;
	m->bridges = bridges_new(&m->loop, m->engine, &m->conf.bridges, m->conf.engine.max_inflight,
				 m->conf.engine.max_packet_size, err, sizeof err);
	if (!m->bridges) {
		log_err("%s", err);
		return -1;
	}
	return 0;
}

/* The bridges connect (after the privileges dropped: their TLS files are
 * read as the broker's user). Returns 0 or -1 after logging why. */
static int loop_bridges_start(struct midge *m)
{
	char err[600];
	if (m->bridges && bridges_start(m->bridges, err, sizeof err) < 0) {
		log_err("%s", err);
		return -1;
	}
	return 0;
}

int midge_run(struct midge *m)
{
	int rc = -1;
	if (m->running)
		return -1;
	log_open(&m->conf);
	if (m->verbose)
		log_set_verbose(true);
	signal(SIGPIPE, SIG_IGN);
	if (broker_security_start(m) < 0)
		return -1;
	if (glue_engine_start(m) < 0) {
		log_err("out of memory");
		return -1;
	}
	struct engine_config cfg;
	glue_engine_config(&m->conf, &cfg);
	engine_reconfigure(m->engine, &cfg);
	engine_set_acl(m->engine, security_has_acl(m->sec) || zauth_wants_acl(m));
	if (loop_init(m) < 0)
		return -1;
	m->started_ms = broker_now_ms();
	if (iothr_start(m, m->conf.io_threads) < 0)
		goto out;
	if (auth_start(m) < 0) {
		log_err("password checks: cannot start the worker pool");
		goto out;
	}
	if (cluster_link_start(m) < 0 || loop_bridges_declare(m) < 0 || persist_start(m) < 0 || listeners_open(m) < 0 ||
	    loop_hooks_start(m) < 0 || http_start(m) < 0 || daemon_write_pid(m) < 0 ||
	    daemon_drop_privileges(m) < 0 || loop_bridges_start(m) < 0)
		goto out;
	m->running = true;
	log_notice("midge %s running", midge_version());
	notify_ready(m);
	uv_timer_start(&m->tick, loop_on_tick, 1000, 1000);
	if (m->conf.sys_interval)
		sys_publish(m, m->started_ms);
	if (atomic_load(&m->stop_requested))
		loop_begin_stop(m);
	uv_run(&m->loop, UV_RUN_DEFAULT);
	rc = 0;
	log_notice("midge stopped");
out:
	loop_take_down(m);
	if (m->conf.pid_file && rc == 0)
		unlink(m->conf.pid_file);
	return rc;
}
