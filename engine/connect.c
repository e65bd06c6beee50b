/*
 * connect.c - CONNECT as a sequence of named steps: negotiate (version,
 * v5 properties), identify (client id), authenticate (may be pending),
 * build the will, resume or take over the session, CONNACK and events;
 * and refusing a CONNECT in the client's version.
 */
#include "engine/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The one table from internal (v5) reason codes to 3.1 / 3.1.1 CONNACK
 * return codes; anything else is "server unavailable". */
static const struct {
	uint8_t rc5;
	uint8_t rc3;
} connack_v3_map[] = {
	{MQTT_RC_SUCCESS, MQTT_CONNACK_V3_ACCEPTED},
	{MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION, MQTT_CONNACK_V3_BAD_PROTOCOL},
	{MQTT_RC_CLIENT_ID_NOT_VALID, MQTT_CONNACK_V3_ID_REJECTED},
	{MQTT_RC_BAD_USERNAME_OR_PASSWORD, MQTT_CONNACK_V3_BAD_CREDENTIALS},
	{MQTT_RC_BAD_AUTH_METHOD, MQTT_CONNACK_V3_BAD_CREDENTIALS},
	{MQTT_RC_NOT_AUTHORIZED, MQTT_CONNACK_V3_NOT_AUTHORIZED},
	{MQTT_RC_BANNED, MQTT_CONNACK_V3_NOT_AUTHORIZED},
	{MQTT_RC_QOS_NOT_SUPPORTED, MQTT_CONNACK_V3_NOT_AUTHORIZED},
	{MQTT_RC_RETAIN_NOT_SUPPORTED, MQTT_CONNACK_V3_NOT_AUTHORIZED},
	{MQTT_RC_TOPIC_NAME_INVALID, MQTT_CONNACK_V3_NOT_AUTHORIZED},
	/* as Mosquitto answers a will over message_size_limit */
	{MQTT_RC_PACKET_TOO_LARGE, MQTT_CONNACK_V3_NOT_AUTHORIZED},
};

static uint8_t connack_code(uint8_t version, uint8_t rc5)
{
	if (version == CODEC_V5)
		return rc5;
	for (size_t i = 0; i < sizeof connack_v3_map / sizeof connack_v3_map[0]; i++)
		if (connack_v3_map[i].rc5 == rc5)
			return connack_v3_map[i].rc3;
	return MQTT_CONNACK_V3_SERVER_UNAVAILABLE;
}

static void connect_event_fields(struct midge_event *ev, const struct codec_connect *k)
{
	if (!k)
		return;
	ev->u.connect.clean_start = k->clean_start;
	ev->u.connect.keep_alive = k->keep_alive;
	ev->u.connect.has_will = k->will;
	if (CODEC_HAS_PROP(&k->props, CODEC_PROP_SESSION_EXPIRY))
		ev->u.connect.session_expiry = k->props.session_expiry;
}

/*
 * Refuses a CONNECT: CONNACK with the code in the client's version
 * [MQTT-3.2.2-4] [MQTT-3.2.2-5], event, close. k may be NULL when the
 * CONNECT did not decode. Returns -1.
 */
static int connect_refuse(struct engine *e, struct engine_conn *c, uint8_t version, uint8_t rc5,
			  const struct codec_connect *k, const char *why)
{
	struct codec_packet p;
	struct midge_event ev;
	struct midge_client cl = c->info;
	uint8_t code = connack_code(version, rc5);
	c->version = version;
	memset(&p, 0, sizeof p);
	p.type = CODEC_CONNACK;
	p.u.connack.rc = code;
	output_reason_string(c, &p.u.connack.props, CODEC_CONNACK, why);
	output_packet(e, c, &p, &p.u.connack.props);
	cl.protocol = version;
	if (k) {
		cl.client_id.p = (const char *)k->client_id.p;
		cl.client_id.len = k->client_id.len;
		if (!c->info.username.p && k->has_username) {
			cl.username.p = (const char *)k->username.p;
			cl.username.len = k->username.len;
		}
	}
	event_init(e, &ev, MIDGE_EV_CONNECT_REFUSED, &cl);
	connect_event_fields(&ev, k);
	ev.u.connect.rc = code;
	ev.u.connect.why = why;
	event_emit(e, &ev);
	client_request_close(e, c, rc5, false, why);
	/* the views pointed into the CONNECT being refused */
	memset(&c->info.client_id, 0, sizeof c->info.client_id);
	return -1;
}

