/*
 * glue.c - what the engine sees of the transport: the engine_io it calls
 * (send and close on a connection, events to hooks and the log), and the
 * authentication callbacks of auth.c.
 */
#include "codec/codec.h"
#include "engine/engine.h"
#include "hooks/hooks.h"
#include "midge.h"
#include "transport/broker.h"
#include "transport/conn.h"

/* engine_io.send: the head is copied, the tail referenced (conn_send). */
static int io_send(void *ctx, void *handle, const uint8_t *head, size_t head_len,
		   struct frame *tail, bool droppable)
{
	return handle ? conn_send(ctx, handle, head, head_len, tail, droppable) : -1;
}

/* engine_io.close: flush, shut, linger (conn_close). */
static void io_close(void *ctx, void *handle)
{
	if (handle)
		conn_close(ctx, handle);
}

/* Hooks get the message's handle with the event, so the publisher's
 * queue can hold it instead of copying it. */
static void io_event(void *ctx, const struct midge_event *ev)
{
	struct midge *m = ctx;
	hooks_emit(m->hooks, ev, engine_event_msg(m->engine));
	evlog_event(&m->conf, ev);
}

int glue_engine_start(struct midge *m)
{
	if (m->engine)
		return 0;
	struct engine_io io = {.ctx = m, .send = io_send, .close = io_close, .event = io_event};
	struct engine_auth auth = {
		.ctx = m, .connect = auth_connect, .acl = NULL, .connect_cancel = auth_connect_cancel};
	m->engine = engine_new(&m->conf.engine, &io, &auth);
	return m->engine ? 0 : -1;
}

