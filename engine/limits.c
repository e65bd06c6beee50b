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
 * The framer's limit for the next packet. Before CONNECT it is the
 * smaller of the two bounds: the pre-CONNECT limit exists to make an
 * unauthenticated peer cheaper, never to let it past max_packet_size.
 */
uint32_t engine_conn_max_packet(const struct engine_conn *c)
{
	const struct engine_config *cfg = &c->e->cfg;
	uint32_t max = cfg->max_packet_size;
	if (c->state == CONN_NEW && cfg->max_packet_before_connect &&
	    (!max || cfg->max_packet_before_connect < max))
		max = cfg->max_packet_before_connect;
	return max;
}