/* An identifier for a client that sent none [MQTT-3.1.3-6]: not in use. */
static size_t client_id_assign(struct engine *e, char *buf, size_t cap)
{
	for (;;) {
		uint64_t x = (++e->ids_assigned + e->serial) * UINT64_C(0x9E3779B97F4A7C15) ^ e->now;
		x ^= x >> 29;
		int n = snprintf(buf, cap, "midge-%016llx", (unsigned long long)x);
		if (!session_find(e, (const uint8_t *)buf, (size_t)n))
			return (size_t)n;
	}
}

/* What the steps of one CONNECT decide, in order; held with the packet
 * while an authentication decision is pending. */
struct connect_plan {
	const struct codec_connect *k;
	uint8_t version;
	const uint8_t *cid; /* the client's identifier, or `assigned` */
	size_t cid_len;
	bool cid_assigned;
	char assigned[40];
	struct will *will;  /* owned until the session takes it */
	uint16_t keepalive;
	bool server_keepalive; /* v5: midge chose keepalive, CONNACK says so */
	uint32_t expiry;
	bool expiry_capped;
	struct session *s;
	bool present;   /* session present in CONNACK */
	bool discarded; /* an old session was discarded by a clean start */
	bool created;
	bool claimed; /* the cluster was asked for the client id (move.c) */
};

/* A CONNECT waiting for engine_conn_auth_done(): its body copied, decoded
 * again so the plan's views point into the copy. */
struct connect_held {
	struct codec_packet packet;
	struct connect_plan plan;
	uint32_t len;
	uint8_t body[];
};

/* A CONNECT that did not decode: answered in the version it claims
 * [MQTT-3.1.2-2]; a malformed 3.1.1 CONNECT just closes. */
static int connect_undecodable(struct engine *e, struct engine_conn *c,
			       const struct codec_packet *p, uint8_t rc)
{
	uint8_t v = p->version == CODEC_V5 ? CODEC_V5 : CODEC_V311;
	if (rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION)
		return connect_refuse(e, c, v, rc, NULL, "unsupported protocol name or level");
	if (v == CODEC_V5)
		return connect_refuse(e, c, v, rc, NULL, "malformed CONNECT");
	c->version = v;
	return client_fail(e, c, rc, "malformed CONNECT");
}

/* Step 1, negotiate: the version and what the client's v5 properties ask
 * of midge's output. */
static void connect_negotiate(struct engine_conn *c, const struct codec_connect *k)
{
	c->version = k->level;
	c->info.protocol = k->level;
	c->bridge = k->bridge;
	c->problem_info = true;
	c->client_receive_max = 65535;
	if (k->level != CODEC_V5)
		return;
	if (CODEC_HAS_PROP(&k->props, CODEC_PROP_REQUEST_PROBLEM_INFO))
		c->problem_info = k->props.request_problem_info != 0;
	if (CODEC_HAS_PROP(&k->props, CODEC_PROP_RECEIVE_MAX))
		c->client_receive_max = k->props.receive_max;
	if (CODEC_HAS_PROP(&k->props, CODEC_PROP_MAX_PACKET_SIZE))
		c->client_max_packet = k->props.max_packet_size;
	if (CODEC_HAS_PROP(&k->props, CODEC_PROP_TOPIC_ALIAS_MAX))
		alias_out_enable(c, k->props.topic_alias_max);
}

/* Step 2, identify: the username (unless a certificate set it) and the
 * client identifier, assigned when empty [MQTT-3.1.3-6]. Returns 0 or the
 * CONNACK reason code with *why. */
