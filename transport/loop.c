/*
 * loop.c - the libuv loop: midge_run (set-up, run, take-down), the
 * one-second tick (engine deadlines, connection time bounds, $SYS), the
 * check phase that flushes output once per loop pass, the ZeroMQ sockets
 * polled through their ZMQ_FD, signals (SIGINT/SIGTERM stop, SIGHUP
 * reloads) and the graceful shutdown.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "engine/engine.h"
#include "hooks/hooks.h"
#include "hooks/hooks_info.h"
#include "midge.h"
#include "transport/broker.h"
#include "transport/config.h"
#include "transport/conn.h"
#include "transport/log.h"
#include "transport/passwd.h"
#include "transport/tls.h"

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

/*
 * Output of the pass goes out, and connections that started lingering are
 * reported to the engine (which may publish wills, hence more output):
 * until neither is left, a few rounds at most. Only from top-level
 * callbacks. Whatever is left keeps the loop from blocking in poll.
 */
static void loop_settle(struct midge *m)
{
	int rounds = 0;
	do
		conn_flush_dirty(m, true);
	while (conn_lingering_notify(m) > 0 && rounds++ < 4);
	if (hooks_touched(m->hooks))
		hooks_process(m->hooks);
	if (m->dirty)
		uv_idle_start(&m->busy, loop_on_busy);
	else
		uv_idle_stop(&m->busy);
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
	log_warn("event publisher dropped %llu events (%llu in all): a subscriber does not keep up "
		 "(midge_hooks_hwm %d)",
		 (unsigned long long)(d - m->hooks_dropped_logged), (unsigned long long)d,
		 m->conf.hooks_hwm > 0 ? m->conf.hooks_hwm : HOOKS_DEFAULT_SNDHWM);
	m->hooks_dropped_logged = d;
}

static void loop_on_tick(uv_timer_t *t)
{
	struct midge *m = t->data;
	uint64_t now = broker_now_ms();
	engine_tick(m->engine, now);
	conn_expire(m, now);
	if (m->hooks) {
		hooks_process(m->hooks);
		loop_log_hooks_dropped(m, now);
	}
	if (m->conf.sys_interval && !m->stopping &&
	    now - m->last_sys_ms >= (uint64_t)m->conf.sys_interval * 1000u)
		sys_publish(m, now);
	loop_settle(m);
}

