/*
 * iter.c - reading back the repeated parts of decoded packets: user
 * properties, subscription identifiers, SUBSCRIBE and UNSUBSCRIBE entries.
 *
 * The blocks were validated when they were decoded, but a caller may also
 * hand in a block it built itself (to encode user properties), so every
 * step is bounds-checked and a malformed block simply ends the iteration.
 */
#include "codec/codec.h"
#include "codec/internal.h"

const uint8_t *codec_prop_skip(const uint8_t *p, const uint8_t *end)
{
	uint32_t v, len;
	int n;

	if (p >= end || *p > CODEC_PROP_ID_MAX)
		return NULL;
	switch (codec_prop_kind[*p++]) {
	case CODEC_KIND_BYTE:
		return end - p >= 1 ? p + 1 : NULL;
	case CODEC_KIND_U16:
		return end - p >= 2 ? p + 2 : NULL;
	case CODEC_KIND_U32:
		return end - p >= 4 ? p + 4 : NULL;
	case CODEC_KIND_VARINT:
		n = codec_get_varint(p, end, &v);
		return n ? p + n : NULL;
	case CODEC_KIND_UTF8:
	case CODEC_KIND_BINARY:
		if (end - p < 2)
			return NULL;
		len = codec_get16(p);
		return (uint32_t)(end - p - 2) >= len ? p + 2 + len : NULL;
	case CODEC_KIND_PAIR:
		for (int i = 0; i < 2; i++) {
			if (end - p < 2)
				return NULL;
			len = codec_get16(p);
			if ((uint32_t)(end - p - 2) < len)
				return NULL;
			p += 2 + len;
		}
		return p;
	default:
		return NULL;
	}
}

/*
 * The next property with identifier id at or after *pos in the block;
 * *pos moves past it. NULL at the end of the block (*pos becomes its
 * length), at a malformed entry (*pos unchanged) or without a block at all
 * (absent, or MQTT 3).
 */
static const uint8_t *codec_props_find(const struct codec_props *props, uint32_t *pos, uint8_t id)
{
	const uint8_t *base = props->raw.p;
	const uint8_t *end, *p, *next;

	if (!base)
		return NULL;
	end = base + props->raw.len;
	for (p = base + *pos; p < end; p = next) {
		if (!(next = codec_prop_skip(p, end)))
			return NULL;
		if (*p == id) {
			*pos = (uint32_t)(next - base);
			return p;
		}
	}
	*pos = props->raw.len;
	return NULL;
}

int codec_props_next_user(const struct codec_props *props, uint32_t *pos, struct codec_buf *key,
			  struct codec_buf *val)
{
	const uint8_t *p = codec_props_find(props, pos, CODEC_PROP_USER_PROPERTY);

	if (!p)
		return 0;
	key->len = codec_get16(p + 1);
	key->p = p + 3;
	val->len = codec_get16(key->p + key->len);
	val->p = key->p + key->len + 2;
	return 1;
}

int codec_props_next_sub_id(const struct codec_props *props, uint32_t *pos, uint32_t *id)
{
	const uint8_t *p = codec_props_find(props, pos, CODEC_PROP_SUBSCRIPTION_ID);

	if (!p)
		return 0;
	codec_get_varint(p + 1, props->raw.p + props->raw.len, id);
	return 1;
}

/*
 * The next entry of a SUBSCRIBE or UNSUBSCRIBE list at *pos: a two-byte
 * length, that many bytes of filter, then trail bytes (the options).
 * Returns 1 and moves *pos past the entry, or 0 at the end or at an entry
 * that does not fit in the list.
 */
static int codec_list_next(struct codec_buf list, uint32_t *pos, uint32_t trail, struct codec_buf *filter)
{
	uint32_t at = *pos, len;

	if (!list.p || list.len < 2 + trail || at > list.len - 2 - trail)
		return 0;
	len = codec_get16(list.p + at);
	if (len > list.len - at - 2 - trail)
		return 0;
	filter->p = list.p + at + 2;
	filter->len = len;
	*pos = at + 2 + len + trail;
	return 1;
}

int codec_subscribe_next(const struct codec_subscribe *s, uint32_t *pos, struct codec_sub_entry *e)
{
	if (!codec_list_next(s->list, pos, 1, &e->filter))
		return 0;
	e->options = e->filter.p[e->filter.len];
	e->qos = e->options & 0x03;
	e->no_local = (e->options & 0x04) != 0;
	e->retain_as_published = (e->options & 0x08) != 0;
	e->retain_handling = (uint8_t)((e->options >> 4) & 0x03);
	return 1;
}

int codec_unsubscribe_next(const struct codec_unsubscribe *u, uint32_t *pos, struct codec_buf *filter)
{
	return codec_list_next(u->list, pos, 0, filter);
}
