/*
 * acl_trie.h - the compiled form of an acl_file (internal to auth/: the
 * parser acl_parse.c builds it, the decisions in acl.c read it).
 *
 * Every section (the anonymous one, each user's, the patterns without
 * %u, the patterns with %u) is a trie of topic levels in one node array.
 * A node knows its `+`, `%c` and `%u` children and the access bits of the
 * rules that end at it (`here`) and of the rules that end with `#` just
 * below it (`hash`); literal children are found in one hash table keyed
 * by (parent node, level text). Each section also keeps its rules' text
 * for the subscription check, which compares filters with rules one by
 * one (SUBSCRIBE is rare; PUBLISH and delivery walk the tries).
 */
#ifndef MIDGE_AUTH_ACL_TRIE_H
#define MIDGE_AUTH_ACL_TRIE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/acl.h"

#define ACL_DENY 4u /* access bits: ACL_READ | ACL_WRITE | ACL_DENY */

/* The kind of one level of a rule or filter. */
enum lv_kind { LV_LIT, LV_PLUS, LV_HASH, LV_PAT_C, LV_PAT_U };

struct acl_node {
	uint32_t plus, pat_c, pat_u; /* child node index, 0 = none */
	uint8_t here;                /* rules ending at this node */
	uint8_t hash;                /* rules ending with '#' below this node */
};

/* A literal edge: child of parent reached by label. */
struct acl_edge {
	uint32_t parent, child;
	uint32_t hv;
	uint32_t len;
	char *label;
};

struct acl_rule {
	uint8_t access; /* ACL_READ | ACL_WRITE, or ACL_DENY */
	uint32_t len;
	char *topic;
};

/* One section: its trie's root and its rules in file order. */
struct acl_list {
	uint32_t root; /* 0 = the section has no rule */
	struct acl_rule *rules;
	uint32_t n, cap;
};

struct acl_user {
	char *name;
	size_t len;
	uint32_t hv;
	struct acl_list list;
};

struct acl {
	struct acl_node *nodes; /* [0] is unused: index 0 means none */
	uint32_t n_nodes, cap_nodes;
	struct acl_edge *edges; /* open addressing, at most half full */
	uint32_t edge_cap, n_edges;
	struct acl_user *users; /* open addressing by name */
	uint32_t user_cap, n_users;
	struct acl_list anon;
	struct acl_list pat;   /* patterns without %u */
	struct acl_list pat_u; /* patterns with %u somewhere: skipped for anonymous clients */
	size_t n_rules;
};

/* A new empty node's index, or 0 (out of memory or over ACL_MAX_NODES). */
uint32_t acl_node_new(struct acl *a);

/* The literal child of parent named label, created when create is set.
 * Returns 0 when there is none (or on OOM when creating). Lookups
 * (create false) do not change a. */
uint32_t acl_child(struct acl *a, uint32_t parent, const char *label, size_t len, bool create);

/* The kind of level p[0..n) of a rule (patterns: whole-level %c / %u). */
enum lv_kind acl_level_kind(const char *p, size_t n, bool pattern);

/* Adds rule topic[0..len) (checked by the parser) with access bits to l:
 * its text, kept for the subscription check, and its trie. Returns 0 or
 * -1 (out of memory or nodes). */
int acl_list_add(struct acl *a, struct acl_list *l, const char *topic, size_t len, uint8_t bits,
		 bool pattern);

/* The section of user name[0..len), or NULL when it has none. */
const struct acl_user *acl_user_find(const struct acl *a, const char *name, size_t len);

/* The section of user name (created on its first rule, as Mosquitto
 * does), or NULL on OOM. */
struct acl_list *acl_user_list(struct acl *a, const char *name, size_t len);

#endif