/* A ZeroMQ socket signalled: subscriptions changed, most likely. */
static void loop_on_hooks_fd(uv_poll_t *p, int status, int events)
{
	(void)status;
	(void)events;
	hooks_process(p->data);
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
	conn_teardown_all(m, "server shutting down");
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

/* New TLS credentials and limits for the listeners, from nc: all of them
 * or, if one fails to load, none. Returns 0 or -1 after logging why. */
static int loop_reload_listeners(struct midge *m, const struct conf *nc)
{
	char err[512];
	/* New TLS credentials first: if one fails nothing changes. */
	struct tls_creds *fresh[64] = {0};
	int i = 0;
	for (struct listener *l = m->listeners; l && i < 64; l = l->next, i++) {
		if (!l->creds || l->index >= nc->n_listeners)
			continue;
		fresh[i] = tls_creds_new(&nc->listeners[l->index], err, sizeof(err));
		if (!fresh[i]) {
			log_err("reload failed, keeping the running configuration: %s", err);
			for (int k = 0; k < i; k++)
				tls_creds_unref(fresh[k]);
			return -1;
		}
	}
	i = 0;
	for (struct listener *l = m->listeners; l && i < 64; l = l->next, i++) {
		if (fresh[i]) {
			tls_creds_unref(l->creds);
			l->creds = fresh[i];
		}
		if (l->index < nc->n_listeners)
			l->max_connections = nc->listeners[l->index].max_connections;
	}
	return 0;
}

static void loop_reload(struct midge *m)
{
	struct conf nc;
	char err[512];
	if (!m->conf_path) {
		log_notice("SIGHUP: no configuration file to reload");
		return;
	}
	conf_init(&nc);
	if (conf_load(&nc, m->conf_path, NULL, NULL, err, sizeof(err)) < 0) {
		log_err("reload failed, keeping the running configuration: %s", err);
		conf_clear(&nc);
		return;
	}
	if (nc.n_listeners > 0 && !nc.allow_anonymous_set)
		nc.engine.allow_anonymous = false;
	if (loop_reload_listeners(m, &nc) < 0) {
		conf_clear(&nc);
		return;
	}
	if (nc.password_file) {
		struct passwd_db *db = passwd_load(nc.password_file, err, sizeof(err));
		if (!db)
			log_err("password_file not reloaded: %s", err);
		else {
			passwd_free(m->passwd);
			m->passwd = db;
		}
	} else {
		passwd_free(m->passwd);
		m->passwd = NULL;
	}
	engine_reconfigure(m->engine, &nc.engine);
	/* Listeners stay as they are; the rest of the settings move over. */
	struct conf old = m->conf;
	conf_take_listeners(&nc, &old);
	m->conf = nc;
	conf_clear(&old);
	log_open(&m->conf);
	log_notice("configuration reloaded from %s (listener changes need a restart)", m->conf_path);
}

static void loop_on_signal(uv_signal_t *s, int signum)
{
	struct midge *m = s->data;
	if (signum == SIGHUP) {
		notify_reloading(m);
		loop_reload(m);
		notify_reloaded(m);
	} else
		loop_begin_stop(m);
}

/* Polls each ZeroMQ socket's ZMQ_FD for readable (see hooks.h). */
static int loop_hooks_poll(struct midge *m)
{
	int n = hooks_endpoint_count(m->hooks);
	for (int i = 0; i < n && i < HOOKS_MAX_ENDPOINTS; i++) {
		uv_poll_t *p = &m->hooks_polls[i];
		int fd = hooks_fd(m->hooks, i);
		if (fd < 0 || uv_poll_init(&m->loop, p, fd) < 0) {
			log_err("event publisher: cannot poll socket %d", i);
			return -1;
		}
		p->data = m->hooks;
		uv_poll_start(p, UV_READABLE, loop_on_hooks_fd);
		m->n_hooks_polls = i + 1;
	}
	/* Subscribers may have come before the fds were polled. */
	hooks_process(m->hooks);
	return 0;
}

static int loop_hooks_start(struct midge *m)
{
	struct hooks_config hc = {0};
	char err[256] = "";
	if (m->conf.hooks_off) {
		log_info("event publisher off (midge_hooks_endpoint none)");
		return 0;
	}
	if (m->conf.n_hooks_endpoints == 0) {
		hc.endpoints[0] = CONF_DEFAULT_HOOKS_ENDPOINT;
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
	char node[256];
	if (!hc.node) {
		if (gethostname(node, sizeof(node)) != 0)
			snprintf(node, sizeof(node), "midge");
		node[sizeof(node) - 1] = '\0';
		hc.node = node;
	}
	if (hooks_zmq_start(m->hooks, &hc, err, sizeof(err)) < 0) {
		if (m->conf.n_hooks_endpoints == 0) {
			/* The default endpoint may be taken by another broker on
			 * this machine: events still reach the callbacks. */
			log_warn("event publisher not started on the default %s: %s",
				 CONF_DEFAULT_HOOKS_ENDPOINT, err);
			return 0;
		}
		log_err("event publisher: %s", err);
		return -1;
	}
	/* what was bound, with the port a "*" endpoint got */
	for (int i = 0; i < hooks_endpoint_count(m->hooks); i++)
		log_notice("events published on %s%s", hooks_endpoint(m->hooks, i),
			   hc.curve_secret ? " (CurveZMQ)" : "");
	return loop_hooks_poll(m);
}


/* Sets up the loop and every handle but the listeners. Returns 0 or -1. */
static int loop_init(struct midge *m)
{
	if (uv_loop_init(&m->loop) < 0)
		return -1;
	uv_async_init(&m->loop, &m->stop_async, loop_on_async);
	m->stop_async.data = m;
	m->loop_ready = true;
	uv_check_init(&m->loop, &m->flush_check);
	m->flush_check.data = m;
	uv_check_start(&m->flush_check, loop_on_check);
	uv_idle_init(&m->loop, &m->busy);
	uv_timer_t *timers[] = {&m->tick, &m->shutdown_grace, &m->accept_pause, &m->linger_timer};
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
	listeners_close(m);
	conn_teardown_all(m, "server shutting down");
	uv_walk(&m->loop, loop_close_walk, NULL);
	while (uv_run(&m->loop, UV_RUN_NOWAIT) != 0)
		;
	uv_loop_close(&m->loop);
	m->n_hooks_polls = 0;
	m->stopping = false;
}

int midge_run(struct midge *m)
{
	int rc = -1;
	char err[512];
	if (m->running)
		return -1;
	log_open(&m->conf);
	if (m->verbose)
		log_set_verbose(true);
	signal(SIGPIPE, SIG_IGN);
	if (m->conf.password_file) {
		m->passwd = passwd_load(m->conf.password_file, err, sizeof(err));
		if (!m->passwd) {
			log_err("%s", err);
			return -1;
		}
	}
	if (glue_engine_start(m) < 0) {
		log_err("out of memory");
		return -1;
	}
	engine_reconfigure(m->engine, &m->conf.engine);
	if (loop_init(m) < 0)
		return -1;
	if (listeners_open(m) < 0 || loop_hooks_start(m) < 0 || daemon_write_pid(m) < 0 ||
	    daemon_drop_privileges(m) < 0)
		goto out;
	m->running = true;
	m->started_ms = broker_now_ms();
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
