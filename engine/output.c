/*
 * output.c - non-PUBLISH packets towards a client: the encode scratch
 * buffer, reason strings within the client's limits, acks and DISCONNECT.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

/* The slow path of output_scratch_reserve(): the buffer doubles until n fits. */
int output_scratch_grow(struct engine *e, size_t n)
{
	size_t cap = e->cap_scratch ? e->cap_scratch : 1024;
	while (cap < n)
		cap *= 2;
	uint8_t *b = realloc(e->scratch, cap);
	if (!b)
		return -1;
	e->scratch = b;
	e->cap_scratch = cap;
	return 0;
}

/* Queues raw bytes on c (and a shared tail); counts what was queued.
 * Returns 0, or -1 when the transport refused (droppable only). */
int client_write(struct engine *e, struct engine_conn *c, const uint8_t *b, size_t n,
		      struct frame *tail, bool droppable)
{
	int rc = e->io.send(e->io.ctx, c->handle, b, n, tail, droppable);
	if (rc == 0)
		e->st.bytes_sent += n + (tail ? tail->len : 0);
	return rc;
}

/*
 * Adds a reason string to a v5 packet's properties when the client may
 * receive one: always on CONNACK and DISCONNECT, on other packets only when
 * it did not set Request Problem Information to 0 [MQTT-3.1.2-29].
 */
void output_reason_string(const struct engine_conn *c, struct codec_props *p, uint8_t type,
			 const char *why)
{
	if (!why || c->version != CODEC_V5)
		return;
	if (!c->problem_info && type != CODEC_CONNACK && type != CODEC_DISCONNECT)
		return;
	p->present |= CODEC_PROP_BIT(CODEC_PROP_REASON_STRING);
	p->reason_string.p = (const uint8_t *)why;
	p->reason_string.len = (uint32_t)strlen(why);
}

/*
 * Encodes a non-PUBLISH packet into the scratch buffer. A packet over the
 * client's maximum packet size first loses its reason string
 * [MQTT-3.1.2-25]; if it still does not fit it is not sent. Returns its
 * size, or 0 when it cannot be sent.
 */
size_t output_encode(struct engine *e, struct engine_conn *c, struct codec_packet *p,
		     struct codec_props *props)
{
	p->version = c->version ? c->version : CODEC_V311;
	size_t n = codec_encode_size(p);
	if (n && c->client_max_packet && n > c->client_max_packet && props &&
	    CODEC_HAS_PROP(props, CODEC_PROP_REASON_STRING)) {
		props->present &= ~CODEC_PROP_BIT(CODEC_PROP_REASON_STRING);
		n = codec_encode_size(p);
	}
	if (!n || (c->client_max_packet && n > c->client_max_packet) || output_scratch_reserve(e, n) < 0)
		return 0;
	if (codec_encode(p, e->scratch, e->cap_scratch) != n)
		return 0;
	return n;
}

/* Encodes and queues a non-PUBLISH packet (output_encode). Returns 0 or -1. */
int output_packet(struct engine *e, struct engine_conn *c, struct codec_packet *p,
		       struct codec_props *props)
{
	size_t n = output_encode(e, c, p, props);
	if (!n)
		return -1;
	return client_write(e, c, e->scratch, n, NULL, false);
}

void output_ack(struct engine *e, struct engine_conn *c, uint8_t type, uint16_t pid, uint8_t rc,
		     const char *why)
{
	struct codec_packet p;
	memset(&p, 0, sizeof p);
	p.type = type;
	p.u.ack.packet_id = pid;
	p.u.ack.rc = c->version == CODEC_V5 ? rc : 0;
	output_reason_string(c, &p.u.ack.props, type, why);
	output_packet(e, c, &p, &p.u.ack.props);
}

void output_disconnect(struct engine *e, struct engine_conn *c, uint8_t rc, const char *why)
{
	/* nothing goes before a CONNACK that waits for the store
	 * [MQTT-3.2.0-1]: the connection just closes */
	if (c->version != CODEC_V5 || c->connack_held)
		return;
	struct codec_packet p;
	memset(&p, 0, sizeof p);
	p.type = CODEC_DISCONNECT;
	p.u.disconnect.rc = rc;
	output_reason_string(c, &p.u.disconnect.props, CODEC_DISCONNECT, why);
	output_packet(e, c, &p, &p.u.disconnect.props);
}
