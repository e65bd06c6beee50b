/*
 * authx.c - MQTT 5 enhanced authentication [MQTT-4.12]: the exchange of
 * AUTH packets a CONNECT with an Authentication Method starts, and
 * re-authentication (AUTH 0x19) while connected.
 *
 * The engine only carries the bytes: engine_auth.enhanced (an auth
 * worker) decides each step and answers later through
 * engine_conn_auth_step(). One exchange at a time per connection, in two
 * phases: the module is asked (AUTHX_WORKER: a CONNECT stays held, as for
 * a password check), or the client's AUTH 0x18 is awaited (AUTHX_CLIENT:
 * before CONNACK only AUTH is read). Each exchange is bounded by
 * auth_max_rounds, auth_max_data and auth_exchange_ms (a timer).
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

enum authx_phase {
	AUTHX_IDLE = 0,   /* no exchange (connected, or deciding nothing) */
	AUTHX_WORKER = 1, /* engine_auth.enhanced answers later */
	AUTHX_CLIENT = 2, /* AUTH 0x18 sent: the client's turn */
};

/* A connection's enhanced authentication, out of line: most clients
 * have none. */
struct authx {
	struct timer_node t; /* T_AUTH: the exchange's deadline */
	struct engine_conn *c;
	uint8_t *final;      /* a success's Authentication Data, until the CONNACK went */
	uint32_t final_len;
	bool has_final;
	bool reauth;         /* the exchange is a re-authentication (connected) */
	bool cancelled;      /* connect_cancel told since the last step asked */
	uint8_t phase;       /* enum authx_phase */
	uint16_t rounds;     /* AUTH 0x18 sent in this exchange */
	uint16_t method_len;
	char method[];       /* the CONNECT's Authentication Method */
};

/* The reason codes a refusing DISCONNECT may carry (rc_disconnect in
 * codec/mqtt.rl) of those a module refuses with; others are 0x87. */
static uint8_t authx_disconnect_code(int rc)
{
	static const uint8_t ok[] = {0x80, 0x87, 0x89, 0x97, 0x9F};
	for (size_t i = 0; i < sizeof ok; i++)
		if (rc == ok[i])
			return ok[i];
	return MQTT_RC_NOT_AUTHORIZED;
}

bool authx_reads(const struct engine_conn *c)
{
	return c->ax && c->ax->phase == AUTHX_CLIENT;
}

void authx_connack_props(const struct engine_conn *c, struct codec_props *pr)
{
	const struct authx *ax = c->ax;
	if (!ax)
		return; /* [MQTT-4.12.0-6] no method in CONNECT, none in CONNACK */
	pr->present |= CODEC_PROP_BIT(CODEC_PROP_AUTH_METHOD); /* [MQTT-4.12.0-5] */
	pr->auth_method.p = (const uint8_t *)ax->method;
	pr->auth_method.len = ax->method_len;
	if (ax->has_final) {
		pr->present |= CODEC_PROP_BIT(CODEC_PROP_AUTH_DATA);
		pr->auth_data.p = ax->final;
		pr->auth_data.len = ax->final_len;
	}
}

/* Sends AUTH with rc (0x18 or 0x00), the method and data (may be NULL). */
static void authx_send(struct engine *e, struct engine_conn *c, uint8_t rc,
		       const struct midge_str *data)
{
	struct codec_packet p;
	memset(&p, 0, sizeof p);
	p.type = CODEC_AUTH;
	p.u.disconnect.rc = rc;
	authx_connack_props(c, &p.u.disconnect.props);
	if (data && data->p) {
		p.u.disconnect.props.present |= CODEC_PROP_BIT(CODEC_PROP_AUTH_DATA);
		p.u.disconnect.props.auth_data.p = (const uint8_t *)data->p;
		p.u.disconnect.props.auth_data.len = (uint32_t)data->len;
	}
	output_packet(e, c, &p, &p.u.disconnect.props);
}

/*
 * Ends the exchange with a refusal: CONNACK rc before the connection is
 * up [MQTT-4.12.0-4], DISCONNECT after a re-authentication
 * [MQTT-4.12.1-2]. Returns -1 (closing).
 */
static int authx_refuse(struct engine *e, struct engine_conn *c, int rc, const char *why)
{
	struct authx *ax = c->ax;
	timer_cancel(e, &ax->t);
	ax->phase = AUTHX_IDLE;
	if (c->state < CONN_UP)
		return connect_held_finish(e, c, rc, why);
	uint8_t code = authx_disconnect_code(rc);
	output_disconnect(e, c, code, why);
	client_request_close(e, c, code, false, why);
	return -1;
}

/*
 * Asks the module about one step. Returns 0 when it answers later (phase
 * AUTHX_WORKER), or the module's immediate answer: 0 or a reason code
 * (MQTT_RC_CONTINUE_AUTH is not one it may give at once: refused).
 */
