/*
 * subject.h - MQTT names as NATS names: topics and filters as subjects
 * (routing by interest), topics as key-value keys (the retained bucket).
 * Pure functions, no allocation: the caller gives the buffer.
 */
#ifndef MIDGE_CLUSTER_SUBJECT_H
#define MIDGE_CLUSTER_SUBJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest subject midge sends or subscribes to: nats-server's
 * default max_control_line is 4096 bytes for the whole PUB/SUB line. */
#define CLUSTER_SUBJECT_MAX 3072

/*
 * The subject of topic t[0..len) under prefix ("CLUSTER.m" for ordinary
 * topics, "CLUSTER.d" for $ topics: a leading wildcard must not match
 * them [MQTT-4.7.2-1]). Each level is one token; in a level, '.', '*',
 * '>', '%', bytes <= 0x20 and >= 0x7f are %XX (hex), and an empty level
 * is "%" alone, so the mapping is one-to-one. Returns the length written
 * (NUL-terminated) or -1 when it does not fit in cap.
 */
int cluster_subject_topic(char *out, size_t cap, const char *cluster, const uint8_t *t, size_t len);

/*
 * The subject of filter f[0..len) (valid, no $share/ prefix): '+' is
 * '*', a trailing '#' is '>'. *parent is set when the filter ends in
 * "/#", which in MQTT also matches the level above it: the caller
 * subscribes to out with its last two characters cut as well. Returns the
 * length or -1.
 */
int cluster_subject_filter(char *out, size_t cap, const char *cluster, const uint8_t *f, size_t len,
			   bool *parent);

/*
 * A key of the retained bucket for topic t[0..len): bytes other than
 * [A-Za-z0-9_-/] are =XX, so the key is one token of the characters
 * JetStream allows. Returns the length or -1.
 */
int cluster_key_topic(char *out, size_t cap, const uint8_t *t, size_t len);
/* The reverse. Returns the topic's length, or -1 when key is not one
 * cluster_key_topic() makes. */
int cluster_key_parse(uint8_t *out, size_t cap, const char *key, size_t len);

/* Whether name may be a node or cluster name: 1 to 64 of [A-Za-z0-9_-]
 * (a subject token, a key, a bucket name). */
bool cluster_name_valid(const char *name);

#endif
