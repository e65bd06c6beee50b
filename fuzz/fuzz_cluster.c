/*
 * fuzz_cluster.c - what a node accepts from NATS: the message decoder
 * (cluster/wire.h), the lists of messages (a bundle, a journal record)
 * and the retained bucket's key parser (cluster/subject.h) on arbitrary
 * bytes. Every view lies inside the input; a decoded message encodes
 * back to the same bytes, so does a whole list; a parsed key is the key
 * of what it parsed to.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/subject.h"
#include "cluster/wire.h"
#include "fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int inside(const uint8_t *p, size_t n, const uint8_t *b, size_t size)
{
	return n == 0 || (p >= b && p + n <= b + size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct engine_cluster_msg m;
	if (cluster_wire_decode(data, size, &m) == 0) {
		FUZZ_CHECK(inside(m.topic, m.topic_len, data, size));
		FUZZ_CHECK(inside(m.origin_id, m.origin_len, data, size));
		FUZZ_CHECK(inside(m.props, m.props_len, data, size));
		FUZZ_CHECK(inside(m.payload, m.payload_len, data, size));
		FUZZ_CHECK(m.qos <= 2);
		FUZZ_CHECK(cluster_wire_size(&m) == size);
		uint8_t *again = malloc(size);
		FUZZ_CHECK(again != NULL);
		cluster_wire_encode(again, &m);
		FUZZ_CHECK(memcmp(again, data, size) == 0);
		free(again);
	}
	const char tags[2] = {'B', 'J'};
	for (int t = 0; t < 2; t++) {
		const uint8_t *msg;
		size_t at = 0, len, n = CLUSTER_LIST_HEAD;
		int rc;
		uint8_t *again = malloc(size + CLUSTER_LIST_HEAD); /* the head even when size is 0 */
		FUZZ_CHECK(again != NULL);
		cluster_wire_list_start(again, tags[t]);
		while ((rc = cluster_wire_list_next(data, size, tags[t], &at, &msg, &len)) > 0) {
			FUZZ_CHECK(inside(msg, len, data, size));
			FUZZ_CHECK(n + CLUSTER_LIST_ITEM + len <= size);
			cluster_wire_list_put(again + n, msg, len);
			n += CLUSTER_LIST_ITEM + len;
		}
		if (rc == 0)
			FUZZ_CHECK(n == size && memcmp(again, data, size) == 0);
		free(again);
	}
	uint8_t topic[4096];
	char key[3 * 4096 + 1];
	int tl = cluster_key_parse(topic, sizeof topic, (const char *)data, size);
	if (tl > 0) {
		int kl = cluster_key_topic(key, sizeof key, topic, (size_t)tl);
		FUZZ_CHECK(kl > 0);
		uint8_t back[4096];
		FUZZ_CHECK(cluster_key_parse(back, sizeof back, key, (size_t)kl) == tl);
		FUZZ_CHECK(memcmp(back, topic, (size_t)tl) == 0);
	}
	return 0;
}