static int authx_ask(struct engine *e, struct engine_conn *c, enum engine_auth_step step,
		     const struct codec_props *pr, const char **why)
{
	struct authx *ax = c->ax;
	struct midge_str method = {ax->method, ax->method_len};
	struct midge_str data = {NULL, 0};
	if (CODEC_HAS_PROP(pr, CODEC_PROP_AUTH_DATA)) {
		if (pr->auth_data.len > e->cfg.auth_max_data) {
			*why = "authentication data over midge_auth_max_data";
			return MQTT_RC_NOT_AUTHORIZED;
		}
		/* an empty value is still data: p must not be NULL */
		data.p = pr->auth_data.p ? (const char *)pr->auth_data.p : "";
		data.len = pr->auth_data.len;
	}
	ax->phase = AUTHX_WORKER;
	ax->cancelled = false;
	int rc = e->auth.enhanced(e->auth.ctx, &c->info, step, &method, &data);
	if (rc == ENGINE_AUTH_PENDING)
		return 0;
	ax->phase = AUTHX_IDLE;
	*why = "refused by authentication";
	if (rc == 0)
		return 0;
	return rc > 0 && rc < 256 && rc != MQTT_RC_CONTINUE_AUTH ? rc : MQTT_RC_NOT_AUTHORIZED;
}

/* Arms the exchange's deadline; -1 on OOM. */
static int authx_arm(struct engine *e, struct authx *ax)
{
	ax->rounds = 0;
	return timer_set(e, &ax->t, e->now + (e->cfg.auth_exchange_ms ? e->cfg.auth_exchange_ms
								   : 30000));
}

/*
 * A CONNECT with an Authentication Method (connect.c, step 3): keeps the
 * method and asks the module. Returns 0 (accepted at once),
 * ENGINE_AUTH_PENDING (the CONNECT is held), or a CONNACK reason code
 * with *why.
 */
int authx_connect(struct engine *e, struct engine_conn *c, const struct codec_connect *k,
		  const char **why)
{
	const struct codec_buf *m = &k->props.auth_method;
	if (!e->has_auth || !e->auth.enhanced) {
		/* [MQTT-4.12.0-1] a method nobody serves */
		*why = "no authentication method is configured";
		return MQTT_RC_BAD_AUTH_METHOD;
	}
	if (!c->ax) {
		struct authx *ax = calloc(1, sizeof *ax + m->len + 1);
		if (!ax) {
			*why = "out of memory";
			return MQTT_RC_SERVER_UNAVAILABLE;
		}
		ax->t.kind = T_AUTH;
		ax->c = c;
		if (m->len)
			memcpy(ax->method, m->p, m->len);
		ax->method_len = (uint16_t)m->len; /* a UTF-8 string: 65535 bytes at most */
		c->ax = ax;
	}
	c->version = CODEC_V5; /* the AUTH packets before CONNACK are v5's */
	if (authx_arm(e, c->ax) < 0) {
		*why = "out of memory";
		return MQTT_RC_SERVER_UNAVAILABLE;
	}
	int rc = authx_ask(e, c, ENGINE_AUTH_STEP_CONNECT, &k->props, why);
	if (rc == 0 && c->ax->phase == AUTHX_WORKER)
		return ENGINE_AUTH_PENDING;
	timer_cancel(e, &c->ax->t);
	return rc;
}

/* Whether AUTH props carry the exchange's method [MQTT-4.12.0-3]. */
static bool authx_same_method(const struct authx *ax, const struct codec_props *pr)
{
	return CODEC_HAS_PROP(pr, CODEC_PROP_AUTH_METHOD) && pr->auth_method.len == ax->method_len &&
	       memcmp(pr->auth_method.p, ax->method, ax->method_len) == 0;
}

/*
 * An AUTH from the client, in any state (dispatch.c; rc is
 * codec_decode()'s), or any packet while the client's AUTH is awaited
 * before CONNACK. Returns what engine_conn_frame() returns.
 */
