/*
 * alias.c - MQTT 5 topic aliases both ways: resolving the ones a client
 * sets, choosing the ones midge sets towards a client, freeing both.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

/*
 * Resolves a v5 topic alias [MQTT-3.3.2-7]: a PUBLISH with a topic sets
 * the alias, one without uses it. Returns 0 with *topic / *len set, or a
 * reason code for DISCONNECT.
 */
uint8_t alias_resolve(struct engine_conn *c, uint16_t a, const uint8_t **topic, size_t *len,
			     const char **why)
{
	if (a == 0 || a > c->in_alias_max) { /* [MQTT-3.3.2-8] [MQTT-3.3.2-9] */
		*why = "topic alias out of range";
		return MQTT_RC_TOPIC_ALIAS_INVALID;
	}
	if (!c->aliases)
		c->aliases = calloc(1, sizeof *c->aliases);
	if (c->aliases && !c->aliases->in)
		c->aliases->in = calloc(c->in_alias_max, sizeof *c->aliases->in);
	if (!c->aliases || !c->aliases->in) {
		*why = "out of memory";
		return MQTT_RC_IMPLEMENTATION_SPECIFIC;
	}
	struct alias *al = &c->aliases->in[a - 1];
	if (*len == 0) {
		if (!al->len) {
			*why = "unknown topic alias";
			return MQTT_RC_PROTOCOL_ERROR;
		}
		*topic = al->p;
		*len = al->len;
		return 0;
	}
	if (*len > al->cap) {
		uint8_t *n = realloc(al->p, *len);
		if (!n) {
			*why = "out of memory";
			return MQTT_RC_IMPLEMENTATION_SPECIFIC;
		}
		al->p = n;
		al->cap = (uint16_t)*len;
	}
	memcpy(al->p, *topic, *len);
	al->len = (uint16_t)*len;
	return 0;
}
