/*
 * hooks.h - where lifecycle events go: in-process callbacks (the
 * midge_on_* API) and the ZeroMQ publisher.
 *
 * hooks_emit() is called on the engine thread for every event the engine
 * emits. It calls the registered callbacks there and then, in
 * registration order. Then, only when some ZeroMQ subscriber's prefix may
 * want the event (a bit the publisher thread keeps current), it puts a
 * record of the event into a bounded queue and returns: rendering and
 * sending happen on the publisher's own thread. A full queue drops the
 * event and counts it, as a full ZeroMQ socket does. This is the only part
 * of midge that includes <zmq.h>.
 */
#ifndef MIDGE_HOOKS_H
#define MIDGE_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "midge.h"

#define HOOKS_MAX_ENDPOINTS 8

/*
 * How the queue keeps the message of a message event past the call:
 * hold(msg) takes a reference, release(msg) gives it back; both are called
 * on the engine thread only (release when a later hooks_flush() or
 * hooks_emit() finds the record consumed). view(msg, v) is called on the
 * publisher's thread while the message is held: it fills v from the parts
 * of the message that never change (topic, payload, properties, origin,
 * qos, retain). Without a holder the message's bytes are copied into the
 * record.
 */
struct hooks_holder {
	void (*hold)(void *msg);
	void (*release)(void *msg);
	void (*view)(const void *msg, struct midge_message *v);
};

enum hooks_format {
	HOOKS_FORMAT_JSON = 0,    /* docs/events.md: name, JSON, payload frames */
	HOOKS_FORMAT_COMPACT = 1, /* message events as one binary frame (docs/events.md) */
};

struct hooks_config {
	const char *endpoints[HOOKS_MAX_ENDPOINTS]; /* zmq endpoints to bind; none = publisher off */
	int n_endpoints;
	int sndhwm;                 /* ZMQ_SNDHWM per socket (messages) */
	const char *node;           /* node name put in every event */
	const char *curve_secret;   /* Z85 server secret key, or NULL (no CurveZMQ) */
	const char *curve_public;   /* Z85 server public key, or NULL */
	enum hooks_format format;
	size_t queue_bytes;         /* the queue's bytes (and bound on held messages); 0 = default */
	size_t max_prefixes;        /* distinct prefixes per socket; 0 = default */
	struct hooks_holder holder; /* how message events' messages are held */
	int nice;                   /* the publisher thread's nice value, 0..19 (Linux) */
	/* Called on the publisher's thread when the event types some
	 * subscriber wants changed (hooks_types() tells the new ones): the
	 * engine thread wakes to pass them on. May be NULL. */
	void (*want_changed)(void *ctx);
	void *want_ctx;
};

struct hooks;

struct hooks *hooks_new(void);
/* Stops the publisher (hooks_zmq_stop) and frees everything.
 * hooks_free(NULL) does nothing. */
void hooks_free(struct hooks *h);

/* Adds a callback for one event type. Returns 0 or -1. */
int hooks_on(struct hooks *h, enum midge_event_type type, midge_event_cb cb, void *user);
/* The same, called only while bit `type` of *want is set: a consumer
 * that wants some types only now and then (an event stream open) keeps
 * *want current (engine thread) instead of filtering in its callback, so
 * hooks_types() can tell the engine not to build the rest. */
int hooks_on_want(struct hooks *h, enum midge_event_type type, midge_event_cb cb, void *user,
		  const uint32_t *want);
/* Bit t: some callback or some ZeroMQ subscriber (as far as the publisher
 * thread has told) may want events of type t now. Engine thread. */
uint32_t hooks_types(const struct hooks *h);

/* Binds the configured endpoints (replacing any bound before) and starts
 * the publisher's thread. Returns 0, or -1 with a message in
 * err[0..errlen). */
int hooks_zmq_start(struct hooks *h, const struct hooks_config *cfg, char *err, size_t errlen);
/* Lets the publisher send what is queued, stops its thread, gives back
 * what the queue held and closes the sockets. Events emitted afterwards
 * reach the callbacks only. */
void hooks_zmq_stop(struct hooks *h);
/* Ends the publisher's want_changed calls (before what they wake goes). */
void hooks_quiet(struct hooks *h);

/* Dispatches one event: callbacks, then (maybe) a record for the
 * publisher. msg is the engine's handle of a message event's message (for
 * the holder), or NULL. Never blocks. */
void hooks_emit(struct hooks *h, const struct midge_event *ev, void *msg);

/* Engine thread, once per loop pass: gives back what consumed records
 * held and wakes the publisher if records wait for it. */
void hooks_flush(struct hooks *h);

/* Hands each log line the publisher's thread produced (subscriptions
 * ignored over the bound) to cb, on the calling (engine) thread. */
void hooks_notes(struct hooks *h, void (*cb)(void *ctx, const char *line), void *ctx);

/* Events a socket wanted and did not get (queue full or a subscriber at
 * the high-water mark), for $SYS and the log. */
uint64_t hooks_dropped(const struct hooks *h);
/* Events sent on ZeroMQ. */
uint64_t hooks_sent(const struct hooks *h);

#endif
