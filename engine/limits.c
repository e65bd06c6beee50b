/*
 * limits.c - configured bounds and access decisions: the one check a
 * PUBLISH and a will both pass (QoS, retain, size, topic depth, ACL),
 * the framer's per-connection packet limit.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

bool limits_acl_allows(struct engine *e, const struct midge_client *cl, const uint8_t *topic,
		       size_t len, enum engine_access access)
{
	if (!e->has_auth || !e->auth.acl)
		return true;
	return e->auth.acl(e->auth.ctx, cl, topic, len, access) == 0;
}

static uint32_t topic_levels(const uint8_t *p, size_t n)
{
	uint32_t levels = 1;
	for (size_t i = 0; i < n; i++)
		if (p[i] == '/')
			levels++;
	return levels;
}

bool limits_topic_too_deep(const struct engine *e, const uint8_t *p, size_t n)
{
	return e->cfg.max_topic_levels && topic_levels(p, n) > e->cfg.max_topic_levels;
}

/*
 * The one check a message passes before midge accepts it, a PUBLISH and a
 * will alike: QoS within max_qos [MQTT-3.2.2-11] [MQTT-3.2.2-12], retain
 * only where available [MQTT-3.2.2-13] [MQTT-3.2.2-14], payload within
 * message_size_limit, topic depth within max_topic_levels, and the publish
 * ACL. Returns the first bound broken, in that order, or LIMITS_OK; the
 * caller answers as its packet requires (limits_verdict_* below).
 */
enum limits_verdict limits_check_message(struct engine *e, const struct midge_client *from,
					 const uint8_t *topic, size_t len, size_t payload_len,
					 uint8_t qos, bool retain)
{
	const struct engine_config *cfg = &e->cfg;
	if (qos > cfg->max_qos)
		return LIMITS_QOS;
	if (retain && !cfg->retain_available)
		return LIMITS_RETAIN;
	if (cfg->message_size_limit && payload_len > cfg->message_size_limit)
		return LIMITS_SIZE;
	if (limits_topic_too_deep(e, topic, len))
		return LIMITS_DEPTH;
	if (!limits_acl_allows(e, from, topic, len, ENGINE_ACCESS_PUBLISH))
		return LIMITS_ACL;
	return LIMITS_OK;
}

/*
 * How a broken bound is answered, per packet: a PUBLISH's QoS and retain
 * refusals close the connection (fatal); its other refusals are the
 * acknowledgement's reason code. Mosquitto answers an oversized payload
 * 0x95, which PUBACK/PUBREC may not carry: 0x97 is the code for an
 * administrative limit. A will's refusal is the CONNACK's code (0x95 as
 * Mosquitto's, mapped for 3.1.1 by connack_v3_map).
 */
const struct limits_answer limits_answer_publish[LIMITS__COUNT] = {
	[LIMITS_QOS] = {MQTT_RC_QOS_NOT_SUPPORTED, true, "QoS not supported"},
	[LIMITS_RETAIN] = {MQTT_RC_RETAIN_NOT_SUPPORTED, true, "retain not supported"},
	[LIMITS_SIZE] = {MQTT_RC_QUOTA_EXCEEDED, false, "payload over message_size_limit"},
	[LIMITS_DEPTH] = {MQTT_RC_TOPIC_NAME_INVALID, false, "topic has too many levels"},
	[LIMITS_ACL] = {MQTT_RC_NOT_AUTHORIZED, false, "publish not authorized"},
};

const struct limits_answer limits_answer_will[LIMITS__COUNT] = {
	[LIMITS_QOS] = {MQTT_RC_QOS_NOT_SUPPORTED, true, "will QoS not supported"},
	[LIMITS_RETAIN] = {MQTT_RC_RETAIN_NOT_SUPPORTED, true, "retained will not supported"},
	[LIMITS_SIZE] = {MQTT_RC_PACKET_TOO_LARGE, true, "will payload over message_size_limit"},
	[LIMITS_DEPTH] = {MQTT_RC_TOPIC_NAME_INVALID, true, "will topic has too many levels"},
	[LIMITS_ACL] = {MQTT_RC_NOT_AUTHORIZED, true, "will topic not authorized"},
};

/*
 * The framer's limit for the next packet. Before CONNECT it is the
 * smaller of the two bounds: the pre-CONNECT limit exists to make an
 * unauthenticated peer cheaper, never to let it past max_packet_size.
 * A CONNECT waiting for its authentication counts as before.
 */
uint32_t engine_conn_max_packet(const struct engine_conn *c)
{
	const struct engine_config *cfg = &c->e->cfg;
	uint32_t max = cfg->max_packet_size;
	if (c->state < CONN_UP && cfg->max_packet_before_connect &&
	    (!max || cfg->max_packet_before_connect < max))
		max = cfg->max_packet_before_connect;
	return max;
}
