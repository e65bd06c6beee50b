/*
 * topic.c - the subscription trie (see engine/topic.h and docs/routing.md).
 *
 * One node per filter level. Literal children sit in a hash table
 * (engine/topic_kids.c); the '+' and '#' children have their own pointers,
 * so a match visits only nodes whose filter prefix matches the topic's
 * prefix: at most a few per topic level, whatever the subscription count.
 *
 * A node holds the plain subscriptions of the filter that ends there
 * (subscriber + options + identifier: one inline in the node, more in an
 * array with a subscriber index once it grows) and the shared groups of
 * that filter, one per share name.
 *
 * Matching walks the trie without recursion and without a stack: going
 * back up uses the parent pointers and recomputes the topic offset, so it
 * allocates nothing and its stack use does not depend on topic depth.
 * Callbacks must not subscribe or unsubscribe on the tree being matched.
 */
#include "engine/topic.h"

#include <stdlib.h>
#include <string.h>

#include "engine/topic_debug.h"
#include "engine/topic_kids.h"

#include "engine/topic_node.h"


static struct topic_node *node_of(struct topic_knode *k)
{
	return (struct topic_node *)k;
}

static struct topic_node *node_new(struct topic_tree *t, const uint8_t *level, uint32_t len,
				   uint32_t hv)
{
	if (len > UINT16_MAX) /* longer than any MQTT topic: refused like OOM */
		return NULL;
	struct topic_node *n = calloc(1, sizeof(*n) + len);
	if (!n)
		return NULL;
	n->k.hv = hv;
	n->k.len = (uint16_t)len;
	if (len)
		memcpy(n->level, level, len);
	t->nodes++;
	return n;
}

struct topic_tree *topic_tree_new(void)
{
	struct topic_tree *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->root = calloc(1, sizeof(*t->root));
	if (!t->root) {
		free(t);
		return NULL;
	}
	/* No global state and no system call: the structure's own address
	 * (randomised by ASLR) seeds the level hash. */
	uint64_t a = (uint64_t)(uintptr_t)t ^ ((uint64_t)(uintptr_t)t->root << 17);
	t->seed = topic_kids_hash(0x6d69646765ULL, (const uint8_t *)&a, sizeof(a));
	t->seed = (t->seed << 32) ^ topic_kids_hash(t->seed, (const uint8_t *)&a, sizeof(a));
	return t;
}

static void group_free(struct topic_group *g)
{
	free(g->m);
	free(g);
}

/* Frees a node's subscription set with its shared groups. */
void topic_set_free(struct topic_subset *set)
{
	while (set->groups) {
		struct topic_group *g = set->groups;
		set->groups = g->next;
		group_free(g);
	}
	free(set->idx);
	free(set);
}

/* Frees every node without recursion: the parent field of nodes waiting to
 * be freed links them into a work list. */
void topic_tree_free(struct topic_tree *t)
{
	if (!t)
		return;
	struct topic_node *work = t->root;
	work->k.parent = NULL;
	while (work) {
		struct topic_node *n = work;
		work = node_of(n->k.parent);
		struct topic_node *push[2] = {n->plus, n->hash};
		for (int i = 0; i < 2; i++) {
			if (push[i]) {
				push[i]->k.parent = (struct topic_knode *)work;
				work = push[i];
			}
		}
		for (uint32_t i = 0; n->k.nkids && i < topic_kids_slots(&n->k); i++) {
			struct topic_knode *c = topic_kids_at(&n->k, i);
			if (c) {
				c->parent = (struct topic_knode *)work;
				work = node_of(c);
			}
		}
		topic_kids_release(&n->k);
		if (n->k.aux == TOPIC_SUBS_SET)
			topic_set_free(n->s.set);
		free(n);
	}
	free(t);
}

static bool node_empty(const struct topic_node *n)
{
	return n->k.nkids == 0 && !n->plus && !n->hash && n->k.aux == TOPIC_SUBS_NONE;
}

/* Removes empty nodes from n up to (not including) the root, so memory
 * follows the live subscriptions however much they churn. */
static void node_prune(struct topic_tree *t, struct topic_node *n)
{
	while (n != t->root && node_empty(n)) {
		struct topic_node *p = node_of(n->k.parent);
		if (p->plus == n)
			p->plus = NULL;
		else if (p->hash == n)
			p->hash = NULL;
		else
			topic_kids_del(&p->k, &n->k);
		free(n);
		t->nodes--;
		n = p;
	}
}

