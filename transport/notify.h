/*
 * notify.h - telling the service manager what the broker is doing, through
 * systemd's sd_notify protocol: ready once the listeners are bound,
 * reloading around SIGHUP, stopping, a status line with the number of
 * connected clients, and the watchdog keepalive when the unit sets
 * WatchdogSec. Only loop.c calls it, from the loop thread.
 *
 * Nothing happens unless the broker was built with libsystemd
 * (HAVE_LIBSYSTEMD) and started with NOTIFY_SOCKET in its environment
 * (systemd sets it for Type=notify units); an embedding program run that
 * way is told the same things, which is what its unit asks for.
 */
#ifndef MIDGE_TRANSPORT_NOTIFY_H
#define MIDGE_TRANSPORT_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

struct midge;

/* Lives in struct midge; zeroed by midge_new(). */
struct notify {
	uv_timer_t timer;    /* status and watchdog, closed with the loop's handles */
	uint64_t clients;    /* the count in the last STATUS= sent */
	uint64_t period_ms;  /* of the timer: 1 s, or half the watchdog if shorter */
	bool on;             /* the manager listens: READY=1 reached it */
	bool watchdog;       /* WatchdogSec is set: WATCHDOG=1 every period */
};

/* Start-up is complete (listeners bound, privileges dropped): READY=1,
 * MAINPID, STATUS; starts the timer when the manager listens. */
void notify_ready(struct midge *m);
/* SIGHUP: RELOADING=1 before the configuration is read again ... */
void notify_reloading(struct midge *m);
/* ... and READY=1 after it, whether the new file was taken or refused. */
void notify_reloaded(struct midge *m);
/* The graceful shutdown began: STOPPING=1. */
void notify_stopping(struct midge *m);

#endif
