/*
 * hooks_info.h - what the hooks module can tell about its publisher,
 * beyond hooks.h: the endpoints actually bound (a "tcp://127.0.0.1:*"
 * endpoint gets a port at bind time, which the daemon prints and tests
 * connect to), the subscription prefixes known, and the render counters
 * docs/events.md and the tests refer to.
 */
#ifndef MIDGE_HOOKS_INFO_H
#define MIDGE_HOOKS_INFO_H

#include <stddef.h>
#include <stdint.h>

#include "hooks/hooks.h"

/* The endpoint used when midge_hooks_endpoint is not configured (the
 * transport's CONF_DEFAULT_HOOKS_ENDPOINT must agree). Loopback
 * only: exposing events beyond the host is an explicit decision (and
 * deserves CurveZMQ keys). */
#define HOOKS_DEFAULT_ENDPOINT "tcp://127.0.0.1:5883"
/* ZMQ_SNDHWM used when hooks_config.sndhwm is 0 or negative. */
#define HOOKS_DEFAULT_SNDHWM 1000

/* Number of bound sockets (0 when the publisher is off). */
int hooks_endpoint_count(const struct hooks *h);
/* The endpoint socket i is bound to, as ZeroMQ reports it (with the port
 * chosen for a "*" port); NULL when i is out of range. */
const char *hooks_endpoint(const struct hooks *h, int i);
/* Distinct subscription prefixes known on socket i (after hooks_poll). */
size_t hooks_prefix_count(const struct hooks *h, int i);
/* Events no socket had a matching subscriber for: not rendered, not sent. */
uint64_t hooks_skipped(const struct hooks *h);
/* Events rendered to JSON (at most once per event, whatever the sockets). */
uint64_t hooks_rendered(const struct hooks *h);

/* The ZeroMQ library loaded at run time (midge --version). */
void hooks_zmq_version(int *major, int *minor, int *patch);

#endif