/* The child of n for level key[0..len), created if missing; NULL on OOM. */
static struct topic_node *node_child(struct topic_tree *t, struct topic_node *n,
				     const uint8_t *key, uint32_t len)
{
	struct topic_node **wild = NULL;
	if (len == 1 && key[0] == '+')
		wild = &n->plus;
	else if (len == 1 && key[0] == '#')
		wild = &n->hash;
	if (wild) {
		if (!*wild) {
			*wild = node_new(t, key, len, 0);
			if (*wild)
				(*wild)->k.parent = &n->k;
		}
		return *wild;
	}
	uint32_t hv = topic_kids_hash(t->seed, key, len);
	struct topic_knode *c = topic_kids_find(&n->k, hv, key, len, TOPIC_OFF);
	if (c)
		return node_of(c);
	struct topic_node *nn = node_new(t, key, len, hv);
	if (!nn)
		return NULL;
	if (topic_kids_add(&n->k, &nn->k) < 0) {
		free(nn);
		t->nodes--;
		return NULL;
	}
	return nn;
}

/* The node of filter f[0..len), created when create is set. With create,
 * NULL means OOM and whatever was created is pruned again. */
static struct topic_node *node_walk(struct topic_tree *t, const uint8_t *f, size_t len,
				    bool create)
{
	struct topic_node *n = t->root;
	size_t s = 0;
	for (;;) {
		const uint8_t *slash = memchr(f + s, '/', len - s);
		size_t e = slash ? (size_t)(slash - f) : len;
		struct topic_node *c;
		if (create) {
			c = node_child(t, n, f + s, (uint32_t)(e - s));
			if (!c) {
				node_prune(t, n);
				return NULL;
			}
		} else if (e - s == 1 && f[s] == '+') {
			c = n->plus;
		} else if (e - s == 1 && f[s] == '#') {
			c = n->hash;
		} else {
			uint32_t hv = topic_kids_hash(t->seed, f + s, e - s);
			c = node_of(topic_kids_find(&n->k, hv, f + s, (uint32_t)(e - s), TOPIC_OFF));
		}
		if (!c)
			return NULL;
		n = c;
		if (e == len)
			return n;
		s = e + 1;
	}
}

/* ---- shared groups ---------------------------------------------------- */

static struct topic_group *group_find(const struct topic_node *n, const uint8_t *name,
				      uint32_t len)
{
	if (n->k.aux != TOPIC_SUBS_SET)
		return NULL;
	for (struct topic_group *g = n->s.set->groups; g; g = g->next)
		if (g->namelen == len && memcmp(g->name, name, len) == 0)
			return g;
	return NULL;
}

static uint32_t group_member(const struct topic_group *g, const void *subscriber)
{
	for (uint32_t i = 0; i < g->n; i++)
		if (g->m[i].subscriber == subscriber)
			return i;
	return TOPIC_NONE;
}

/* Removes member i keeping the others' order; the member after it becomes
 * the next one offered if i was the one chosen last. */
static void group_del(struct topic_group *g, uint32_t i)
{
	memmove(&g->m[i], &g->m[i + 1], (g->n - i - 1) * sizeof(*g->m));
	g->n--;
	if (g->last != TOPIC_NONE && i <= g->last)
		g->last = g->last == 0 ? TOPIC_NONE : g->last - 1;
}

/* Unlinks and frees g, which belongs to n's subset. */
static void group_unlink(struct topic_tree *t, struct topic_node *n, struct topic_group *g)
{
	struct topic_group **link = &n->s.set->groups;
	while (*link != g)
		link = &(*link)->next;
	*link = g->next;
	group_free(g);
	t->groups--;
	topic_set_settle(n);
}

/* Splits "$share/NAME/filter". Returns 1 (shared), 0 (plain) or -1 when
 * the share syntax is incomplete. */
static int share_split(const uint8_t **f, size_t *len, const uint8_t **name, uint32_t *namelen)
{
	static const char pfx[] = "$share/";
	size_t pl = sizeof(pfx) - 1;
	if (*len < pl || memcmp(*f, pfx, pl) != 0)
		return 0;
	const uint8_t *g = *f + pl;
	const uint8_t *slash = memchr(g, '/', *len - pl);
	if (!slash || slash == g || slash + 1 == *f + *len)
		return -1;
	*name = g;
	*namelen = (uint32_t)(slash - g);
	*len -= (size_t)(slash + 1 - *f);
	*f = slash + 1;
	return 1;
}

/* Adds subscriber to group name at n (creating the group). Returns 1 when
 * it was a member (options replaced), 0 when added, -1 on OOM. */
