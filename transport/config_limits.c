/*
 * config_limits.c - the numeric bounds and on/off switches: the engine's
 * limits and features, the sockets' and the hooks' bounds, persistence's
 * periods, the worker threads, durations (persistent_client_expiration).
 * Each key is a number checked against its maximum or a boolean; a key
 * whose value needs more parsing lives in the room of its concern.
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "transport/config_internal.h"

/* Mosquitto's durations: a number with h, d, w, m (month) or y. A bare
 * number is seconds. */
static int conf_parse_duration(const char *v, uint32_t *out)
{
	if (!v || !*v || !isdigit((unsigned char)*v))
		return -1;
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	uint64_t mul = 1;
	if (errno)
		return -1;
	switch (*end) {
	case '\0': mul = 1; break;
	case 'h': mul = 3600; break;
	case 'd': mul = 86400; break;
	case 'w': mul = 7 * 86400; break;
	case 'm': mul = 30 * 86400; break;
	case 'y': mul = 365 * 86400; break;
	default: return -1;
	}
	if (*end && end[1])
		return -1;
	uint64_t s = (uint64_t)n * mul;
	*out = s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
	return 0;
}

/* Numeric engine limits: key, pointer width, maximum. */
static int conf_set_number(struct conf *c, const char *key, const char *v, char *msg,
			   size_t msglen, int *handled)
{
	struct engine_config *e = &c->engine;
	uint64_t n;
	static const struct {
		const char *key;
		uint64_t max;
	} keys[] = {
		{"max_inflight_messages", 65535},  {"max_queued_messages", UINT32_MAX},
		{"max_queued_bytes", UINT64_MAX},  {"message_size_limit", CODEC_MAX_REMAINING},
		{"max_packet_size", CODEC_MAX_REMAINING}, {"max_keepalive", 65535},
		{"sys_interval", UINT32_MAX},      {"max_topic_alias", 65535},
		{"max_qos", 2},                    {"midge_max_subscriptions", UINT32_MAX},
		{"midge_max_topic_levels", UINT32_MAX}, {"midge_max_client_id_len", 65535},
		{"midge_receive_maximum", 65535},  {"midge_max_session_expiry", UINT32_MAX},
		{"midge_max_packet_before_connect", CODEC_MAX_REMAINING},
		{"midge_max_output_bytes", UINT64_MAX}, {"midge_connect_timeout", 86400},
		{"midge_hooks_hwm", INT32_MAX},    {"max_inflight_bytes", UINT64_MAX},
		{"midge_max_sessions", UINT32_MAX}, {"midge_max_retained_messages", UINT32_MAX},
		{"midge_max_retained_bytes", UINT64_MAX}, {"midge_max_pending_connects", INT32_MAX},
		{"midge_auth_threads", 1024},      {"midge_auth_queue", 1000000},
		{"websockets_headers_size", 1u << 20},
		{"midge_hooks_queue_bytes", (uint64_t)1 << 40}, {"midge_hooks_max_prefixes", INT32_MAX},
		{"midge_hooks_nice", 19},
		{"memory_limit", UINT64_MAX},
		{"autosave_interval", UINT32_MAX}, {"midge_persist_commit_delay_ms", 1000},
		{"midge_persist_max_acks_held", UINT32_MAX},
	};
	size_t i;
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(key, keys[i].key) == 0)
			break;
	if (i == sizeof(keys) / sizeof(keys[0])) {
		*handled = 0;
		return 0;
	}
	*handled = 1;
	if (conf_parse_u64(v, keys[i].max, &n) < 0)
		return conf_fail(msg, msglen, "%s needs a number 0..%llu, not '%s'", key,
				 (unsigned long long)keys[i].max, v ? v : "");
	switch (i) {
	case 0:
		/* Mosquitto: 0 means no limit; the window cannot exceed 65535. */
		e->max_inflight = n ? (uint16_t)n : 65535;
		break;
	case 1:
		e->max_queued_messages = (uint32_t)n;
		if (!n) {
			/* Mosquitto's "unlimited"; midge keeps every queue bounded */
			snprintf(msg, msglen,
				 "max_queued_messages 0 means %u messages per client in midge "
				 "(max_queued_bytes still applies)",
				 ENGINE_MAX_QUEUED);
			return 1;
		}
		break;
	case 2: e->max_queued_bytes = n; break;
	case 3:
		/* A payload bound, as in Mosquitto; max_packet_size stays the
		 * framer's whole-packet bound. */
		e->message_size_limit = (uint32_t)n;
		break;
	case 4: e->max_packet_size = n ? (uint32_t)n : CODEC_MAX_REMAINING; break;
	case 5: e->max_keepalive = (uint16_t)n; break;
	case 6: c->sys_interval = (uint32_t)n; break;
	case 7: e->topic_alias_max = (uint16_t)n; break;
	case 8: e->max_qos = (uint8_t)n; break;
	case 9: e->max_subscriptions = (uint32_t)n; break;
	case 10: e->max_topic_levels = (uint32_t)n; break;
	case 11: e->max_client_id_len = (uint32_t)n; break;
	case 12: e->receive_max = n ? (uint16_t)n : 65535; break;
	case 13: e->max_session_expiry = (uint32_t)n; break;
	case 14: e->max_packet_before_connect = (uint32_t)n; break;
	case 15: c->max_output_bytes = n; break;
	case 16: c->connect_timeout = (uint32_t)n; break;
	case 17: c->hooks_hwm = (int)n; break;
	case 18: e->max_inflight_bytes = n; break;
	case 19: e->max_sessions = (uint32_t)n; break;
	case 20: e->max_retained_messages = (uint32_t)n; break;
	case 21: e->max_retained_bytes = n; break;
	case 22: c->max_pending_connects = (int)n; break;
	case 23: c->auth_threads = (unsigned)n; break;
	case 24: c->auth_queue = (unsigned)n; break;
	case 25: c->ws_headers_size = n ? (uint32_t)n : CONF_DEFAULT_WS_HEADERS; break;
	case 26: c->hooks_queue_bytes = n; break;
	case 27: c->hooks_max_prefixes = (uint32_t)n; break;
	case 28: c->hooks_nice = (int)n; break;
	case 29: c->memory_limit = n; break;
	case 30: c->autosave_interval = (uint32_t)n; break;
	case 31: c->persist_commit_delay_ms = (uint32_t)n; break;
	case 32: e->max_acks_held = (uint32_t)n; break;
	}
	return 0;
}

