/*
 * topic_debug.h - introspection for tests and benchmarks of the trie and the
 * retained store; not part of the engine's contract (engine/topic.h).
 */
#ifndef MIDGE_TOPIC_DEBUG_H
#define MIDGE_TOPIC_DEBUG_H

#include <stddef.h>

#include "engine/topic.h"

/* Trie nodes currently allocated, the root excluded: 0 once every
 * subscription is gone, which is how tests see pruning. */
size_t topic_tree_node_count(const struct topic_tree *t);

/* Shared groups currently allocated. */
size_t topic_tree_group_count(const struct topic_tree *t);

/* Retained-store nodes currently allocated, the root excluded. */
size_t retain_store_node_count(const struct retain_store *r);

#endif
