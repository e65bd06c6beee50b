/*
 * wire.h - one MQTT message as the body of a NATS message (and of a
 * retained-bucket value): encoded once on the publishing node, decoded
 * (bounded, every length checked) on the receiving ones.
 *
 *   0  'M'  1  version (2)  2  flags: qos (bits 0-1), retain (bit 2)  3  0
 *   4  topic length (u16 BE)   6  origin id length (u16 BE)
 *   8  properties length (u32 BE)   12  expiry (u64 BE, wall-clock ms, 0 = none)
 *   20 the publishing node's run (u64 BE)   28  its sequence number (u64 BE)
 *   36 topic, origin id, raw v5 properties, then the payload to the end
 *
 * Version 1 (no run and sequence: the header ends at 20) is what a
 * message outside the journal (seq 0: QoS 0) is written as, and what
 * older nodes left in the retained bucket.
 */
#ifndef MIDGE_CLUSTER_WIRE_H
#define MIDGE_CLUSTER_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

#define CLUSTER_WIRE_HEAD 36

/*
 * A list of encoded messages: a tag byte ('B' a bundle, 'J' a journal
 * record), version 1, then each message as a u32 BE length and its
 * encoding. A bundle is one NATS message carrying several messages to
 * one subject (cluster.c); a journal record, a batch's QoS 1/2 ones.
 */
#define CLUSTER_LIST_HEAD 2
#define CLUSTER_LIST_ITEM 4 /* the length before each message */

/* The encoded size of m. */
size_t cluster_wire_size(const struct engine_cluster_msg *m);
/* Writes m into out (cluster_wire_size(m) bytes). */
void cluster_wire_encode(uint8_t *out, const struct engine_cluster_msg *m);
/* Views into b[0..n) (no copy). Returns 0, or -1 when b is not an encoded
 * message (too short, lengths past its end, unknown version, QoS 3). */
int cluster_wire_decode(const uint8_t *b, size_t n, struct engine_cluster_msg *m);

/* Writes the list head with tag into out. */
void cluster_wire_list_start(uint8_t *out, char tag);
/* Appends msg (len bytes, CLUSTER_LIST_ITEM + len in all) at out. */
void cluster_wire_list_put(uint8_t *out, const uint8_t *msg, size_t len);
/* The next message of the list d[0..n) with tag, from *at (0 to start):
 * 1 and *msg, *len, 0 at its end, -1 when d is not such a list or a
 * length runs past its end. */
int cluster_wire_list_next(const uint8_t *d, size_t n, char tag, size_t *at, const uint8_t **msg,
			   size_t *len);

#endif
