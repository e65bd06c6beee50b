/*
 * http.h - the HTTP server the transport starts: Prometheus metrics, the
 * REST admin API under /api/v1, Server-Sent Events and the dashboard
 * (docs/http.md is the contract).
 *
 * libmicrohttpd runs in external-poll mode, driven by the broker's libuv
 * loop: its epoll descriptor is polled with a uv_poll_t, its timeout is a
 * uv_timer_t, and every request is answered on the loop thread, which is
 * the engine thread. No thread of libmicrohttpd's exists, so every handler
 * may read and change engine state.
 */
#ifndef MIDGE_HTTP_H
#define MIDGE_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct midge;

/*
 * Starts the server when midge_http_listener is configured (else does
 * nothing and returns 0). Call on the loop thread once the loop is set
 * up. Returns 0, or -1 after logging why (a setting that cannot be
 * honoured stops start-up: fail closed).
 */
int http_start(struct midge *m);

/* Ends every request and stream and closes the handles (before the loop
 * closes). http_stop() on a stopped server does nothing. */
void http_stop(struct midge *m);

/* A reload: the password and token files and admins of cfg replace the
 * running ones (the listener stays). Returns 0 (also when the server is
 * off), or -1 with why in err and nothing changed. */
struct conf_http;
int http_reload(struct midge *m, const struct conf_http *cfg, char *err, size_t errlen);

/* engine_io.sample: one sampled published message's topic for the
 * busiest-topics table; returns the gap to the next sample (a long one
 * while the server is off). */
uint32_t http_sample_topic(struct midge *m, const uint8_t *topic, size_t len);

/* Frees what outlives http_stop() (the event counters). */
void http_free(struct midge *m);

#endif