static uint8_t connect_identify(struct engine *e, struct engine_conn *c, struct connect_plan *pl,
				const char **why)
{
	const struct codec_connect *k = pl->k;
	const struct engine_config *cfg = &e->cfg;
	if (c->versions && !(c->versions & (1u << pl->version))) {
		/* accept_protocol_versions of the listener */
		*why = "protocol version not accepted on this listener";
		return MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION;
	}
	if (!c->info.username.p && k->has_username) {
		char *u = engine_dup_bytes(k->username.p, k->username.len);
		if (!u) {
			*why = "out of memory";
			return MQTT_RC_SERVER_UNAVAILABLE;
		}
		c->info.username.p = u; /* owned: freed with c */
		c->info.username.len = k->username.len;
	}
	pl->cid = k->client_id.p;
	pl->cid_len = k->client_id.len;
	if (c->username_as_clientid && !c->info.username.p) {
		/* use_username_as_clientid, as Mosquitto: no user name, no entry
		 * (the name replaces the id once authenticated: connect_finish) */
		*why = "use_username_as_clientid: no user name";
		return MQTT_RC_NOT_AUTHORIZED;
	}
	if (pl->cid_len == 0) {
		/* [MQTT-3.1.3-7] [MQTT-3.1.3-8] */
		bool may = pl->version == CODEC_V5 || (pl->version == CODEC_V311 && k->clean_start);
		if (!cfg->allow_zero_length_clientid || !may) {
			*why = "empty client identifier not allowed";
			return MQTT_RC_CLIENT_ID_NOT_VALID;
		}
		pl->cid_len = client_id_assign(e, pl->assigned, sizeof pl->assigned);
		pl->cid = (const uint8_t *)pl->assigned;
		pl->cid_assigned = true;
	} else if (cfg->max_client_id_len && pl->cid_len > cfg->max_client_id_len) {
		*why = "client identifier too long";
		return MQTT_RC_CLIENT_ID_NOT_VALID;
	}
	c->info.client_id.p = (const char *)pl->cid;
	c->info.client_id.len = pl->cid_len;
	return 0;
}

/* Step 3, authenticate: 0 to go on, a CONNACK reason code with *why, or
 * ENGINE_AUTH_PENDING when the auth callback answers later. */
static int connect_authenticate(struct engine *e, struct engine_conn *c,
				const struct connect_plan *pl, const char **why)
{
	const struct codec_connect *k = pl->k;
	if (pl->version == CODEC_V5 && CODEC_HAS_PROP(&k->props, CODEC_PROP_AUTH_DATA) &&
	    !CODEC_HAS_PROP(&k->props, CODEC_PROP_AUTH_METHOD)) {
		/* 3.1.2.11.10: data without a method is a protocol error */
		*why = "authentication data without an authentication method";
		return MQTT_RC_PROTOCOL_ERROR;
	}
	if (pl->version == CODEC_V5 && CODEC_HAS_PROP(&k->props, CODEC_PROP_AUTH_METHOD))
		return authx_connect(e, c, k, why); /* the method decides, not the password */
	if (!c->info.username.p && !e->cfg.allow_anonymous) {
		*why = "anonymous clients not allowed";
		return MQTT_RC_NOT_AUTHORIZED;
	}
	if (!e->has_auth || !e->auth.connect)
		return 0;
	struct midge_str user = c->info.username;
	struct midge_str pass = {(const char *)k->password.p, k->has_password ? k->password.len : 0};
	int verdict = e->auth.connect(e->auth.ctx, &c->info, &user, &pass);
	if (verdict == ENGINE_AUTH_PENDING)
		return verdict;
	*why = "refused by authentication";
	return verdict ? (verdict > 0 && verdict < 256 ? verdict : MQTT_RC_NOT_AUTHORIZED) : 0;
}

/* Step 5, the session's terms: keepalive (v5: capped by max_keepalive
 * [MQTT-3.2.2-21]) and session expiry (v5: capped by max_session_expiry;
 * 3.1.1: clean or persistent_client_expiration). */
