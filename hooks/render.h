/*
 * render.h - JSON rendering of events into a reusable buffer (internal to
 * hooks/; the unit tests use it directly).
 *
 * A rendered event is split in two so that one rendering serves every
 * socket although each socket numbers its own events:
 *
 *   head (per socket)                 body (once per event)
 *   {"schema":1,"seq":12,"dropped":0  ,"event":"client.connected",...}
 *
 * hooks_render_body() writes the body at offset HOOKS_RENDER_HEADROOM of
 * the buffer; hooks_render_head() writes the head right before it, so the
 * whole JSON object is one contiguous range that is sent without a copy.
 */
#ifndef MIDGE_HOOKS_RENDER_H
#define MIDGE_HOOKS_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "midge.h"

/* Room for the head: '{', "schema", "seq" and "dropped" with 20-digit
 * numbers fit in well under this. */
#define HOOKS_RENDER_HEADROOM 96

/* A growable byte buffer. It grows (amortised) when an event is larger
 * than any before; after that rendering allocates nothing. */
struct hooks_buf {
	char *p;
	size_t len;
	size_t cap;
};

/* Makes room for n more bytes. Returns 0 or -1 (out of memory). */
int hooks_buf_reserve(struct hooks_buf *b, size_t n);
void hooks_buf_release(struct hooks_buf *b);

/* True for the events that carry a message (u.message): their ZeroMQ
 * name frame gets "/<topic>" appended and a payload frame follows. */
bool hooks_event_has_message(enum midge_event_type type);

/*
 * Writes the body of ev's JSON object (everything after the head, the
 * closing brace included) into b at offset HOOKS_RENDER_HEADROOM, setting
 * b->len to its end. node may be NULL (rendered as null).
 * Returns 0, or -1 when the buffer cannot grow or the type is unknown.
 */
int hooks_render_body(struct hooks_buf *b, const struct midge_event *ev, const char *node);

/*
 * Writes the head for one socket right before the body rendered in b and
 * returns where the JSON object starts (its length is b->len minus that
 * offset).
 */
size_t hooks_render_head(struct hooks_buf *b, uint64_t seq, uint64_t dropped);

/*
 * The compact encoding of message events (midge_hooks_format compact,
 * docs/events.md). A body is HOOKS_COMPACT_HEAD bytes of fixed fields
 * (little-endian), then length-prefixed strings, the payload last. One
 * event is a frame of its name frame's bytes, a NUL, and its body; a batch
 * of events of one type is a frame of "<name>/", a NUL, a u32 count, and
 * count times a u32 length and a body.
 */
#define HOOKS_COMPACT_VERSION 1
#define HOOKS_COMPACT_HEAD 40
/* Appends ev's body to b. Returns 0 or -1 (out of memory, or not a
 * message event). */
int hooks_compact_body(struct hooks_buf *b, const struct midge_event *ev, uint64_t seq,
		       uint64_t dropped);
/* Starts a frame in b: key, NUL, and for a batch room for its count. */
int hooks_compact_start(struct hooks_buf *b, const char *key, size_t klen, bool batch);
/* Appends ev to a batch started above (length and body). */
int hooks_compact_append(struct hooks_buf *b, const struct midge_event *ev, uint64_t seq,
			 uint64_t dropped);
/* Writes a batch's count (klen: its key's length). */
void hooks_compact_count(struct hooks_buf *b, size_t klen, uint32_t count);

/*
 * Writes s[0..n) as a JSON string (quotes included). Bytes that are not
 * well-formed UTF-8 become \u00XX (the byte read as Latin-1) so arbitrary
 * bytes always give valid JSON; control characters, '"', '\\' and DEL are
 * escaped. Returns 0 or -1 (out of memory).
 */
int hooks_json_string(struct hooks_buf *b, const char *s, size_t n);

/* Standard base64 (RFC 4648, padded) of p[0..n), without quotes. */
int hooks_base64(struct hooks_buf *b, const uint8_t *p, size_t n);

/* The v5 name of a reason code in the context of an event type and
 * protocol level (CONNACK codes of 3.1 / 3.1.1 have their own names;
 * SUBACK codes 0..2 read "granted qos N"). */
const char *hooks_rc_name(enum midge_event_type type, uint8_t protocol, uint8_t rc);

/* "no_subscribers", "queue_full", ...; NULL for an unknown reason. */
const char *hooks_drop_reason_name(enum midge_drop_reason r);

#endif
