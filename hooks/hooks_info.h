/*
 * hooks_info.h - what the hooks module can tell about its publisher,
 * beyond hooks.h: the endpoints actually bound (a "tcp://127.0.0.1:*"
 * endpoint gets a port at bind time, which the daemon prints and tests
 * connect to), the subscription prefixes known, the counters
 * docs/events.md and the tests refer to, and the default endpoint.
 */
#ifndef MIDGE_HOOKS_INFO_H
#define MIDGE_HOOKS_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hooks/hooks.h"

/* ZMQ_SNDHWM used when hooks_config.sndhwm is 0 or negative. */
#define HOOKS_DEFAULT_SNDHWM 1000
/* The queue between the engine thread and the publisher's, in bytes. */
#define HOOKS_DEFAULT_QUEUE_BYTES (4u * 1024u * 1024u)
/* Distinct subscription prefixes per socket. */
#define HOOKS_DEFAULT_MAX_PREFIXES 1024

/* Number of bound sockets (0 when the publisher is off). */
int hooks_endpoint_count(const struct hooks *h);
/* The endpoint socket i is bound to, as ZeroMQ reports it (with the port
 * chosen for a "*" port); NULL when i is out of range. */
const char *hooks_endpoint(const struct hooks *h, int i);
/* Distinct subscription prefixes the publisher acts on, on socket i. */
size_t hooks_prefix_count(const struct hooks *h, int i);
/* The publisher's counters since hooks_new(), every publisher started
 * since included (any thread may read them). */
struct hooks_counts {
	uint64_t dropped;  /* events a socket wanted and did not get: queue full or HWM */
	uint64_t sent;     /* events sent (per socket) */
	uint64_t skipped;  /* events no socket wanted: not queued, or queued and
			    * matching nothing by the time the publisher read them */
	uint64_t rendered; /* events rendered (at most once per event) */
	uint64_t queued;   /* records the engine thread put into the queue */
	uint64_t ignored;  /* subscriptions over midge_hooks_max_prefixes */
};
struct hooks_counts hooks_counts(const struct hooks *h);
/* Waits (at most timeout_ms) until the publisher has read every record;
 * the counters then include them. Returns true when it has. For tests and
 * a clean shutdown. */
bool hooks_wait_idle(struct hooks *h, int timeout_ms);

/*
 * The default endpoint, "ipc://DIR/events", in out[0..outlen): DIR is
 * $XDG_RUNTIME_DIR/midge when XDG_RUNTIME_DIR is set, else /run/midge for
 * root, else /tmp/midge-UID. DIR is created (mode 0700) if missing; if
 * it exists it must be a directory (not a link) owned by the effective
 * user with no permission for group or others, else -1 with a message in
 * err: a directory others can open would hand them every event.
 */
int hooks_default_endpoint(char *out, size_t outlen, char *err, size_t errlen);

/* The ZeroMQ library loaded at run time (midge --version). */
void hooks_zmq_version(int *major, int *minor, int *patch);

#endif
