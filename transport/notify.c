/*
 * notify.c - the sd_notify messages of the broker's life (see notify.h).
 * The one file that includes <systemd/sd-daemon.h>; without libsystemd
 * each function is empty, so a build for a system without systemd (or
 * with --without-libsystemd) behaves exactly as before.
 */
#include "transport/notify.h"

#include "transport/broker.h"

#ifdef HAVE_LIBSYSTEMD

#include <stdio.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "engine/engine.h"
#include "transport/log.h"

static uint64_t notify_clients(const struct midge *m)
{
	struct engine_stats st;
	if (!m->engine)
		return 0;
	engine_stats(m->engine, &st);
	return st.clients_connected;
}

/* Sends state (lines of the protocol, without STATUS) with a fresh
 * STATUS= line. Returns what sd_notify returned: > 0 sent, 0 nobody
 * listens, < 0 error. */
static int notify_send(struct midge *m, const char *state)
{
	m->notify.clients = notify_clients(m);
	return sd_notifyf(0, "%sSTATUS=%llu clients connected%s", state,
			  (unsigned long long)m->notify.clients, m->stopping ? ", stopping" : "");
}

/* Every period: the watchdog keepalive, and the status when the count of
 * clients changed. A loop that hangs sends neither, which is the point. */
static void notify_on_timer(uv_timer_t *t)
{
	struct midge *m = t->data;
	if (m->notify.watchdog)
		notify_send(m, "WATCHDOG=1\n");
	else if (notify_clients(m) != m->notify.clients)
		notify_send(m, "");
}

void notify_ready(struct midge *m)
{
	char state[64];
	uint64_t usec = 0;
	snprintf(state, sizeof(state), "READY=1\nMAINPID=%lu\n", (unsigned long)getpid());
	int rc = notify_send(m, state);
	if (rc <= 0) {
		if (rc < 0)
			log_warn("sd_notify: cannot tell the service manager we are ready (error %d)", rc);
		return;
	}
	m->notify.on = true;
	/* WATCHDOG_USEC (and WATCHDOG_PID, when set, naming us) */
	m->notify.watchdog = sd_watchdog_enabled(0, &usec) > 0 && usec > 0;
	m->notify.period_ms = 1000;
	if (m->notify.watchdog && usec / 2000 < m->notify.period_ms)
		m->notify.period_ms = usec / 2000 ? usec / 2000 : 1;
	uv_timer_init(&m->loop, &m->notify.timer);
	m->notify.timer.data = m;
	uv_timer_start(&m->notify.timer, notify_on_timer, m->notify.period_ms, m->notify.period_ms);
	/* It must never be what keeps the loop running at shutdown. */
	uv_unref((uv_handle_t *)&m->notify.timer);
	if (m->notify.watchdog)
		log_info("systemd watchdog: %llu ms, keepalive every %llu ms",
			 (unsigned long long)(usec / 1000), (unsigned long long)m->notify.period_ms);
}

void notify_reloading(struct midge *m)
{
	if (m->notify.on)
		notify_send(m, "RELOADING=1\n");
}

void notify_reloaded(struct midge *m)
{
	if (m->notify.on)
		notify_send(m, "READY=1\n");
}

void notify_stopping(struct midge *m)
{
	if (m->notify.on)
		notify_send(m, "STOPPING=1\n");
}

#else /* !HAVE_LIBSYSTEMD */

void notify_ready(struct midge *m)
{
}

void notify_reloading(struct midge *m)
{
}

void notify_reloaded(struct midge *m)
{
}

void notify_stopping(struct midge *m)
{
}

#endif
