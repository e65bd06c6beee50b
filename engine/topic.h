/*
 * topic.h - the subscription trie and the retained-message store.
 *
 * Keyed by topic level; '+' and '#' children kept apart from literal ones,
 * so matching cost grows with the topic's depth, not with the number of
 * subscriptions. '$'-topics are not matched by a leading wildcard
 * [MQTT-4.7.2-1]. "$share/GROUP/FILTER" subscriptions form groups that
 * receive each message once, round robin.
 *
 * Subscribers are opaque pointers (the engine's sessions). Neither
 * structure calls back into the engine except through the callbacks given.
 */
#ifndef MIDGE_TOPIC_H
#define MIDGE_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct topic_tree;

struct topic_tree *topic_tree_new(void);
void topic_tree_free(struct topic_tree *t);

/*
 * Adds subscriber's subscription to filter (validated by the caller; may be
 * a $share/ filter), or replaces its options and identifier if it exists
 * [MQTT-3.8.4-3]. options is the SUBSCRIBE options byte (QoS, no-local,
 * retain-as-published, retain handling); sub_id 0 means none.
 * Returns 1 when it replaced, 0 when new, -1 on OOM.
 */
int topic_tree_subscribe(struct topic_tree *t, const uint8_t *filter, size_t len, void *subscriber,
			 uint8_t options, uint32_t sub_id);

/* Removes it. Returns 0, or -1 when subscriber had no such subscription. */
int topic_tree_unsubscribe(struct topic_tree *t, const uint8_t *filter, size_t len,
			   void *subscriber);

/*
 * Called once per matching subscription (a subscriber with overlapping
 * subscriptions is called once for each; the engine merges). For a shared
 * group, members are offered one at a time in round-robin order, starting
 * after the member chosen last, until a callback returns true; the group
 * is then done for this message. Non-shared calls ignore the return value.
 */
typedef bool (*topic_match_cb)(void *ctx, void *subscriber, uint8_t options, uint32_t sub_id,
			       bool shared);

/* Matches a topic name. Allocates nothing. */
void topic_tree_match(struct topic_tree *t, const uint8_t *topic, size_t len, topic_match_cb cb,
		      void *ctx);

/* Calls cb as topic_tree_match() does, but only for the subscriptions
 * (and shared groups) of exactly filter f[0..len) (no $share/ prefix): a
 * message the cluster received for that filter. */
void topic_tree_match_filter(struct topic_tree *t, const uint8_t *f, size_t len, topic_match_cb cb,
			     void *ctx);

/* Offers one message to the group of shared subscription f[0..len)
 * ("$share/NAME/FILTER") as a match would: cb for its members in turn
 * until one accepts. Returns false when there is no such group. */
bool topic_tree_offer_group(struct topic_tree *t, const uint8_t *f, size_t len, topic_match_cb cb,
			    void *ctx);
/* Whether topic name t[0..tlen) matches filter f[0..flen) (no $share/
 * prefix), with the '$' rule [MQTT-4.7.2-1]. */
bool topic_filter_matches(const uint8_t *f, size_t flen, const uint8_t *t, size_t tlen);
size_t topic_tree_count(const struct topic_tree *t);

struct retain_store;

/* unref is called on a message the store lets go of (replaced, cleared,
 * freed). */
struct retain_store *retain_store_new(void (*unref)(void *msg));
void retain_store_free(struct retain_store *r);

/*
 * Sets the retained message of topic (ownership: the store takes msg's
 * reference) or clears it (msg NULL). Returns 1 if a message was replaced or
 * cleared, 0 if there was none, -1 on OOM (msg is then not kept).
 */
int retain_store_set(struct retain_store *r, const uint8_t *topic, size_t len, void *msg);

/* Calls cb for every retained message whose topic matches filter (a plain
 * filter, without $share/). The message stays owned by the store. */
typedef void (*retain_match_cb)(void *ctx, void *msg);
void retain_store_match(struct retain_store *r, const uint8_t *filter, size_t len,
			retain_match_cb cb, void *ctx);

size_t retain_store_count(const struct retain_store *r);
/* With a size function the store keeps the sum of its messages' sizes
 * (set it while the store is empty). */
void retain_store_set_size(struct retain_store *r, size_t (*size)(const void *msg));
uint64_t retain_store_bytes(const struct retain_store *r);
/* The message retained for topic, or NULL. The store keeps owning it. */
void *retain_store_get(struct retain_store *r, const uint8_t *topic, size_t len);

#endif
