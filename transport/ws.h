/*
 * ws.h - MQTT over WebSocket (RFC 6455, MQTT 6.0): the WebSocket
 * connection layer (see xport.h) over TCP or TLS, and what a WebSocket
 * listener gives its connections.
 *
 * The layer reads the HTTP upgrade request (codec/http.h), answers 101
 * or an HTTP error, serves static files from http_dir, then unwraps
 * binary frames with wslay into the plain byte stream the MQTT framer
 * reads, and wraps output in binary frames. Self-contained: everything
 * it needs is given at creation; it touches no broker state.
 */
#ifndef MIDGE_TRANSPORT_WS_H
#define MIDGE_TRANSPORT_WS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "transport/config.h"

/* A WebSocket listener's settings, shared by its connections and
 * refcounted (a connection may outlive its listener). */
struct ws_conf {
	atomic_uint refs; /* connections drop theirs on I/O threads */
	char *path;           /* midge_websockets_path, NULL: any */
	char *http_dir;       /* NULL: no files */
	int dir_fd;           /* http_dir, open (-1 without) */
	uint32_t headers_max; /* websockets_headers_size: bytes of a request head */
};

/* From listener l; headers_max from websockets_headers_size. NULL with
 * the reason in err (http_dir is not a readable directory, OOM). */
struct ws_conf *ws_conf_new(const struct conf_listener *l, uint32_t headers_max, char *err,
			    size_t errlen);
struct ws_conf *ws_conf_ref(struct ws_conf *c);
/* ws_conf_unref(NULL) does nothing. */
void ws_conf_unref(struct ws_conf *c);

/*
 * The WebSocket layer over `below`. max_frame bounds a frame's and a
 * message's payload (the maximum packet size: larger ones are answered
 * with Close 1009). Returns NULL on OOM.
 */
struct xport;
struct rbuf_pool;
struct xport *ws_xport_new(struct ws_conf *conf, struct xport *below, struct rbuf_pool *pool,
			   uint64_t max_frame);

#endif
