/*
 * message.c - refcounted messages (struct emsg): one immutable copy of
 * topic, payload and forwardable v5 properties shared by every queue,
 * in-flight slot and the retained store.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

/*
 * A message record lives in the data of a struct frame, so it comes from
 * the frame size-class cache like its payload: a warm broker makes no
 * malloc per received PUBLISH. Frame data is 8-byte aligned, enough for
 * struct emsg.
 */
static struct emsg *emsg_alloc(size_t n)
{
	struct frame *f = frame_new((uint32_t)n);
	return f ? (struct emsg *)(void *)f->data : NULL;
}

static void emsg_release(struct emsg *m)
{
	frame_unref((struct frame *)(void *)((uint8_t *)m - offsetof(struct frame, data)));
}

/* The last reference went: payload and record go back to their caches. */
void emsg_free(struct emsg *m)
{
	frame_unref(m->payload);
	free(m->origin_user);
	emsg_release(m);
}

void emsg_unref_cb(void *m)
{
	emsg_unref(m);
}

size_t emsg_size_cb(const void *m)
{
	return emsg_size(m);
}

/*
 * Remembers who published m (user name, listener) for check_retain_source:
 * only retained messages from clients carry it. Returns 0, or -1 when
 * there is no memory for the name (the source is then checked as an
 * anonymous client's: it may lose the retained message, never widen it).
 */
int emsg_set_source(struct emsg *m, const struct midge_client *from)
{
	m->origin_listener = from->listener;
	if (!from->username.p)
		return 0;
	m->origin_user = engine_dup_bytes(from->username.p, from->username.len);
	if (!m->origin_user)
		return -1;
	m->origin_user_len = (uint32_t)from->username.len;
	return 0;
}

/*
 * Removes the Will Delay Interval (0x18) from a will's property block in
 * place and returns the new length. It is the one will property a
 * PUBLISH must not carry, and the raw block travels as a PUBLISH's: to
 * other nodes of a cluster, in a moved session. Anything that does not
 * walk as a will's properties is left as it is (the decoder refuses it).
 */
static uint32_t will_props_strip(uint8_t *p, uint32_t len)
{
	uint32_t i = 0;
	while (i < len) {
		uint8_t id = p[i];
		uint32_t n; /* the value's size */
		if (id == 0x01) {
			n = 1;
		} else if (id == 0x02 || id == 0x18) {
			n = 4;
		} else if (id == 0x03 || id == 0x08 || id == 0x09 || id == 0x26) {
			if (len - i < 3)
				return len;
			n = 2 + ((uint32_t)p[i + 1] << 8 | p[i + 2]);
			if (id == 0x26) { /* a pair: the second string's length follows */
				if (len - i - 1 < n + 2)
					return len;
				n += 2 + ((uint32_t)p[i + 1 + n] << 8 | p[i + 2 + n]);
			}
		} else {
			return len;
		}
		if (len - i - 1 < n)
			return len;
		if (id == 0x18) {
			memmove(p + i, p + i + 1 + n, len - i - 1 - n);
			len -= 1 + n;
			continue;
		}
		i += 1 + n;
	}
	return len;
}

/*
 * A new message with one reference: copies topic, payload and the raw v5
 * property block (decoded again from the copy so the views point into it;
 * will properties when `will`, the will delay taken out of the copy).
 * Only forwardable properties stay marked
 * present; message expiry becomes an absolute deadline (for a will, once
 * it is published). NULL on OOM or a property block that does not decode.
 */
struct emsg *emsg_new(struct engine *e, const uint8_t *topic, size_t tlen,
			     const uint8_t *payload, size_t plen, const uint8_t *props,
			     size_t props_len, uint8_t qos, bool retain, uint64_t origin,
			     const uint8_t *origin_id, size_t olen, bool will)
{
	/* the decoded properties (only with some) first, aligned, then the bytes */
	size_t pd = props_len ? sizeof(struct codec_props) : 0;
	struct emsg *m = emsg_alloc(sizeof *m + pd + tlen + props_len + olen + 1);
	if (!m)
		return NULL;
	memset(m, 0, sizeof *m);
	uint8_t *bytes = m->data;
	if (pd) {
		m->props = (struct codec_props *)(void *)m->data;
		memset(m->props, 0, pd);
		bytes += pd;
	}
	m->payload = frame_new((uint32_t)plen);
	if (!m->payload) {
		emsg_release(m);
		return NULL;
	}
	if (plen)
		memcpy(m->payload->data, payload, plen);
	m->id = ++e->msg_ids;
	m->refs = 1;
	m->qos = qos;
	m->retain = retain;
	m->topic = bytes;
	m->topic_len = (uint16_t)tlen;
	memcpy(m->topic, topic, tlen);
	m->raw_props = bytes + tlen;
	if (props_len)
		memcpy(m->raw_props, props, props_len);
	if (will && props_len)
		props_len = will_props_strip(m->raw_props, (uint32_t)props_len);
	if (!props_len)
		m->props = NULL;
	m->props_len = (uint32_t)props_len;
	m->origin_id = (char *)m->raw_props + props_len;
	m->origin_len = (uint32_t)olen;
	if (olen)
		memcpy(m->origin_id, origin_id, olen);
	m->origin_id[olen] = '\0';
	m->origin = origin;
	if (props_len) {
		int rc = will ? codec_props_decode_will(m->raw_props, m->props_len, m->props)
			      : codec_props_decode(m->raw_props, m->props_len, CODEC_PUBLISH, m->props);
		if (rc < 0) {
			emsg_unref(m);
			return NULL;
		}
		if (CODEC_HAS_PROP(m->props, CODEC_PROP_MESSAGE_EXPIRY)) {
			m->expiry.kind = T_RETAINED; /* has an expiry */
			/* a will's deadline counts from its publication: set then */
			if (!will)
				m->expiry.at = e->now + (uint64_t)m->props->message_expiry * 1000;
		}
		m->props->present &= FORWARD_PROPS;
		m->props->sub_id_count = 0;
	}
	return m;
}

/* A NUL-terminated malloc copy of p[0..n), or NULL on OOM. */
char *engine_dup_bytes(const void *p, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, p, n);
		d[n] = '\0';
	}
	return d;
}

/* The message expiry interval left, in whole seconds rounded up (at least
 * 1: an expired message is dropped before it gets here) [MQTT-3.3.2-6]. */
uint32_t emsg_remaining_expiry(const struct engine *e, const struct emsg *m)
{
	if (m->expiry.at <= e->now)
		return 1;
	return (uint32_t)((m->expiry.at - e->now + 999) / 1000);
}