static int group_join(struct topic_tree *t, struct topic_node *n, const uint8_t *name,
		      uint32_t namelen, const struct topic_sub *s)
{
	struct topic_group *g = group_find(n, name, namelen);
	if (g) {
		uint32_t i = group_member(g, s->subscriber);
		if (i != TOPIC_NONE) {
			g->m[i] = *s; /* [MQTT-3.8.4-3] */
			return 1;
		}
	} else {
		uint32_t cnt = n->k.aux == TOPIC_SUBS_SET ? n->s.set->n
			       : n->k.aux == TOPIC_SUBS_ONE ? 1
							      : 0;
		struct topic_subset *set = topic_set_ensure(n, cnt);
		if (!set)
			return -1;
		g = calloc(1, sizeof(*g) + namelen);
		if (!g) {
			topic_set_settle(n);
			return -1;
		}
		memcpy(g->name, name, namelen);
		g->namelen = namelen;
		g->last = TOPIC_NONE;
		g->next = set->groups;
		set->groups = g;
		t->groups++;
	}
	if (g->n == g->cap) {
		uint32_t cap = g->cap ? g->cap * 2 : 2;
		struct topic_sub *m = realloc(g->m, cap * sizeof(*m));
		if (!m) {
			if (g->n == 0)
				group_unlink(t, n, g);
			return -1;
		}
		g->m = m;
		g->cap = cap;
	}
	g->m[g->n++] = *s;
	return 0;
}

/*
 * Plain: one entry per subscriber at the filter's node [MQTT-3.8.4-3].
 * Shared: one group per (name, filter) at the filter's node; a subscriber
 * is at most once in a group, and may be in any number of groups.
 */
int topic_tree_subscribe(struct topic_tree *t, const uint8_t *filter, size_t len, void *subscriber,
			 uint8_t options, uint32_t sub_id)
{
	const uint8_t *name = NULL;
	uint32_t namelen = 0;
	int shared = share_split(&filter, &len, &name, &namelen);
	if (shared < 0)
		return -1;
	struct topic_node *n = node_walk(t, filter, len, true);
	if (!n)
		return -1;
	struct topic_sub s = {.subscriber = subscriber, .sub_id = sub_id, .options = options};
	int rc;
	if (shared) {
		rc = group_join(t, n, name, namelen, &s);
	} else {
		struct topic_sub *old = topic_subs_find(n, subscriber);
		if (old) {
			*old = s; /* [MQTT-3.8.4-3] replace, keep one entry */
			rc = 1;
		} else {
			rc = topic_subs_add(n, &s);
		}
	}
	if (rc == 0)
		t->count++;
	else if (rc < 0)
		node_prune(t, n);
	return rc;
}

int topic_tree_unsubscribe(struct topic_tree *t, const uint8_t *filter, size_t len,
			   void *subscriber)
{
	const uint8_t *name = NULL;
	uint32_t namelen = 0;
	int shared = share_split(&filter, &len, &name, &namelen);
	if (shared < 0)
		return -1;
	struct topic_node *n = node_walk(t, filter, len, false);
	if (!n)
		return -1;
	if (!shared) {
		struct topic_sub *sub = topic_subs_find(n, subscriber);
		if (!sub)
			return -1;
		topic_subs_del(n, sub);
	} else {
		struct topic_group *g = group_find(n, name, namelen);
		uint32_t i = g ? group_member(g, subscriber) : TOPIC_NONE;
		if (i == TOPIC_NONE)
			return -1;
		group_del(g, i);
		if (g->n == 0)
			group_unlink(t, n, g);
	}
	t->count--;
	node_prune(t, n);
	return 0;
}

/* ---- matching --------------------------------------------------------- */

/* Offers g's members round robin, from the one after the member chosen
 * last, until one accepts; at most one delivery per group and message. */
static void group_offer(struct topic_group *g, topic_match_cb cb, void *ctx)
{
	uint32_t start = g->last == TOPIC_NONE ? 0 : (g->last + 1) % g->n;
	for (uint32_t k = 0; k < g->n; k++) {
		uint32_t i = (start + k) % g->n;
		const struct topic_sub *m = &g->m[i];
		if (cb(ctx, m->subscriber, m->options, m->sub_id, true)) {
			g->last = i;
			return;
		}
	}
}