/* The boolean keys: true or false into a field of struct conf. */
static int conf_set_bool(struct conf *c, const char *key, const char *v, char *msg,
			 size_t msglen, int *handled)
{
	static const struct conf_field keys[] = { /* bool in struct conf */
		{"queue_qos0_messages", offsetof(struct conf, engine.queue_qos0_messages)},
		{"retain_available", offsetof(struct conf, engine.retain_available)},
		{"allow_zero_length_clientid", offsetof(struct conf, engine.allow_zero_length_clientid)},
		{"upgrade_outgoing_qos", offsetof(struct conf, engine.upgrade_outgoing_qos)},
		{"log_timestamp", offsetof(struct conf, log_timestamp)},
		{"connection_messages", offsetof(struct conf, connection_messages)},
		{"midge_wildcard_subscriptions", offsetof(struct conf, engine.wildcard_sub_available)},
		{"midge_subscription_identifiers", offsetof(struct conf, engine.sub_id_available)},
		{"midge_shared_subscriptions", offsetof(struct conf, engine.shared_sub_available)},
		{"midge_check_payload_format", offsetof(struct conf, engine.check_payload_format)},
		{"check_retain_source", offsetof(struct conf, engine.check_retain_source)},
		{"persistence", offsetof(struct conf, persistence)},
		{"autosave_on_changes", offsetof(struct conf, autosave_on_changes)},
		{"midge_persist_quick_check", offsetof(struct conf, persist_quick_check)},
	};
	bool *dst = conf_field_find(c, keys, sizeof(keys) / sizeof(keys[0]), key);
	if (!dst) {
		*handled = 0;
		return 0;
	}
	*handled = 1;
	if (conf_parse_bool(v, dst) < 0)
		return conf_fail(msg, msglen, "%s needs true or false, not '%s'", key, v ? v : "");
	return 0;
}

int conf_set_limits(struct conf *c, const char *key, const char *v, char *msg, size_t msglen,
		    int *handled)
{
	int rc = conf_set_number(c, key, v, msg, msglen, handled);
	if (*handled)
		return rc;
	rc = conf_set_bool(c, key, v, msg, msglen, handled);
	if (*handled)
		return rc;
	*handled = 1;
	if (strcmp(key, "midge_cluster_buffer") == 0) {
		/* what may wait for NATS each way: at least 1 MiB */
		if (conf_parse_u64(v, (uint64_t)1 << 40, &c->cluster_buffer) < 0 ||
		    c->cluster_buffer < (1u << 20))
			return conf_fail(msg, msglen,
					 "midge_cluster_buffer needs a byte count 1048576..2^40, not '%s'", v);
		return 0;
	}
	if (strcmp(key, "midge_cluster_checkpoint_ms") == 0) {
		/* 0: no checkpoints (a dead node's sessions are lost, as before) */
		uint64_t n;
		if (conf_parse_u64(v, 3600000, &n) < 0 || (n && n < 10))
			return conf_fail(msg, msglen,
					 "midge_cluster_checkpoint_ms needs 0 (off) or 10..3600000, not '%s'", v);
		c->cluster_checkpoint_ms = (uint32_t)n;
		c->cluster_checkpoint_set = true;
		return 0;
	}
	if (strcmp(key, "midge_cluster_journal_bytes") == 0) {
		/* 0: no journal (a dead node's sessions resume as of their checkpoint) */
		if (conf_parse_u64(v, (uint64_t)1 << 44, &c->cluster_journal) < 0 ||
		    (c->cluster_journal && c->cluster_journal < (1u << 20)))
			return conf_fail(msg, msglen,
					 "midge_cluster_journal_bytes needs 0 (off) or a byte count 1048576..2^44, not '%s'",
					 v);
		c->cluster_journal_set = true;
		return 0;
	}
	if (strcmp(key, "midge_io_threads") == 0) {
		uint64_t n;
		if (strcmp(v, "auto") == 0) {
			c->io_threads = -1;
			return 0;
		}
		if (conf_parse_u64(v, 64, &n) < 0)
			return conf_fail(msg, msglen, "midge_io_threads needs auto or 0..64, not '%s'", v);
		c->io_threads = (int)n;
		return 0;
	}
	if (strcmp(key, "persistent_client_expiration") == 0) {
		if (conf_parse_duration(v, &c->engine.persistent_client_expiration) < 0)
			return conf_fail(msg, msglen,
					 "persistent_client_expiration needs a duration like 2h, 3d, "
					 "1w, 6m, 1y, not '%s'",
					 v);
		return 0;
	}
	*handled = 0;
	return 0;
}
