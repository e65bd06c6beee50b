/*
 * hooks.h - where lifecycle events go: in-process callbacks (the
 * midge_on_* API) and the ZeroMQ publisher.
 *
 * hooks_emit() is called on the loop thread for every event the engine
 * emits. It calls the registered callbacks in registration order, then
 * renders the event (only if some ZeroMQ subscriber's prefix wants it) and
 * sends it without blocking: a full socket drops the event and counts it.
 * This is the only part of midge that includes <zmq.h>.
 */
#ifndef MIDGE_HOOKS_H
#define MIDGE_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "midge.h"

#define HOOKS_MAX_ENDPOINTS 8

struct hooks_config {
	const char *endpoints[HOOKS_MAX_ENDPOINTS]; /* zmq endpoints to bind; none = publisher off */
	int n_endpoints;
	int sndhwm;                 /* ZMQ_SNDHWM per socket (messages) */
	const char *node;           /* node name put in every event */
	const char *curve_secret;   /* Z85 server secret key, or NULL (no CurveZMQ) */
	const char *curve_public;   /* Z85 server public key, or NULL */
};

struct hooks;

struct hooks *hooks_new(void);
/* Closes the sockets and the ZeroMQ context. hooks_free(NULL) does nothing. */
void hooks_free(struct hooks *h);

/* Adds a callback for one event type. Returns 0 or -1. */
int hooks_on(struct hooks *h, enum midge_event_type type, midge_event_cb cb, void *user);

/* Binds the configured endpoints (replacing any bound before).
 * Returns 0, or -1 with a message in err[0..errlen). */
int hooks_zmq_start(struct hooks *h, const struct hooks_config *cfg, char *err, size_t errlen);

/* Dispatches one event: callbacks, then ZeroMQ. Never blocks. */
void hooks_emit(struct hooks *h, const struct midge_event *ev);

/*
 * The loop drives the publisher's sockets: hooks_fd(h, i) is socket i's
 * ZMQ_FD (i < hooks_endpoint_count(), else -1), to poll for readable.
 * It is edge-triggered: readable means "look", and any ZeroMQ call on
 * the socket may consume the signal. So call hooks_process() when a fd
 * is readable, and after each loop pass in which hooks_touched() says a
 * ZeroMQ call was made. hooks_process() reads subscription changes on
 * every socket until ZMQ_EVENTS says nothing is ready; the prefixes are
 * then current.
 */
int hooks_fd(const struct hooks *h, int i);
void hooks_process(struct hooks *h);
bool hooks_touched(const struct hooks *h);
/* Same as hooks_process(), for callers that poll on their own. */
void hooks_poll(struct hooks *h);

/* Events dropped because a socket was full (for $SYS and the log). */
uint64_t hooks_dropped(const struct hooks *h);
/* Events sent on ZeroMQ. */
uint64_t hooks_sent(const struct hooks *h);

#endif
