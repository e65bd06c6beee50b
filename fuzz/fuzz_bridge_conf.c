/*
 * fuzz_bridge_conf.c - bridge/conf.c on arbitrary text: lines "key value"
 * applied as conf_load() applies them to bridge keys, then the whole-file
 * check. The parser must accept or refuse each line without a crash, a
 * leak or a read past it, keep its bounds (bridges, addresses, topic
 * lines), and every accepted topic line must have valid filters on both
 * sides.
 */
#include "bridge/conf.h"

#include "fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bridge_confs bs = {0};
	char line[4096], msg[512], err[1024], buf[1024];
	size_t i = 0;
	while (i < size) {
		size_t n = 0;
		while (i < size && data[i] != '\n' && n < sizeof line - 1)
			line[n++] = (char)data[i++];
		while (i < size && data[i] != '\n')
			i++;
		i++;
		line[n] = '\0';
		if (strlen(line) != n)
			continue; /* conf_load() reads text: no NUL inside a line */
		char *v = strchr(line, ' ');
		if (v)
			*v++ = '\0';
		if (!bridge_conf_is_key(line))
			continue;
		(void)bridge_conf_set(&bs, line, v, "fuzz:1", msg, sizeof msg);
		FUZZ_CHECK(strlen(msg) < sizeof msg);
	}
	FUZZ_CHECK(bs.n <= BRIDGE_MAX_BRIDGES);
	for (int k = 0; k < bs.n; k++) {
		const struct bridge_conf *b = &bs.v[k];
		FUZZ_CHECK(b->n_addrs <= BRIDGE_MAX_ADDRESSES && b->n_topics <= BRIDGE_MAX_TOPICS);
		for (int t = 0; t < b->n_topics; t++) {
			const struct bridge_topic *bt = &b->topics[t];
			FUZZ_CHECK(codec_topic_filter_valid((const uint8_t *)bt->local_filter,
							    strlen(bt->local_filter)));
			FUZZ_CHECK(codec_topic_filter_valid((const uint8_t *)bt->remote_filter,
							    strlen(bt->remote_filter)));
			FUZZ_CHECK(bt->qos <= 2 && bt->dir >= BRIDGE_OUT && bt->dir <= BRIDGE_BOTH);
		}
		(void)bridge_conf_remote_clientid(b, buf, sizeof buf);
		(void)bridge_conf_local_clientid(b, buf, sizeof buf);
		(void)bridge_conf_notification_topic(b, buf, sizeof buf);
	}
	(void)bridge_conf_check(&bs, err, sizeof err);
	bridge_confs_clear(&bs);
	return 0;
}
