/*
 * topic_node.h - the trie's node and subscription records, shared by
 * topic.c (the trie, shared groups, matching) and topic_subs.c (a node's
 * plain subscriptions). Private to the topic tree.
 */
#ifndef MIDGE_TOPIC_NODE_H
#define MIDGE_TOPIC_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/topic_kids.h"

/* A node's plain subscriptions get a subscriber index above this many,
 * and drop it again below half of it. */
enum { TOPIC_IDX_MIN = 16 };
#define TOPIC_NONE UINT32_MAX

struct topic_sub {
	void *subscriber;
	uint32_t sub_id;
	uint8_t options;
};

/* One "$share/NAME/filter" group. Members keep their joining order;
 * `last` is the index of the member chosen last (TOPIC_NONE: start at 0). */
struct topic_group {
	struct topic_group *next;
	struct topic_sub *m;
	uint32_t n, cap;
	uint32_t last;
	uint32_t namelen;
	uint8_t name[];
};

/* The subscriptions of a node that has more than one plain subscription,
 * or any shared group. idx maps a subscriber to its position in v plus 1
 * (0: empty slot) once there are many. */
struct topic_subset {
	uint32_t n, cap;
	uint32_t idxcap;
	uint32_t *idx;
	struct topic_group *groups;
	struct topic_sub v[];
};

/* What a node's union s holds, in k.aux. A lone plain subscription, by far
 * the most common case, lives inline: no allocation, no pointer to chase. */
enum { TOPIC_SUBS_NONE = 0, TOPIC_SUBS_ONE = 1, TOPIC_SUBS_SET = 2 };

struct topic_node {
	struct topic_knode k;
	struct topic_node *plus;
	struct topic_node *hash;
	union {
		struct topic_sub one;
		struct topic_subset *set;
	} s;
	uint8_t level[];
};

struct topic_tree {
	struct topic_node *root;
	uint64_t seed;
	size_t count;
	size_t nodes;
	size_t groups;
};

#define TOPIC_OFF offsetof(struct topic_node, level)

struct topic_sub *topic_subs_find(struct topic_node *n, const void *subscriber);
int topic_subs_add(struct topic_node *n, const struct topic_sub *s);
void topic_subs_del(struct topic_node *n, struct topic_sub *sub);
struct topic_subset *topic_set_ensure(struct topic_node *n, uint32_t cap);
void topic_set_settle(struct topic_node *n);
void topic_set_free(struct topic_subset *set);

#endif
