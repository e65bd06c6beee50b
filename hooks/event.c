/*
 * event.c - the event model's public helpers (include/midge.h): frozen
 * dotted names and the user-property reader.
 */
#include <string.h>

#include "codec/codec.h"
#include "midge.h"

/* Indexed by enum midge_event_type; the names are the ZeroMQ topics and
 * part of the contract in docs/events.md: never rename, only add. */
static const char *const event_names[MIDGE_EV__COUNT] = {
	[MIDGE_EV_CONNECT] = "client.connected",
	[MIDGE_EV_CONNECT_REFUSED] = "client.refused",
	[MIDGE_EV_DISCONNECT] = "client.disconnected",
	[MIDGE_EV_PING] = "client.ping",
	[MIDGE_EV_SUBSCRIBE] = "client.subscribed",
	[MIDGE_EV_UNSUBSCRIBE] = "client.unsubscribed",
	[MIDGE_EV_PUBLISH] = "message.published",
	[MIDGE_EV_DELIVER] = "message.delivered",
	[MIDGE_EV_ACKED] = "message.acked",
	[MIDGE_EV_DROP] = "message.dropped",
	[MIDGE_EV_WILL] = "message.will",
	[MIDGE_EV_RETAIN_SET] = "retained.set",
	[MIDGE_EV_RETAIN_CLEAR] = "retained.cleared",
	[MIDGE_EV_SESSION_CREATED] = "session.created",
	[MIDGE_EV_SESSION_RESUMED] = "session.resumed",
	[MIDGE_EV_SESSION_TAKEOVER] = "session.taken_over",
	[MIDGE_EV_SESSION_EXPIRED] = "session.expired",
	[MIDGE_EV_SESSION_DISCARDED] = "session.discarded",
	[MIDGE_EV_PROTOCOL_ERROR] = "client.protocol_error",
	[MIDGE_EV_ACL_DENIED] = "acl.denied",
	[MIDGE_EV_STORE] = "store.status",
};

const char *midge_event_name(enum midge_event_type type)
{
	if ((int)type <= 0 || type >= MIDGE_EV__COUNT)
		return NULL;
	return event_names[type];
}

/*
 * Decodes the property block on every call and skips to *pos: user
 * properties are rare and short, and this keeps struct midge_message free
 * of decoder state. *pos counts bytes into the block (codec's cursor).
 * A block that does not decode has no user properties.
 */
int midge_message_user_property(const struct midge_message *msg, size_t *pos,
				struct midge_str *key, struct midge_str *value)
{
	if (!msg || !pos || !msg->props || !msg->props_len || msg->props_len > UINT32_MAX ||
	    *pos > UINT32_MAX)
		return 0;
	struct codec_props pr;
	memset(&pr, 0, sizeof pr);
	if (codec_props_decode(msg->props, (uint32_t)msg->props_len, CODEC_PUBLISH, &pr) != 0)
		return 0;
	uint32_t p = (uint32_t)*pos;
	struct codec_buf k, v;
	if (codec_props_next_user(&pr, &p, &k, &v) != 1)
		return 0;
	*pos = p;
	if (key) {
		key->p = (const char *)k.p;
		key->len = k.len;
	}
	if (value) {
		value->p = (const char *)v.p;
		value->len = v.len;
	}
	return 1;
}
