/*
 * xport.h - the connection-layer interface: a stack of layers between a
 * connection (conn.c) and its socket: TCP (or a Unix socket) at the
 * bottom, then PROXY, TLS, WebSocket, each only where the listener has it
 * (TCP -> PROXY -> TLS -> WS). Modelled on Redis's ConnectionType
 * (src/connection.h), with layers that stack: each one reads and writes
 * through the one below.
 *
 * Every call gets the connection's socket, fd, which the layers pass
 * down and the bottom one uses. So a stateless layer is one shared object:
 * a plain TCP connection points at tcp_xport and allocates nothing.
 *
 * Results: bytes (> 0), 0 for end of stream (read only), or
 * XPORT_AGAIN (nothing now: wait for the socket), XPORT_FAIL (the
 * connection is broken: it goes now), XPORT_REFUSED (the peer broke the
 * layer's protocol, worth a log line) or XPORT_CLOSE (read only: the peer
 * ended the layer's stream in order, a WebSocket Close, or the layer
 * answered a request that ends the connection, a static file). After
 * XPORT_REFUSED and XPORT_CLOSE the connection ends as a close does: what
 * the layer queued in answer (a TLS alert, an HTTP error, a WebSocket
 * Close) is flushed, our side is shut, input is discarded a while. On all
 * three *why says why, a string that lives as long as the layer (which,
 * after XPORT_REFUSED and XPORT_CLOSE, is freed before the engine hears
 * of the end: the connection keeps only a fixed text for it).
 */
#ifndef MIDGE_TRANSPORT_XPORT_H
#define MIDGE_TRANSPORT_XPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define XPORT_AGAIN (-1)
#define XPORT_FAIL (-2)
#define XPORT_REFUSED (-3)
#define XPORT_CLOSE (-4)

/* At most this many iovecs per writev through the layers (IOV_MAX on
 * Linux and the BSDs). */
#define XPORT_IOV 1024

struct xport;

struct xport_ops {
	const char *name;
	/* Up to len bytes of this layer's stream into buf. */
	ssize_t (*read)(struct xport *x, int fd, uint8_t *buf, size_t len, const char **why);
	/* Takes what it can of iov[0..cnt): bytes taken, or an error. A
	 * buffering layer (TLS) takes everything and holds what the layer
	 * below refused (see queued, flush). */
	ssize_t (*writev)(struct xport *x, int fd, const struct iovec *iov, int cnt,
			  const char **why);
	/* Input this layer holds that the poller cannot see (TLS: records
	 * decrypted or read ahead): read again without waiting. */
	bool (*pending)(const struct xport *x);
	/* Output bytes held for the layers below. */
	size_t (*queued)(const struct xport *x);
	/* Pushes held output down: 1 when none is left in the stack, 0 when
	 * the socket is full (poll for writable, then call again), or an
	 * error. */
	int (*flush)(struct xport *x, int fd, const char **why);
	/* Ends our direction of the stream, top down (TLS close_notify, then
	 * TCP shutdown(SHUT_WR)): 1 done, 0 call again once writable, or an
	 * error. Reading stays possible. */
	int (*shutdown)(struct xport *x, int fd, const char **why);
	/* Frees this layer (not the ones below). NULL for shared layers. */
	void (*free)(struct xport *x);
};

struct xport {
	const struct xport_ops *ops;
	struct xport *below; /* NULL at the bottom */
};

/* The bottom layer: the socket itself. Shared by every connection. */
extern struct xport tcp_xport;

/* Frees every layer above the bottom one and returns the bottom: what a
 * lingering connection keeps to discard input. */
struct xport *xport_strip(struct xport *top);
/* Frees the whole stack. xport_free(NULL) does nothing. */
void xport_free(struct xport *top);

#endif
