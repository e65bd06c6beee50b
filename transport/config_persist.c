/*
 * config_persist.c - persistence's keys beyond plain numbers, switches and
 * paths: midge_persist_sync, midge_persist_damaged, midge_history (the
 * replay logs), and the database path persistence_location and
 * persistence_file make (docs/persistence.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "transport/config_internal.h"

/* midge_persist_sync ack | periodic [SECONDS] */
static int conf_set_persist_sync(struct conf *c, const char *v, char *msg, size_t msglen)
{
	char mode[16] = "", secs[24] = "", extra[2] = "";
	uint64_t n;
	int k = sscanf(v, "%15s %23s %1s", mode, secs, extra);
	if (k == 1 && strcmp(mode, "ack") == 0) {
		c->persist_sync = CONF_PERSIST_ACK;
		return 0;
	}
	if (k >= 1 && k <= 2 && strcmp(mode, "periodic") == 0) {
		c->persist_sync = CONF_PERSIST_PERIODIC;
		c->persist_period_set = k == 2;
		if (k == 2) {
			if (conf_parse_u64(secs, UINT32_MAX, &n) < 0)
				return conf_fail(msg, msglen,
						 "midge_persist_sync periodic needs a number of seconds, "
						 "not '%s'", secs);
			c->persist_period = (uint32_t)n;
		}
		return 0;
	}
	return conf_fail(msg, msglen,
			 "midge_persist_sync needs 'ack' or 'periodic [SECONDS]', not '%s'", v);
}

/* midge_history FILTER MAX_MESSAGES [MAX_AGE_SECONDS] */
static int conf_set_history(struct conf *c, const char *v, char *msg, size_t msglen)
{
	char filter[1024] = "", max[24] = "", age[24] = "", extra[2] = "";
	uint64_t n, a = 0;
	int k = sscanf(v, "%1023s %23s %23s %1s", filter, max, age, extra);
	if (k < 2 || k > 3 || conf_parse_u64(max, UINT32_MAX, &n) < 0 || n == 0 ||
	    (k == 3 && conf_parse_u64(age, UINT32_MAX, &a) < 0))
		return conf_fail(msg, msglen,
				 "midge_history needs FILTER MAX_MESSAGES [MAX_AGE_SECONDS] (a count "
				 "from 1, seconds from 0), not '%s'", v);
	size_t fl = strlen(filter);
	if (!codec_topic_filter_valid((const uint8_t *)filter, fl) || strncmp(filter, "$share/", 7) == 0 ||
	    strncmp(filter, "$replay/", 8) == 0)
		return conf_fail(msg, msglen, "midge_history: '%s' is not a topic filter a log can keep",
				 filter);
	for (int i = 0; i < c->n_history; i++)
		if (strcmp(c->history[i].filter, filter) == 0)
			return conf_fail(msg, msglen, "midge_history: '%s' appears twice", filter);
	if (c->n_history >= CONF_MAX_HISTORY)
		return conf_fail(msg, msglen, "at most %d midge_history lines", CONF_MAX_HISTORY);
	struct conf_history *h = &c->history[c->n_history];
	h->filter = strdup(filter);
	if (!h->filter)
		return conf_fail(msg, msglen, "out of memory");
	h->max_messages = (uint32_t)n;
	h->max_age_s = (uint32_t)a;
	c->n_history++;
	return 0;
}

int conf_persist_path(const struct conf *c, char *buf, size_t len)
{
	const char *dir = c->persistence_location && *c->persistence_location ? c->persistence_location
									      : NULL;
	const char *file = c->persistence_file && *c->persistence_file ? c->persistence_file
								       : CONF_DEFAULT_PERSISTENCE_FILE;
	int n;
	if (!dir || file[0] == '/')
		n = snprintf(buf, len, "%s", file);
	else
		n = snprintf(buf, len, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", file);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int conf_set_persist(struct conf *c, const char *key, const char *v, char *msg, size_t msglen,
		     int *handled)
{
	*handled = 1;
	if (strcmp(key, "midge_persist_sync") == 0)
		return conf_set_persist_sync(c, v, msg, msglen);
	if (strcmp(key, "midge_persist_damaged") == 0) {
		if (strcmp(v, "stop") != 0 && strcmp(v, "move") != 0)
			return conf_fail(msg, msglen, "midge_persist_damaged needs stop or move, not '%s'", v);
		c->persist_move_damaged = strcmp(v, "move") == 0;
		return 0;
	}
	if (strcmp(key, "midge_history") == 0)
		return conf_set_history(c, v, msg, msglen);
	*handled = 0;
	return 0;
}
