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

int connect_handle(struct engine *e, struct engine_conn *c, struct codec_packet *p, int rc)
{
	struct codec_connect *k = &p->u.connect;
	if (rc < 0) {
		uint8_t v = p->version == CODEC_V5 ? CODEC_V5 : CODEC_V311;
		if (-rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION) /* [MQTT-3.1.2-2] */
			return connect_refuse(e, c, v, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION, NULL,
					      "unsupported protocol name or level");
		if (v == CODEC_V5)
			return connect_refuse(e, c, v, (uint8_t)-rc, NULL, "malformed CONNECT");
		c->version = v;
		return client_fail(e, c, (uint8_t)-rc, "malformed CONNECT");
	}
	uint8_t v = k->level;
	const struct engine_config *cfg = &e->cfg;
	c->version = v;
	c->info.protocol = v;
	c->problem_info = true;
	c->client_receive_max = 65535;
	if (v == CODEC_V5) {
		if (CODEC_HAS_PROP(&k->props, CODEC_PROP_REQUEST_PROBLEM_INFO))
			c->problem_info = k->props.request_problem_info != 0;
		if (CODEC_HAS_PROP(&k->props, CODEC_PROP_RECEIVE_MAX))
			c->client_receive_max = k->props.receive_max;
		if (CODEC_HAS_PROP(&k->props, CODEC_PROP_MAX_PACKET_SIZE))
			c->client_max_packet = k->props.max_packet_size;
		if (CODEC_HAS_PROP(&k->props, CODEC_PROP_TOPIC_ALIAS_MAX) && k->props.topic_alias_max) {
			if (!c->aliases)
				c->aliases = calloc(1, sizeof *c->aliases);
			if (c->aliases && !c->aliases->out)
				c->aliases->out = calloc(OUT_ALIAS_CAP, sizeof *c->aliases->out);
			if (c->aliases && c->aliases->out)
				c->out_alias_max = k->props.topic_alias_max < OUT_ALIAS_CAP
							   ? k->props.topic_alias_max
							   : OUT_ALIAS_CAP;
		}
	}
	if (!c->info.username.p && k->has_username) {
		char *u = engine_dup_bytes(k->username.p, k->username.len);
		if (!u)
			return connect_refuse(e, c, v, MQTT_RC_SERVER_UNAVAILABLE, k, "out of memory");
		c->info.username.p = u; /* owned: freed with c */
		c->info.username.len = k->username.len;
	}

	char assigned[40];
	const uint8_t *cid = k->client_id.p;
	size_t cid_len = k->client_id.len;
	bool is_assigned = false;
	if (cid_len == 0) {
		/* [MQTT-3.1.3-7] [MQTT-3.1.3-8] */
		if (!cfg->allow_zero_length_clientid || !(v == CODEC_V5 || (v == CODEC_V311 && k->clean_start)))
			return connect_refuse(e, c, v, MQTT_RC_CLIENT_ID_NOT_VALID, k,
					      "empty client identifier not allowed");
		cid_len = client_id_assign(e, assigned, sizeof assigned);
		cid = (const uint8_t *)assigned;
		is_assigned = true;
	} else if (cfg->max_client_id_len && cid_len > cfg->max_client_id_len) {
		return connect_refuse(e, c, v, MQTT_RC_CLIENT_ID_NOT_VALID, k, "client identifier too long");
	}
	c->info.client_id.p = (const char *)cid;
	c->info.client_id.len = cid_len;

	if (v == CODEC_V5 && CODEC_HAS_PROP(&k->props, CODEC_PROP_AUTH_METHOD))
		return connect_refuse(e, c, v, MQTT_RC_BAD_AUTH_METHOD, k,
				      "no authentication method is configured");
	if (!c->info.username.p && !cfg->allow_anonymous)
		return connect_refuse(e, c, v, MQTT_RC_NOT_AUTHORIZED, k, "anonymous clients not allowed");
	if (e->has_auth && e->auth.connect) {
		struct midge_str user = c->info.username;
		struct midge_str pass = {(const char *)k->password.p, k->has_password ? k->password.len : 0};
		int arc = e->auth.connect(e->auth.ctx, &c->info, &user, &pass);
		if (arc)
			return connect_refuse(e, c, v, (uint8_t)arc, k, "refused by authentication");
	}

	struct emsg *will = NULL;
	struct will *wr = NULL;
	if (k->will) {
		if (cfg->message_size_limit && k->will_payload.len > cfg->message_size_limit)
			return connect_refuse(e, c, v, MQTT_RC_PACKET_TOO_LARGE, k,
					      "will payload over message_size_limit");
		if (k->will_qos > cfg->max_qos) /* [MQTT-3.2.2-12] */
			return connect_refuse(e, c, v, MQTT_RC_QOS_NOT_SUPPORTED, k, "will QoS not supported");
		if (k->will_retain && !cfg->retain_available) /* [MQTT-3.2.2-13] */
			return connect_refuse(e, c, v, MQTT_RC_RETAIN_NOT_SUPPORTED, k,
					      "retained will not supported");
		if (limits_topic_too_deep(e, k->will_topic.p, k->will_topic.len))
			return connect_refuse(e, c, v, MQTT_RC_TOPIC_NAME_INVALID, k,
					      "will topic has too many levels");
		if (!limits_acl_allows(e, &c->info, k->will_topic.p, k->will_topic.len, ENGINE_ACCESS_PUBLISH))
			return connect_refuse(e, c, v, MQTT_RC_NOT_AUTHORIZED, k, "will topic not authorized");
		bool v5 = v == CODEC_V5;
		will = emsg_new(e, k->will_topic.p, k->will_topic.len, k->will_payload.p,
				k->will_payload.len, v5 ? k->will_props.raw.p : NULL,
				v5 ? k->will_props.raw.len : 0, k->will_qos, k->will_retain, 0, cid, cid_len,
				true);
		if (!will)
			return connect_refuse(e, c, v, MQTT_RC_SERVER_UNAVAILABLE, k, "out of memory");
		wr = calloc(1, sizeof *wr);
		if (!wr) {
			emsg_unref(will);
			return connect_refuse(e, c, v, MQTT_RC_SERVER_UNAVAILABLE, k, "out of memory");
		}
		wr->m = will;
		wr->t.kind = T_WILL;
		if (v5 && CODEC_HAS_PROP(&k->will_props, CODEC_PROP_WILL_DELAY))
			wr->delay = k->will_props.will_delay;
	}

	uint16_t keepalive = k->keep_alive;
	bool server_ka = false;
	if (v == CODEC_V5 && cfg->max_keepalive && (keepalive == 0 || keepalive > cfg->max_keepalive)) {
		keepalive = cfg->max_keepalive; /* [MQTT-3.2.2-21] */
		server_ka = true;
	}
	uint32_t expiry;
	bool expiry_capped = false;
	if (v == CODEC_V5) {
		expiry = CODEC_HAS_PROP(&k->props, CODEC_PROP_SESSION_EXPIRY) ? k->props.session_expiry : 0;
		if (cfg->max_session_expiry && expiry > cfg->max_session_expiry) {
			expiry = cfg->max_session_expiry;
			expiry_capped = true;
		}
	} else if (k->clean_start) {
		expiry = 0;
	} else {
		expiry = cfg->persistent_client_expiration ? cfg->persistent_client_expiration : EXPIRY_NEVER;
	}

	struct session *s = session_find(e, cid, cid_len);
	bool present = false, discarded = false;
	if (s) {
		if (s->conn)
			session_take_over(e, s, k->clean_start);
		if (k->clean_start || s->expiry == 0) {
			will_publish(e, s);
			if (k->clean_start)
				discarded = true;
			if (discarded)
				event_session(e, MIDGE_EV_SESSION_DISCARDED, s, NULL, "clean start");
			session_destroy(e, s);
			s = NULL;
		} else {
			/* the session resumes in time: its pending will is not sent [MQTT-3.1.3-9] */
			will_clear(e, s);
			timer_cancel(e, &s->expiry_timer);
			present = v != CODEC_V31;
		}
	}
	bool created = !s;
	if (!s) {
		s = session_new(e, cid, cid_len);
		if (!s) {
			will_free(wr);
			return connect_refuse(e, c, v, MQTT_RC_SERVER_UNAVAILABLE, k, "out of memory");
		}
	}
	c->info.client_id.p = s->cid;
	s->conn = c;
	c->s = s;
	s->version = v;
	s->expiry = expiry;
	c->expiry_zero = expiry == 0;
	if (wr) {
		wr->m->origin = s->serial;
		wr->s = s;
		s->will = wr;
	}
	c->state = CONN_UP;
	c->counted_connected = true;
	c->keepalive = keepalive;
	c->receive_max = cfg->receive_max ? cfg->receive_max : 65535;
	c->in_alias_max = v == CODEC_V5 ? cfg->topic_alias_max : 0;
	e->st.clients_connected++;
	if (e->st.clients_connected > e->st.clients_maximum)
		e->st.clients_maximum = e->st.clients_connected;
	if (keepalive)
		timer_set(e, &c->keepalive_timer, e->now + (uint64_t)keepalive * 1500);

	struct codec_packet ack;
	memset(&ack, 0, sizeof ack);
	ack.type = CODEC_CONNACK;
	ack.u.connack.session_present = present; /* [MQTT-3.2.2-1] [MQTT-3.2.2-2] [MQTT-3.2.2-3] */
	if (v == CODEC_V5) {
		struct codec_props *pr = &ack.u.connack.props;
		if (c->receive_max != 65535) {
			pr->present |= CODEC_PROP_BIT(CODEC_PROP_RECEIVE_MAX);
			pr->receive_max = c->receive_max;
		}
		if (cfg->max_qos < 2) {
			pr->present |= CODEC_PROP_BIT(CODEC_PROP_MAX_QOS);
			pr->max_qos = cfg->max_qos;
		}
		if (!cfg->retain_available) {
			pr->present |= CODEC_PROP_BIT(CODEC_PROP_RETAIN_AVAILABLE);
			pr->retain_available = 0;
		}
		if (cfg->max_packet_size && cfg->max_packet_size < ENGINE_PROTOCOL_MAX_PACKET) {
			pr->present |= CODEC_PROP_BIT(CODEC_PROP_MAX_PACKET_SIZE);
			pr->max_packet_size = cfg->max_packet_size;
		}
		if (is_assigned) {
			pr->present |= CODEC_PROP_BIT(CODEC_PROP_ASSIGNED_CLIENT_ID);
			pr->assigned_client_id.p = (const uint8_t *)s->cid;
			pr->assigned_client_id.len = (uint32_t)cid_len;
		}
		if (c->in_alias_max) {
			pr->present |= CODEC_PROP_BIT(CODEC_PROP_TOPIC_ALIAS_MAX);
			pr->topic_alias_max = c->in_alias_max;
		}
		if (!cfg->wildcard_sub_available) {
			pr->present |= CODEC_PROP_BIT(CODEC_PROP_WILDCARD_SUB_AVAILABLE);
			pr->wildcard_sub_available = 0;
		}
		if (!cfg->sub_id_available) {
			pr->present |= CODEC_PROP_BIT(CODEC_PROP_SUB_ID_AVAILABLE);
			pr->sub_id_available = 0;
		}
		if (!cfg->shared_sub_available) {
			pr->present |= CODEC_PROP_BIT(CODEC_PROP_SHARED_SUB_AVAILABLE);
			pr->shared_sub_available = 0;
		}
		if (server_ka) {
			pr->present |= CODEC_PROP_BIT(CODEC_PROP_SERVER_KEEP_ALIVE);
			pr->server_keep_alive = keepalive;
		}
		if (expiry_capped) {
			pr->present |= CODEC_PROP_BIT(CODEC_PROP_SESSION_EXPIRY);
			pr->session_expiry = expiry;
		}
	}
	output_packet(e, c, &ack, NULL);

	if (created)
		event_session(e, MIDGE_EV_SESSION_CREATED, s, &c->info, discarded ? "clean start" : NULL);
	else
		event_session(e, MIDGE_EV_SESSION_RESUMED, s, &c->info, NULL);
	struct midge_event ev;
	event_init(e, &ev, MIDGE_EV_CONNECT, &c->info);
	connect_event_fields(&ev, k);
	ev.u.connect.keep_alive = keepalive;
	ev.u.connect.session_expiry = expiry;
	ev.u.connect.session_present = present;
	event_emit(e, &ev);
	if (present)
		session_resend(e, s);
	return 0;
}
