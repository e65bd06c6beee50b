/*
 * glue.c - what the engine sees of the transport: the engine_io it calls
 * (send and close on a connection, events to hooks and the log) and the
 * auth decisions the transport answers (the password file).
 */
#include "codec/codec.h"
#include "engine/engine.h"
#include "hooks/hooks.h"
#include "midge.h"
#include "transport/broker.h"
#include "transport/conn.h"
#include "transport/latency.h"
#include "transport/passwd.h"

/* engine_io.send: the head is copied, the tail referenced (conn_send). */
static int io_send(void *ctx, void *handle, const uint8_t *head, size_t head_len,
		   struct frame *tail, bool droppable)
{
	(void)ctx;
	return handle ? conn_send(handle, head, head_len, tail, droppable) : -1;
}

/* engine_io.close: flush, shut, linger (conn_close). */
static void io_close(void *ctx, void *handle)
{
	(void)ctx;
	if (handle)
		conn_close(handle);
}

static void io_event(void *ctx, const struct midge_event *ev)
{
	struct midge *m = ctx;
	if (ev->type == MIDGE_EV_CONNECT)
		m->connects++;
	hooks_emit(m->hooks, ev);
	evlog_event(&m->conf, ev);
}

static int auth_connect(void *ctx, const struct midge_client *client,
			const struct midge_str *username, const struct midge_str *password)
{
	struct midge *m = ctx;
	if (!m->passwd)
		return 0;
	if (!username || !username->p)
		return m->conf.engine.allow_anonymous ? 0 : MQTT_RC_NOT_AUTHORIZED;
	uint64_t t0 = latency_now_us();
	int rc = passwd_check(m->passwd, username->p, username->len, password ? password->p : NULL,
			      password ? password->len : 0);
	latency_observe(&m->lat.auth, latency_now_us() - t0, 1);
	return rc == 0 ? 0 : MQTT_RC_BAD_USERNAME_OR_PASSWORD;
}

int glue_engine_start(struct midge *m)
{
	if (m->engine)
		return 0;
	struct engine_io io = {.ctx = m, .send = io_send, .close = io_close, .event = io_event};
	struct engine_auth auth = {.ctx = m, .connect = auth_connect, .acl = NULL};
	m->engine = engine_new(&m->conf.engine, &io, &auth);
	return m->engine ? 0 : -1;
}

