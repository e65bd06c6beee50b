/*
 * glue.c - what the engine sees of the transport: the engine_io it calls
 * (send and close on a connection, events to hooks and the log) and the
 * auth decisions the transport answers: who may connect (auth.c, with the
 * realms of security.h: password file per listener or not, checked on the
 * worker pool) and what they may do (security.h: acl_file).
 */
#include "codec/codec.h"
#include "engine/engine.h"
#include "hooks/hooks.h"
#include "http/http.h"
#include "midge.h"
#include "transport/broker.h"
#include "transport/clientauth.h"
#include "transport/conn.h"
#include "transport/log.h"
#include "transport/security.h"
#include "transport/zauth.h"

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

/* engine_io.resume: the connection held too many acknowledgements for
 * the store and may be read again (conn_resume). */
static void io_resume(void *ctx, void *handle)
{
	if (handle)
		conn_resume(ctx, handle);
}

/* Hooks get the message's handle with the event, so the publisher's
 * queue can hold it instead of copying it. */
static void io_event(void *ctx, const struct midge_event *ev)
{
	struct midge *m = ctx;
	if (ev->type == MIDGE_EV_CONNECT)
		m->connects++;
	clientauth_on_event(m, ev);
	hooks_emit(m->hooks, ev, engine_event_msg(m->engine));
	zauth_event(m, ev);
	evlog_event(&m->conf, ev);
}

/* engine_io.sample: the HTTP server's busiest topics. */
static uint32_t io_sample(void *ctx, const uint8_t *topic, size_t len)
{
	return http_sample_topic(ctx, topic, len);
}

void glue_event_mask(struct midge *m)
{
	if (!m->engine)
		return;
	/* the log writes every message event at debug level */
	uint32_t types = log_enabled(CONF_LOG_DEBUG) ? ~0u : hooks_types(m->hooks);
	engine_set_event_mask(m->engine, types);
}

static int auth_acl(void *ctx, const struct midge_client *client, const uint8_t *topic, size_t len,
		    enum engine_access access, uint8_t qos, bool retain)
{
	struct midge *m = ctx;
	/* a client's own rules (a token's acl claim) before its realm's */
	int own = clientauth_acl(m, client, topic, len, access, qos, retain);
	if (own >= 0)
		return own;
	int rc;
	/* the client's rules from a worker, or its `acl` requests */
	if (zauth_acl(m, client, topic, len, access, qos, retain, &rc))
		return rc;
	/* acl_file has no QoS or retain in its grammar (Mosquitto's) */
	return m->sec ? security_acl(m->sec, client, topic, len, access) : MQTT_RC_NOT_AUTHORIZED;
}

void glue_engine_config(const struct conf *c, struct engine_config *out)
{
	*out = c->engine;
	/* the realms decide, per listener with per_listener_settings */
	out->allow_anonymous = true;
	out->auth_max_rounds = (uint16_t)c->zauth.max_rounds;
	out->auth_max_data = c->zauth.max_data;
	out->auth_exchange_ms = c->zauth.exchange_ms;
}

int glue_engine_start(struct midge *m)
{
	if (m->engine)
		return 0;
	struct engine_io io = {.ctx = m, .send = io_send, .close = io_close, .event = io_event,
			       .resume = io_resume, .sample = io_sample};
	struct engine_auth auth = {.ctx = m,
				   .connect = auth_connect,
				   .acl = auth_acl,
				   .connect_cancel = auth_connect_cancel,
				   .enhanced = auth_enhanced};
	struct engine_config cfg;
	glue_engine_config(&m->conf, &cfg);
	m->engine = engine_new(&cfg, &io, &auth);
	if (m->engine) /* a worker's answer may say "acl": "ask" (zauth_acl.c) */
		engine_set_acl_ask(m->engine, zauth_on(m));
	return m->engine ? 0 : -1;
}