static void connect_terms(const struct engine_config *cfg, struct connect_plan *pl)
{
	const struct codec_connect *k = pl->k;
	bool v5 = pl->version == CODEC_V5;
	pl->keepalive = k->keep_alive;
	if (v5 && cfg->max_keepalive && (pl->keepalive == 0 || pl->keepalive > cfg->max_keepalive)) {
		pl->keepalive = cfg->max_keepalive;
		pl->server_keepalive = true;
	}
	if (v5) {
		pl->expiry = CODEC_HAS_PROP(&k->props, CODEC_PROP_SESSION_EXPIRY) ? k->props.session_expiry
										 : 0;
		if (cfg->max_session_expiry && pl->expiry > cfg->max_session_expiry) {
			pl->expiry = cfg->max_session_expiry;
			pl->expiry_capped = true;
		}
	} else if (k->clean_start) {
		pl->expiry = 0;
	} else {
		pl->expiry = cfg->persistent_client_expiration ? cfg->persistent_client_expiration
							       : EXPIRY_NEVER;
	}
}

/* Step 6, resume or take over: an existing session of this client id is
 * taken over from its connection, then discarded (clean start, or it was
 * not persistent) or resumed; otherwise a new one. Returns 0 or -1 on OOM. */
static int connect_resume(struct engine *e, struct connect_plan *pl)
{
	const struct codec_connect *k = pl->k;
	struct session *s = session_find(e, pl->cid, pl->cid_len);
	if (s) {
		if (s->conn)
			session_take_over(e, s, k->clean_start);
		if (k->clean_start || s->expiry == 0) {
			will_publish(e, s);
			pl->discarded = k->clean_start;
			if (pl->discarded)
				event_session(e, MIDGE_EV_SESSION_DISCARDED, s, NULL, "clean start");
			route_share_out(e, s);
			session_destroy(e, s);
			s = NULL;
		} else {
			/* the session resumes in time: its pending will is not sent [MQTT-3.1.3-9] */
			will_clear(e, s);
			timer_cancel(e, &s->expiry_timer);
			pl->present = pl->version != CODEC_V31;
		}
	}
	pl->created = !s;
	if (!s)
		s = session_new(e, pl->cid, pl->cid_len);
	pl->s = s;
	return s ? 0 : -1;
}

/* Whether the CONNECT resumes a session the store keeps already. */
static bool connect_resumes(struct engine *e, const struct connect_plan *pl)
{
	const struct session *s = session_find(e, pl->cid, pl->cid_len);
	return s && s->store && !pl->k->clean_start;
}

/* Step 7, attach: the connection is up on its session with the will and
 * the terms decided. */
static void connect_attach(struct engine *e, struct engine_conn *c, struct connect_plan *pl)
{
	const struct engine_config *cfg = &e->cfg;
	struct session *s = pl->s;
	c->info.client_id.p = s->cid;
	s->conn = c;
	c->s = s;
	cluster_share_presence(e, s, true);
	s->version = pl->version;
	session_set_owner(s, &c->info);
	s->expiry = pl->expiry;
	c->expiry_zero = pl->expiry == 0;
	if (pl->will) {
		pl->will->m->origin = s->serial;
		pl->will->s = s;
		s->will = pl->will; /* ownership: the session holds the will now */
		pl->will = NULL;
		cluster_will(e, s);
	}
	c->state = CONN_UP;
	c->counted_connected = true;
	c->keepalive = pl->keepalive;
	c->receive_max = cfg->receive_max ? cfg->receive_max : 65535;
	c->in_alias_max = pl->version == CODEC_V5 ? cfg->topic_alias_max : 0;
	e->st.clients_connected++;
	if (e->st.clients_connected > e->st.clients_maximum)
		e->st.clients_maximum = e->st.clients_connected;
	if (pl->keepalive)
		timer_set(e, &c->keepalive_timer, e->now + (uint64_t)pl->keepalive * 1500);
	session_store_save(e, s);
}

/* Sets one v5 CONNACK property. */
#define CONNACK_PROP(pr, id, field, value)              \
	do {                                            \
		(pr)->present |= CODEC_PROP_BIT(id);    \
		(pr)->field = (value);                  \
	} while (0)

/* The v5 CONNACK properties: every limit that differs from the
 * protocol's default, and what midge decided for the client. */
