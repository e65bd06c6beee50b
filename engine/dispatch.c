/*
 * dispatch.c - the input side of a connection: engine_conn_input() (the
 * one framing loop, codec_frames()), engine_conn_frame() decoding and
 * dispatching each packet, PINGREQ, DISCONNECT, protocol and framing
 * errors.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

/*
 * A protocol violation or a refusal after CONNECT: event, v5 DISCONNECT
 * with the reason code, close. Returns -1 for engine_conn_frame().
 */
int client_fail(struct engine *e, struct engine_conn *c, uint8_t rc, const char *why)
{
	if (c->state == CONN_CLOSING)
		return -1;
	struct midge_event ev;
	event_init(e, &ev, MIDGE_EV_PROTOCOL_ERROR, &c->info);
	ev.u.disconnect.rc = rc;
	ev.u.disconnect.will = c->s && c->s->will;
	ev.u.disconnect.why = why;
	event_emit(e, &ev);
	output_disconnect(e, c, rc, why);
	client_request_close(e, c, rc, false, why);
	return -1;
}

/* A client DISCONNECT: v5 may change the session expiry (not from 0
 * [MQTT-3.14.2-2]) and ask for the will (0x04). Returns -1 (closing). */
static int dispatch_disconnect(struct engine *e, struct engine_conn *c, struct codec_packet *p)
{
	struct codec_disconnect *d = &p->u.disconnect;
	struct session *s = c->s;
	if (c->version == CODEC_V5 && CODEC_HAS_PROP(&d->props, CODEC_PROP_SESSION_EXPIRY)) {
		if (c->expiry_zero && d->props.session_expiry != 0) /* [MQTT-3.14.2-2] */
			return client_fail(e, c, MQTT_RC_PROTOCOL_ERROR,
					 "session expiry set on DISCONNECT after 0 on CONNECT");
		uint32_t x = d->props.session_expiry;
		if (e->cfg.max_session_expiry && x > e->cfg.max_session_expiry)
			x = e->cfg.max_session_expiry;
		s->expiry = x;
		session_store_save(e, s);
	}
	/* [MQTT-3.14.4-3] the will is discarded, unless v5 reason 0x04 asks for it */
	c->normal_disconnect = !(c->version == CODEC_V5 && d->rc == MQTT_RC_DISCONNECT_WITH_WILL);
	client_request_close(e, c, d->rc, true, "client disconnected");
	return -1;
}

/* PINGREQ: event, then PINGRESP. */
static int dispatch_ping(struct engine *e, struct engine_conn *c)
{
	static const uint8_t pingresp[2] = {0xD0, 0x00};
	struct midge_event ev;
	event_init(e, &ev, MIDGE_EV_PING, &c->info);
	event_emit(e, &ev);
	client_write(e, c, pingresp, sizeof pingresp, NULL, false); /* [MQTT-3.12.4-1] */
	return 0;
}

/* Why a connection whose first packet is not CONNECT is closed, by the
 * type it sent (static strings: the event's why outlives no call). */
static const char *const first_not_connect[16] = {
	"first packet is reserved type 0, not CONNECT", "first packet is CONNECT",
	"first packet is CONNACK, not CONNECT",     "first packet is PUBLISH, not CONNECT",
	"first packet is PUBACK, not CONNECT",      "first packet is PUBREC, not CONNECT",
	"first packet is PUBREL, not CONNECT",      "first packet is PUBCOMP, not CONNECT",
	"first packet is SUBSCRIBE, not CONNECT",   "first packet is SUBACK, not CONNECT",
	"first packet is UNSUBSCRIBE, not CONNECT", "first packet is UNSUBACK, not CONNECT",
	"first packet is PINGREQ, not CONNECT",     "first packet is PINGRESP, not CONNECT",
	"first packet is DISCONNECT, not CONNECT",  "first packet is AUTH, not CONNECT",
};

