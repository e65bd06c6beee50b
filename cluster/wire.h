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

/* The encoded size of m. */
size_t cluster_wire_size(const struct engine_cluster_msg *m);
/* Writes m into out (cluster_wire_size(m) bytes). */
void cluster_wire_encode(uint8_t *out, const struct engine_cluster_msg *m);
/* Views into b[0..n) (no copy). Returns 0, or -1 when b is not an encoded
 * message (too short, lengths past its end, unknown version, QoS 3). */
int cluster_wire_decode(const uint8_t *b, size_t n, struct engine_cluster_msg *m);

#endif
