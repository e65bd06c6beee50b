/*
 * subject.c - MQTT topics and filters as NATS subjects and keys
 * (subject.h). Every function writes into the caller's buffer and checks
 * the bound before each byte.
 */
#include "cluster/subject.h"

#include <string.h>

static const char hex[] = "0123456789ABCDEF";

struct out {
	char *p;
	size_t n, cap;
	bool full;
};

static void put(struct out *o, char ch)
{
	if (o->n + 1 >= o->cap) {
		o->full = true;
		return;
	}
	o->p[o->n++] = ch;
}

static void put_str(struct out *o, const char *s)
{
	while (*s)
		put(o, *s++);
}

static void put_hex(struct out *o, char esc, uint8_t b)
{
	put(o, esc);
	put(o, hex[b >> 4]);
	put(o, hex[b & 15]);
}

static int done(struct out *o)
{
	if (o->full || o->cap == 0)
		return -1;
	o->p[o->n] = '\0';
	return (int)o->n;
}

/* One topic level as a subject token. */
static void put_level(struct out *o, const uint8_t *l, size_t n)
{
	if (n == 0) {
		put(o, '%'); /* a token cannot be empty; "%" alone is never an escape */
		return;
	}
	for (size_t i = 0; i < n; i++) {
		uint8_t b = l[i];
		if (b <= 0x20 || b >= 0x7f || b == '.' || b == '*' || b == '>' || b == '%')
			put_hex(o, '%', b);
		else
			put(o, (char)b);
	}
}

/* "CLUSTER.m" or "CLUSTER.d" by the first byte of the name. */
static void put_prefix(struct out *o, const char *cluster, const uint8_t *name, size_t len)
{
	put_str(o, cluster);
	put_str(o, len && name[0] == '$' ? ".d" : ".m");
}

/* The levels of name[0..len) as tokens after the prefix; with filter,
 * '+' and '#' are the wildcards (*parent: a '#' below the first level). */
static void put_levels(struct out *o, const uint8_t *name, size_t len, bool filter, bool *parent)
{
	size_t s = 0;
	for (;;) {
		const uint8_t *slash = memchr(name + s, '/', len - s);
		size_t e = slash ? (size_t)(slash - name) : len;
		put(o, '.');
		if (filter && e - s == 1 && name[s] == '+') {
			put(o, '*');
		} else if (filter && e - s == 1 && name[s] == '#') {
			put(o, '>');
			*parent = s > 0; /* "a/#" matches "a" too; "#" alone has no parent */
		} else {
			put_level(o, name + s, e - s);
		}
		if (!slash)
			break;
		s = e + 1;
	}
}

int cluster_subject_topic(char *out, size_t cap, const char *cluster, const uint8_t *t, size_t len)
{
	struct out o = {out, 0, cap, false};
	bool parent = false;
	put_prefix(&o, cluster, t, len);
	put_levels(&o, t, len, false, &parent);
	return done(&o);
}

int cluster_subject_filter(char *out, size_t cap, const char *cluster, const uint8_t *f, size_t len,
			   bool *parent)
{
	struct out o = {out, 0, cap, false};
	*parent = false;
	put_prefix(&o, cluster, f, len);
	put_levels(&o, f, len, true, parent);
	return done(&o);
}

int cluster_key_topic(char *out, size_t cap, const uint8_t *t, size_t len)
{
	struct out o = {out, 0, cap, false};
	for (size_t i = 0; i < len; i++) {
		uint8_t b = t[i];
		if ((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
		    b == '_' || b == '-' || b == '/')
			put(&o, (char)b);
		else
			put_hex(&o, '=', b);
	}
	return len ? done(&o) : -1;
}

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int cluster_key_parse(uint8_t *out, size_t cap, const char *key, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (n >= cap)
			return -1;
		if (key[i] == '=') {
			if (len - i < 3)
				return -1;
			int h = unhex(key[i + 1]), l = unhex(key[i + 2]);
			if (h < 0 || l < 0)
				return -1;
			out[n++] = (uint8_t)(h << 4 | l);
			i += 2;
		} else {
			out[n++] = (uint8_t)key[i];
		}
	}
	return n ? (int)n : -1;
}

bool cluster_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}