static void connack_props(const struct engine *e, const struct engine_conn *c,
			  const struct connect_plan *pl, struct codec_props *pr)
{
	const struct engine_config *cfg = &e->cfg;
	if (c->receive_max != 65535)
		CONNACK_PROP(pr, CODEC_PROP_RECEIVE_MAX, receive_max, c->receive_max);
	if (cfg->max_qos < 2)
		CONNACK_PROP(pr, CODEC_PROP_MAX_QOS, max_qos, cfg->max_qos);
	if (!cfg->retain_available)
		CONNACK_PROP(pr, CODEC_PROP_RETAIN_AVAILABLE, retain_available, 0);
	if (cfg->max_packet_size && cfg->max_packet_size < ENGINE_PROTOCOL_MAX_PACKET)
		CONNACK_PROP(pr, CODEC_PROP_MAX_PACKET_SIZE, max_packet_size, cfg->max_packet_size);
	if (pl->cid_assigned) {
		pr->present |= CODEC_PROP_BIT(CODEC_PROP_ASSIGNED_CLIENT_ID);
		pr->assigned_client_id.p = (const uint8_t *)pl->s->cid;
		pr->assigned_client_id.len = (uint32_t)pl->cid_len;
	}
	if (c->in_alias_max)
		CONNACK_PROP(pr, CODEC_PROP_TOPIC_ALIAS_MAX, topic_alias_max, c->in_alias_max);
	if (!cfg->wildcard_sub_available)
		CONNACK_PROP(pr, CODEC_PROP_WILDCARD_SUB_AVAILABLE, wildcard_sub_available, 0);
	if (!cfg->sub_id_available)
		CONNACK_PROP(pr, CODEC_PROP_SUB_ID_AVAILABLE, sub_id_available, 0);
	if (!cfg->shared_sub_available)
		CONNACK_PROP(pr, CODEC_PROP_SHARED_SUB_AVAILABLE, shared_sub_available, 0);
	if (pl->server_keepalive)
		CONNACK_PROP(pr, CODEC_PROP_SERVER_KEEP_ALIVE, server_keep_alive, pl->keepalive);
	if (pl->expiry_capped)
		CONNACK_PROP(pr, CODEC_PROP_SESSION_EXPIRY, session_expiry, pl->expiry);
	authx_connack_props(c, pr);
}

/* Step 8, acknowledge: CONNACK, the session and connect events, then
 * what a resumed session still owes the client. */
static void connect_acknowledge(struct engine *e, struct engine_conn *c,
				const struct connect_plan *pl, uint64_t before)
{
	struct codec_packet ack;
	memset(&ack, 0, sizeof ack);
	ack.type = CODEC_CONNACK;
	ack.u.connack.session_present = pl->present; /* [MQTT-3.2.2-1] [MQTT-3.2.2-2] [MQTT-3.2.2-3] */
	if (pl->version == CODEC_V5)
		connack_props(e, c, pl, &ack.u.connack.props);
	/* A session created for the store, or a stored one discarded, is
	 * what session present will say after a crash: the CONNACK waits for
	 * the commit that holds it, as a SUBACK does. A resume waits only
	 * while the creation of its session is not durable yet (its new
	 * terms follow in the next commit; a failing store does not stop it);
	 * a clean session that replaced nothing stored never waits. */
	uint64_t ticket = 0;
	if (pl->created || pl->discarded)
		ticket = pl->s->saved_ticket = hold_ticket(e, before, false);
	else if (pl->s->saved_ticket > e->durable)
		ticket = pl->s->saved_ticket;
	if (ticket) {
		c->connack_held = true; /* until hold.c sends it: no delivery, no input */
		c->connack_resend = pl->present;
		hold_packet(e, c, ticket, &ack, NULL);
	} else {
		output_packet(e, c, &ack, NULL);
	}

	if (pl->created)
		event_session(e, MIDGE_EV_SESSION_CREATED, pl->s, &c->info,
			      pl->discarded ? "clean start" : NULL);
	else
		event_session(e, MIDGE_EV_SESSION_RESUMED, pl->s, &c->info, NULL);
	struct midge_event ev;
	event_init(e, &ev, MIDGE_EV_CONNECT, &c->info);
	connect_event_fields(&ev, pl->k);
	ev.u.connect.keep_alive = pl->keepalive;
	ev.u.connect.session_expiry = pl->expiry;
	ev.u.connect.session_present = pl->present;
	event_emit(e, &ev);
	if (pl->present && !c->connack_held)
		session_resend(e, pl->s);
}