int engine_conn_frame(struct engine *e, struct engine_conn *c, uint8_t first, const uint8_t *body,
		      uint32_t len, uint64_t now_ms)
{
	e->now = now_ms;
	if (c->state == CONN_CLOSING)
		return -1;
	if (c->state == CONN_AUTH_PENDING && !authx_reads(c))
		return ENGINE_CONN_HELD;
	e->st.bytes_received += 1 + codec_varint_size(len) + len;
	c->last_packet_ms = now_ms; /* [MQTT-3.1.2-23] any packet resets the keepalive */
	struct codec_packet p;
	memset(&p, 0, sizeof p);
	int rc = codec_decode(first, body, len, c->version, &p);
	uint8_t type = first >> 4;
	if (c->state == CONN_AUTH_PENDING) /* the client's turn in an AUTH exchange */
		return authx_packet(e, c, &p, rc);
	if (c->state == CONN_NEW) {
		if (type != CODEC_CONNECT) /* [MQTT-3.1.0-1] */
			return client_fail(e, c, MQTT_RC_PROTOCOL_ERROR, first_not_connect[type]);
		return connect_handle(e, c, body, len, &p, rc);
	}
	if (type == CODEC_CONNECT) /* [MQTT-3.1.0-2] */
		return client_fail(e, c, MQTT_RC_PROTOCOL_ERROR, "second CONNECT");
	if (rc < 0)
		return client_fail(e, c, (uint8_t)-rc, codec_rc_name((uint8_t)-rc));
	switch (type) {
	case CODEC_PUBLISH:
		rc = publish_handle(e, c, &p);
		break;
	case CODEC_PUBACK:
	case CODEC_PUBREC:
	case CODEC_PUBREL:
	case CODEC_PUBCOMP:
		return publish_handle_ack(e, c, &p);
	case CODEC_SUBSCRIBE:
		rc = subscribe_handle(e, c, &p);
		break;
	case CODEC_UNSUBSCRIBE:
		return unsubscribe_handle(e, c, &p);
	case CODEC_PINGREQ:
		return dispatch_ping(e, c);
	case CODEC_DISCONNECT:
		return dispatch_disconnect(e, c, &p);
	case CODEC_AUTH:
		return authx_packet(e, c, &p, rc);
	default:
		return client_fail(e, c, MQTT_RC_PROTOCOL_ERROR, "packet type a client must not send");
	}
	/* a PUBLISH or SUBSCRIBE waiting for its ACL answer comes again:
	 * counted when it is handled */
	if (rc == ENGINE_CONN_REPLAY)
		e->st.bytes_received -= 1 + codec_varint_size(len) + len;
	return rc;
}

/* The framer refused the input: rc is the positive reason code of
 * codec_frames() (malformed or packet too large). */
static void dispatch_framing_error(struct engine *e, struct engine_conn *c, uint8_t rc,
				   uint64_t now_ms)
{
	e->now = now_ms;
	client_fail(e, c, rc,
		  rc == MQTT_RC_PACKET_TOO_LARGE ? "packet larger than the maximum packet size"
						 : "malformed packet");
}

/* One engine_conn_input() call, as codec_frames() sees it. */
struct input_pass {
	struct engine *e;
	struct engine_conn *c;
	uint64_t now;
	uint32_t limit; /* the framer's limit for the next packet */
	bool up;        /* CONNECT accepted: the limit no longer changes */
	size_t unread;  /* the held packet's size: not handled, so not used */
};

/* Stops codec_frames() with one of these (its callback's positive values). */
enum {
	INPUT_CLOSING = 1,
	INPUT_HELD = 2,
};

/* codec_frames() callback: one packet into engine_conn_frame(). */
static int input_packet(void *ctx, const struct codec_frame *fr, const uint8_t *body)
{
	struct input_pass *in = ctx;
	int rc = engine_conn_frame(in->e, in->c, fr->first, body, fr->remaining, in->now);
	if (rc < 0)
		return INPUT_CLOSING;
	if (rc == ENGINE_CONN_HELD)
		return INPUT_HELD;
	if (rc == ENGINE_CONN_REPLAY) {
		/* codec_frames() counted it used: given back below */
		in->unread = (size_t)fr->header_len + fr->remaining;
		return INPUT_HELD;
	}
	if (hold_full(in->c)) { /* read on once the store made some durable */
		hold_stop_input(in->c);
		return INPUT_HELD;
	}
	if (!in->up && in->c->state == CONN_UP) {
		/* CONNECT accepted: from the next packet on, the full limit. */
		in->limit = engine_conn_max_packet(in->c);
		in->up = true;
	}
	return 0;
}

int engine_conn_input(struct engine *e, struct engine_conn *c, const uint8_t *buf, size_t n,
		      uint64_t now_ms, struct codec_feed *out)
{
	if (c->state == CONN_AUTH_PENDING && !authx_reads(c)) {
		/* nothing is read while the CONNECT waits: the caller keeps it all */
		out->used = 0;
		out->need = 0;
		return ENGINE_CONN_HELD;
	}
	if (c->state == CONN_CLOSING) {
		out->used = n;
		out->need = 0;
		return -1;
	}
	if (hold_full(c)) {
		hold_stop_input(c);
		out->used = 0;
		out->need = 0;
		return ENGINE_CONN_HELD;
	}
	struct input_pass in = {e, c, now_ms, engine_conn_max_packet(c), c->state == CONN_UP, 0};
	int rc = codec_frames(buf, n, &in.limit, input_packet, &in, out);
	if (rc == INPUT_HELD) {
		/* out->used ends with the CONNECT, or the packet that filled the
		 * hold, or before the packet waiting for its ACL answer */
		out->used -= in.unread;
		out->need = 0;
		return ENGINE_CONN_HELD;
	}
	if (rc < 0)
		dispatch_framing_error(e, c, (uint8_t)-rc, now_ms);
	if (rc != 0) {
		/* Closing: whatever else arrived is never read. */
		out->used = n;
		out->need = 0;
		return -1;
	}
	return 0;
}
