/*
 * internal.h - helpers shared by the decoder (decode.rl) and the encoder
 * (encode.c). Not part of the codec's contract.
 */
#ifndef MIDGE_CODEC_INTERNAL_H
#define MIDGE_CODEC_INTERNAL_H

#include "codec/codec.h"

/* Wire type of each property identifier (specification 2.2.2.2). */
enum codec_prop_kind {
	CODEC_KIND_NONE = 0, /* not a property identifier */
	CODEC_KIND_BYTE,
	CODEC_KIND_U16,
	CODEC_KIND_U32,
	CODEC_KIND_VARINT,
	CODEC_KIND_UTF8,
	CODEC_KIND_BINARY,
	CODEC_KIND_PAIR,
};

/* Indexed by identifier; identifiers above 0x2A are CODEC_KIND_NONE. */
#define CODEC_PROP_ID_MAX 0x2A
extern const uint8_t codec_prop_kind[CODEC_PROP_ID_MAX + 1];

/* Properties allowed per packet type; index 0 stands for will properties
 * (type 0 is reserved, so the slot is free). */
extern const uint64_t codec_prop_allowed[16];

static inline uint16_t codec_get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t codec_get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/*
 * Reads a variable byte integer at p[0..end). Returns the bytes used (1-4)
 * and sets *v, or 0 when it is truncated, longer than 4 bytes or not
 * minimally encoded. Used only on blocks that may come from callers (the
 * iterators); the decoder reads varints in its Ragel machines.
 */
static inline int codec_get_varint(const uint8_t *p, const uint8_t *end, uint32_t *v)
{
	uint32_t acc = 0;
	for (int i = 0; i < 4; i++) {
		if (p + i >= end)
			return 0;
		acc |= (uint32_t)(p[i] & 0x7F) << (7 * i);
		if (!(p[i] & 0x80)) {
			if (i > 0 && p[i] == 0)
				return 0;
			*v = acc;
			return i + 1;
		}
	}
	return 0;
}

/* Skips one property starting at its identifier. Returns the position after
 * it, or NULL when the block is malformed. */
const uint8_t *codec_prop_skip(const uint8_t *p, const uint8_t *end);

#endif