int authx_packet(struct engine *e, struct engine_conn *c, struct codec_packet *p, int rc)
{
	struct authx *ax = c->ax;
	bool before = c->state < CONN_UP;
	const char *why = NULL;
	if (before && (rc < 0 || p->type != CODEC_AUTH))
		return authx_refuse(e, c, rc < 0 ? -rc : MQTT_RC_PROTOCOL_ERROR,
				    rc < 0 ? codec_rc_name((uint8_t)-rc)
					   : "a packet other than AUTH during authentication");
	if (!ax) /* [MQTT-4.12.0-7] */
		return client_fail(e, c, MQTT_RC_PROTOCOL_ERROR,
				   "AUTH without an authentication method");
	const struct codec_disconnect *a = &p->u.disconnect;
	if (!authx_same_method(ax, &a->props)) {
		why = "AUTH with another authentication method than CONNECT's";
		return before ? authx_refuse(e, c, MQTT_RC_PROTOCOL_ERROR, why)
			      : client_fail(e, c, MQTT_RC_PROTOCOL_ERROR, why);
	}
	enum engine_auth_step step;
	if (a->rc == MQTT_RC_CONTINUE_AUTH && ax->phase == AUTHX_CLIENT) {
		step = ENGINE_AUTH_STEP_CONTINUE;
	} else if (a->rc == MQTT_RC_REAUTHENTICATE && !before && ax->phase == AUTHX_IDLE) {
		/* [MQTT-4.12.1-1] a new exchange while the connection goes on */
		step = ENGINE_AUTH_STEP_REAUTH;
		ax->reauth = true;
		if (authx_arm(e, ax) < 0)
			return client_fail(e, c, MQTT_RC_UNSPECIFIED, "out of memory");
	} else {
		why = a->rc == MQTT_RC_SUCCESS ? "AUTH 0x00 from a client"
		      : ax->phase == AUTHX_WORKER ? "AUTH while the last one is being decided"
		      : a->rc == MQTT_RC_CONTINUE_AUTH ? "AUTH 0x18 outside an exchange"
						       : "AUTH 0x19 during an exchange";
		return before ? authx_refuse(e, c, MQTT_RC_PROTOCOL_ERROR, why)
			      : client_fail(e, c, MQTT_RC_PROTOCOL_ERROR, why);
	}
	int verdict = authx_ask(e, c, step, &a->props, &why);
	if (verdict == 0 && ax->phase == AUTHX_WORKER)
		return before ? ENGINE_CONN_HELD : 0; /* a connected client goes on meanwhile */
	if (verdict)
		return authx_refuse(e, c, verdict, why);
	/* accepted at once */
	timer_cancel(e, &ax->t);
	if (before)
		return connect_held_finish(e, c, 0, NULL);
	authx_send(e, c, MQTT_RC_SUCCESS, NULL);
	return 0;
}

int engine_conn_auth_step(struct engine *e, struct engine_conn *c, int rc,
			  const struct midge_str *data, uint64_t now_ms)
{
	e->now = now_ms;
	struct authx *ax = c->ax;
	if (!ax || ax->phase != AUTHX_WORKER || c->state == CONN_CLOSING)
		return -1;
	ax->phase = AUTHX_IDLE;
	if (data && !data->p)
		data = NULL;
	if (data && data->len > e->cfg.auth_max_data)
		return authx_refuse(e, c, MQTT_RC_NOT_AUTHORIZED,
				    "the method's authentication data over midge_auth_max_data");
	if (rc == MQTT_RC_CONTINUE_AUTH) {
		if (ax->rounds >= e->cfg.auth_max_rounds)
			return authx_refuse(e, c, MQTT_RC_NOT_AUTHORIZED,
					    "authentication over midge_auth_max_rounds");
		ax->rounds++;
		authx_send(e, c, MQTT_RC_CONTINUE_AUTH, data); /* [MQTT-4.12.0-2] */
		ax->phase = AUTHX_CLIENT;
		return 0;
	}
	if (rc)
		return authx_refuse(e, c, rc, NULL);
	timer_cancel(e, &ax->t);
	if (c->state == CONN_UP) {
		ax->reauth = false;
		authx_send(e, c, MQTT_RC_SUCCESS, data);
		return 0;
	}
	if (data) {
		ax->final = malloc(data->len ? data->len : 1);
		if (!ax->final)
			return authx_refuse(e, c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
		memcpy(ax->final, data->p, data->len);
		ax->final_len = (uint32_t)data->len;
		ax->has_final = true;
	}
	int r = connect_held_finish(e, c, 0, NULL);
	if (r == ENGINE_CONN_HELD)
		return r; /* the cluster claims the client id: the CONNACK comes later */
	/* the CONNACK that carried it is encoded (or held as bytes) */
	free(ax->final);
	ax->final = NULL;
	ax->has_final = false;
	return r;
}

/* The exchange took longer than auth_exchange_ms: refused as a failed
 * authentication, and the module's pending step forgotten. */
void authx_fire(struct engine *e, struct timer_node *t)
{
	struct authx *ax = container_of(t, struct authx, t);
	struct engine_conn *c = ax->c;
	if (c->state == CONN_CLOSING)
		return;
	if (ax->phase == AUTHX_WORKER && e->auth.connect_cancel) {
		e->auth.connect_cancel(e->auth.ctx, &c->info);
		ax->cancelled = true;
	}
	authx_refuse(e, c, MQTT_RC_NOT_AUTHORIZED, "authentication over midge_auth_exchange_ms");
}

/* The connection is gone: the module forgets the exchange, a pending
 * step or what it keeps between steps (the worker holding the method's
 * state), whatever the phase, unless it was told already (connect.c
 * tells it for a held CONNECT, authx_fire at the deadline). */
void authx_cancel(struct engine *e, struct engine_conn *c)
{
	struct authx *ax = c->ax;
	if (!ax)
		return;
	timer_cancel(e, &ax->t);
	if (!c->held && !ax->cancelled && e->auth.connect_cancel)
		e->auth.connect_cancel(e->auth.ctx, &c->info);
	ax->cancelled = true;
	ax->phase = AUTHX_IDLE;
}

void authx_free(struct engine *e, struct engine_conn *c)
{
	if (!c->ax)
		return;
	timer_cancel(e, &c->ax->t);
	free(c->ax->final);
	free(c->ax);
	c->ax = NULL;
}
