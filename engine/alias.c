/*
 * alias.c - MQTT 5 topic aliases both ways: resolving the ones a client
 * sets (inbound), choosing and learning the ones midge sets towards a
 * client (outbound), and freeing both with the connection. Both tables
 * live out of line in struct conn_aliases, allocated on first use.
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
	struct alias *entry = &c->aliases->in[a - 1];
	if (*len == 0) {
		if (!entry->len) {
			*why = "unknown topic alias";
			return MQTT_RC_PROTOCOL_ERROR;
		}
		*topic = entry->p;
		*len = entry->len;
		return 0;
	}
	if (*len > entry->cap) {
		uint8_t *n = realloc(entry->p, *len);
		if (!n) {
			*why = "out of memory";
			return MQTT_RC_IMPLEMENTATION_SPECIFIC;
		}
		entry->p = n;
		entry->cap = (uint16_t)*len;
	}
	memcpy(entry->p, *topic, *len);
	entry->len = (uint16_t)*len;
	return 0;
}

/*
 * The client's CONNECT accepts `client_max` aliases from us: midge uses up
 * to OUT_ALIAS_CAP of them. Without memory it uses none, which the
 * specification allows.
 */
void alias_out_enable(struct engine_conn *c, uint16_t client_max)
{
	if (!client_max)
		return;
	if (!c->aliases)
		c->aliases = calloc(1, sizeof *c->aliases);
	if (c->aliases && !c->aliases->out)
		c->aliases->out = calloc(OUT_ALIAS_CAP, sizeof *c->aliases->out);
	if (c->aliases && c->aliases->out)
		c->out_alias_max = client_max < OUT_ALIAS_CAP ? client_max : OUT_ALIAS_CAP;
}

/*
 * The alias for a PUBLISH of topic to c: an alias already taught (then the
 * topic is left out), a new one while any is free (taught by this packet,
 * learnt by alias_out_learn() once it is queued), or none (0)
 * [MQTT-3.3.2-11].
 */
struct alias_choice alias_out_choose(const struct engine_conn *c, const uint8_t *topic,
				     size_t len)
{
	struct alias_choice ch = {0, false, 0};
	if (!c->out_alias_max)
		return ch;
	ch.hash = engine_hash_bytes(topic, len);
	for (uint16_t a = 0; a < c->out_alias_used; a++) {
		const struct out_alias *oa = &c->aliases->out[a];
		if (oa->hash == ch.hash && oa->len == len && memcmp(oa->topic, topic, len) == 0) {
			ch.alias = (uint16_t)(a + 1);
			return ch;
		}
	}
	if (c->out_alias_used < c->out_alias_max) {
		ch.alias = (uint16_t)(c->out_alias_used + 1);
		ch.is_new = true;
	}
	return ch;
}

/* The packet teaching a new alias is queued: from now on it stands for
 * topic. Without memory the alias is simply never used again. */
void alias_out_learn(struct engine_conn *c, const struct alias_choice *ch, const uint8_t *topic,
		     size_t len)
{
	struct out_alias *oa = &c->aliases->out[ch->alias - 1];
	oa->topic = (uint8_t *)engine_dup_bytes(topic, len);
	if (oa->topic) {
		oa->hash = ch->hash;
		oa->len = (uint16_t)len;
		c->out_alias_used++;
	}
}

/* Frees both tables of c. */
void alias_free(struct engine_conn *c)
{
	if (!c->aliases)
		return;
	if (c->aliases->in) {
		for (uint32_t i = 0; i < c->in_alias_max; i++)
			free(c->aliases->in[i].p);
		free(c->aliases->in);
	}
	for (uint32_t i = 0; i < c->out_alias_used; i++)
		free(c->aliases->out[i].topic);
	free(c->aliases->out);
	free(c->aliases);
	c->aliases = NULL;
}