/* The steps after authentication (step 4 builds the will). Returns 0, or
 * -1 when the CONNECT was refused. */
static int connect_finish(struct engine *e, struct engine_conn *c, struct connect_plan *pl)
{
	const char *why = NULL;
	if (c->username_as_clientid) {
		/* after authentication, as Mosquitto: clientid_prefixes and the
		 * auth module saw the id the client sent */
		pl->cid = (const uint8_t *)c->info.username.p;
		pl->cid_len = c->info.username.len;
		pl->cid_assigned = false;
		c->info.client_id.p = c->info.username.p;
		c->info.client_id.len = c->info.username.len;
	}
	uint8_t rc = will_build(e, c, pl->k, pl->cid, pl->cid_len, &pl->will, &why);
	if (rc)
		return connect_refuse(e, c, pl->version, rc, pl->k, why);
	if (e->cfg.max_sessions && e->table_count >= e->cfg.max_sessions &&
	    !session_find(e, pl->cid, pl->cid_len)) {
		will_free(pl->will);
		return connect_refuse(e, c, pl->version, MQTT_RC_QUOTA_EXCEEDED, pl->k,
				      "session limit reached (midge_max_sessions)");
	}
	connect_terms(&e->cfg, pl);
	if (c->auth_expiry_capped && pl->expiry > c->auth_expiry_max) {
		/* the auth module's cap; a v5 CONNACK says the value used (3.2.2.3.2) */
		pl->expiry = c->auth_expiry_max;
		pl->expiry_capped = pl->version == CODEC_V5;
	}
	if (e->store_failing && pl->expiry && !connect_resumes(e, pl)) {
		/* a session the store could not keep would be a promise broken */
		will_free(pl->will);
		return connect_refuse(e, c, pl->version, MQTT_RC_SERVER_UNAVAILABLE, pl->k,
				      e->store_failing);
	}
	uint64_t before = e->store_changes;
	if (connect_resume(e, pl) < 0) {
		will_free(pl->will);
		return connect_refuse(e, c, pl->version, MQTT_RC_SERVER_UNAVAILABLE, pl->k,
				      "out of memory");
	}
	connect_attach(e, c, pl);
	connect_acknowledge(e, c, pl, before);
	return 0;
}

/* The client id the session will have: the user name under
 * use_username_as_clientid (connect_finish makes the switch). */
static const uint8_t *connect_final_cid(const struct engine_conn *c, const struct connect_plan *pl,
					size_t *len)
{
	if (c->username_as_clientid) {
		*len = c->info.username.len;
		return (const uint8_t *)c->info.username.p;
	}
	*len = pl->cid_len;
	return pl->cid;
}

const uint8_t *connect_held_cid(const struct engine_conn *c, size_t *len)
{
	return c->held ? connect_final_cid(c, &c->held->plan, len) : NULL;
}

/* Whether the authenticated CONNECT waits for the cluster's claim of its
 * client id (asked once per CONNECT). */
static bool connect_claim(struct engine *e, struct engine_conn *c, struct connect_plan *pl)
{
	if (pl->claimed)
		return false;
	pl->claimed = true;
	size_t len;
	const uint8_t *cid = connect_final_cid(c, pl, &len);
	return move_claim(e, c, cid, len);
}

/*
 * Holds the CONNECT until engine_conn_auth_done(): its body is copied and
 * decoded again, so nothing points into the transport's buffer. Returns
 * ENGINE_CONN_HELD, or -1 when refused for want of memory.
 */