static void node_emit(struct topic_node *n, topic_match_cb cb, void *ctx)
{
	if (n->k.aux == TOPIC_SUBS_ONE) {
		cb(ctx, n->s.one.subscriber, n->s.one.options, n->s.one.sub_id, false);
		return;
	}
	if (n->k.aux != TOPIC_SUBS_SET)
		return;
	struct topic_subset *set = n->s.set;
	for (uint32_t i = 0; i < set->n; i++)
		cb(ctx, set->v[i].subscriber, set->v[i].options, set->v[i].sub_id, false);
	for (struct topic_group *g = set->groups; g; g = g->next)
		group_offer(g, cb, ctx);
}

/*
 * Depth-first over the nodes matching the topic. State: node n and s, the
 * offset of the topic level after n's (s > len once the topic is used up).
 * At each node: its '#' child matches whatever is left, including nothing
 * ("sport/#" matches "sport"); if the topic is used up, n itself matches;
 * otherwise descend to the literal child, then to the '+' child. Leading
 * wildcards do not match '$' topics [MQTT-4.7.2-1].
 */
void topic_tree_match(struct topic_tree *t, const uint8_t *topic, size_t len, topic_match_cb cb,
		      void *ctx)
{
	struct topic_node *root = t->root;
	bool dollar = len > 0 && topic[0] == '$';
	struct topic_node *n = root;
	size_t s = 0, e = 0;

enter:
	/* The '+' subtree is walked after the literal one: start loading it
	 * now so its cache miss overlaps the literal descent. */
	if (n->plus)
		__builtin_prefetch(n->plus);
	if (n->hash && !(dollar && n == root)) /* [MQTT-4.7.2-1] */
		node_emit(n->hash, cb, ctx);
	if (s > len) {
		node_emit(n, cb, ctx);
		goto up;
	}
	{
		const uint8_t *slash = memchr(topic + s, '/', len - s);
		e = slash ? (size_t)(slash - topic) : len;
		if (n->k.nkids) {
			uint32_t hv = topic_kids_hash(t->seed, topic + s, e - s);
			struct topic_knode *c =
				topic_kids_find(&n->k, hv, topic + s, (uint32_t)(e - s), TOPIC_OFF);
			if (c) {
				n = node_of(c);
				s = e + 1;
				goto enter;
			}
		}
	}
try_plus:
	if (n->plus && !(dollar && n == root)) { /* [MQTT-4.7.2-1] */
		n = n->plus;
		s = e + 1;
		goto enter;
	}
up:
	while (n != root) {
		struct topic_node *p = node_of(n->k.parent);
		bool from_plus = p->plus == n;
		/* n's level ended at s - 1; the parent's level starts after the
		 * slash before it. */
		e = s - 1;
		s = e;
		while (s > 0 && topic[s - 1] != '/')
			s--;
		n = p;
		if (!from_plus)
			goto try_plus;
	}
}

size_t topic_tree_count(const struct topic_tree *t)
{
	return t->count;
}

size_t topic_tree_node_count(const struct topic_tree *t)
{
	return t->nodes;
}

size_t topic_tree_group_count(const struct topic_tree *t)
{
	return t->groups;
}

void topic_tree_match_filter(struct topic_tree *t, const uint8_t *f, size_t len, topic_match_cb cb,
			     void *ctx)
{
	struct topic_node *n = node_walk(t, f, len, false);
	if (n)
		node_emit(n, cb, ctx);
}

bool topic_tree_offer_group(struct topic_tree *t, const uint8_t *f, size_t len, topic_match_cb cb,
			    void *ctx)
{
	const uint8_t *name;
	uint32_t namelen;
	if (share_split(&f, &len, &name, &namelen) != 1)
		return false;
	struct topic_node *n = node_walk(t, f, len, false);
	struct topic_group *g = n ? group_find(n, name, namelen) : NULL;
	if (!g || !g->n)
		return false;
	group_offer(g, cb, ctx);
	return true;
}

bool topic_filter_matches(const uint8_t *f, size_t flen, const uint8_t *t, size_t tlen)
{
	if (tlen && t[0] == '$' && flen && (f[0] == '+' || f[0] == '#'))
		return false;
	size_t i = 0, j = 0;
	for (;;) {
		size_t fe = i, te = j;
		while (fe < flen && f[fe] != '/')
			fe++;
		if (fe - i == 1 && f[i] == '#')
			return true;
		while (te < tlen && t[te] != '/')
			te++;
		bool plus = fe - i == 1 && f[i] == '+';
		if (!plus && (fe - i != te - j || memcmp(f + i, t + j, fe - i) != 0))
			return false;
		if (fe == flen)
			return te == tlen;
		if (te == tlen) /* "sport/#" matches "sport" */
			return flen - fe == 2 && f[fe + 1] == '#';
		i = fe + 1;
		j = te + 1;
	}
}

