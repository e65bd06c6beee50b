/*
 * conn_internal.h - what the rooms of a connection's engine half share;
 * not part of conn.h's contract:
 *
 *   conn.c         its lifetime: the phase lists, asking for the end,
 *                  output and conn_flush() (the one place that says
 *                  records to the I/O thread), the time bounds
 *   conn_input.c   what the I/O threads report: input framed for the
 *                  engine (the held CONNECT too), written, EOF, closed,
 *                  identities and PROXY peers (conn_drain())
 *   conn_accept.c  accept: the connection limits, the peer address, the
 *                  layer stack, the hand-off to an I/O thread
 *
 * All of it runs on the engine thread.
 */
#ifndef MIDGE_TRANSPORT_CONN_INTERNAL_H
#define MIDGE_TRANSPORT_CONN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transport/broker.h"
#include "transport/conn.h"

/* Why the engine half ended a connection (conn.tear_why): the text the
 * engine's disconnect event and log line get. */
enum conn_why {
	WHY_NONE,
	WHY_NO_CONNECT,
	WHY_OOM,
	WHY_AUTH_INPUT,
	WHY_PEER_CLOSED,
	/* the layer's own text is freed before the engine hears: this one
	 * is fixed, the log line has the detail */
	WHY_LAYER_REFUSED,
};

/* The I/O thread that owns c's socket half. */
static inline struct iothr *conn_io(const struct midge *m, const struct conn *c)
{
	return m->io[c->io_index];
}

/* Puts c on the list of connections whose news conn_flush() passes on;
 * on OOM it stays off (the next send or report marks it again). */
void conn_mark_dirty(struct midge *m, struct conn *c);
/* Takes c off the engine's phase lists; the links then go to the I/O
 * thread. */
void conn_leave_lists(struct midge *m, struct conn *c);
/* Ends c for why: torn down, or (close_now) closed at once whatever is
 * queued, a layer's answer flushed first. Said by the next flush. */
void conn_end(struct midge *m, struct conn *c, enum conn_why why, bool close_now);
/* The engine hears of c's end (once; from the top of the loop only: it
 * may publish a will). */
void conn_tell_engine(struct midge *m, struct conn *c, const char *why);
/* Bytes queued on c and not yet written. */
uint64_t conn_out_bytes(const struct conn *c);

/* conn_input.c: frames data[0..n) for c (c's own buffer, or an input
 * chunk when c has no partial packet); see there. */
void conn_frame(struct midge *m, struct conn *c, const uint8_t *data, size_t n);
/* c's CONNECT was accepted: it leaves the list of connections that must
 * send one within connect_timeout. */
void conn_leave_pre(struct midge *m, struct conn *c);

#endif