static int connect_hold(struct engine *e, struct engine_conn *c, const struct connect_plan *pl,
			const uint8_t *body, uint32_t len)
{
	struct connect_held *h = malloc(sizeof *h + len);
	if (!h) {
		/* the module started work for a CONNECT that is not held:
		 * it must forget it, as if the client had gone */
		if (e->auth.connect_cancel)
			e->auth.connect_cancel(e->auth.ctx, &c->info);
		return connect_refuse(e, c, pl->version, MQTT_RC_SERVER_UNAVAILABLE, pl->k,
				      "out of memory");
	}
	memcpy(h->body, body, len);
	/* the same bytes decode the same way: this cannot fail */
	memset(&h->packet, 0, sizeof h->packet);
	codec_decode(CODEC_CONNECT << 4, h->body, len, 0, &h->packet);
	h->len = len;
	h->plan = *pl;
	h->plan.k = &h->packet.u.connect;
	h->plan.cid = pl->cid_assigned ? (const uint8_t *)h->plan.assigned : h->plan.k->client_id.p;
	c->info.client_id.p = (const char *)h->plan.cid;
	c->held = h;
	c->state = CONN_AUTH_PENDING;
	return ENGINE_CONN_HELD;
}

/*
 * A CONNECT (the first packet; rc is codec_decode()'s result, body its
 * bytes): the steps in order. Returns 0 when accepted, ENGINE_CONN_HELD
 * while an authentication decision is pending, -1 when refused (the
 * connection is closing).
 */
int connect_handle(struct engine *e, struct engine_conn *c, const uint8_t *body, uint32_t len,
		   struct codec_packet *p, int rc)
{
	if (rc < 0)
		return connect_undecodable(e, c, p, (uint8_t)-rc);
	struct connect_plan pl;
	memset(&pl, 0, sizeof pl);
	pl.k = &p->u.connect;
	pl.version = pl.k->level;
	connect_negotiate(c, pl.k);
	const char *why = NULL;
	int verdict = connect_identify(e, c, &pl, &why);
	if (!verdict)
		verdict = connect_authenticate(e, c, &pl, &why);
	if (verdict == ENGINE_AUTH_PENDING)
		return connect_hold(e, c, &pl, body, len);
	if (verdict)
		return connect_refuse(e, c, pl.version, (uint8_t)verdict, pl.k, why);
	if (connect_claim(e, c, &pl))
		return connect_hold(e, c, &pl, body, len); /* until engine_cluster_claimed() */
	return connect_finish(e, c, &pl);
}

/*
 * Decides the held CONNECT of c: rc 0 goes on with the steps after
 * authentication, anything else refuses it with why (NULL: "refused by
 * authentication"). Returns 0 when accepted, -1 when refused or when c
 * holds no CONNECT.
 */
int connect_held_finish(struct engine *e, struct engine_conn *c, int rc, const char *why)
{
	if (c->state != CONN_AUTH_PENDING || !c->held)
		return -1;
	struct connect_held *h = c->held;
	if (!rc && connect_claim(e, c, &h->plan))
		return ENGINE_CONN_HELD; /* authenticated: now the cluster's claim */
	c->held = NULL;
	c->state = CONN_NEW;
	int r;
	if (rc)
		r = connect_refuse(e, c, h->plan.version,
				   rc > 0 && rc < 256 ? (uint8_t)rc : MQTT_RC_NOT_AUTHORIZED, h->plan.k,
				   why ? why : "refused by authentication");
	else
		r = connect_finish(e, c, &h->plan);
	free(h);
	return r;
}

int engine_conn_auth_done(struct engine *e, struct engine_conn *c, int rc, uint64_t now_ms)
{
	e->now = now_ms;
	if (c->ax) /* an enhanced exchange answers through engine_conn_auth_step() */
		return -1;
	return connect_held_finish(e, c, rc, NULL);
}

/* The socket of a connection whose decision is pending is gone: the auth
 * module forgets it (the held CONNECT is freed with the connection). */
void connect_held_cancel(struct engine *e, struct engine_conn *c)
{
	move_claim_cancel(e, c);
	if (c->held && e->has_auth && e->auth.connect_cancel)
		e->auth.connect_cancel(e->auth.ctx, &c->info);
}

/* Frees a held CONNECT, if any. */
void connect_held_free(struct engine_conn *c)
{
	free(c->held);
	c->held = NULL;
}
