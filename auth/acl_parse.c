/*
 * acl_parse.c - reading an acl_file: the file within its bound, the line
 * grammar (Mosquitto's: `topic`, `pattern`, `user`, `#` comments, strtok
 * semantics), the check of each rule's topic, and the compiled tries it
 * fills (acl_trie.h). See acl.h for the format.
 */
#include "auth/acl_trie.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct acl_parse_state {
	struct acl *a;
	const char *name;
	int lineno;
	char *user; /* the open `user` section, NULL: anonymous */
	size_t user_len;
	acl_warn_cb warn;
	void *warn_user;
	char *err;
	size_t errlen;
};

static int acl_fail(struct acl_parse_state *ps, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int acl_fail(struct acl_parse_state *ps, const char *fmt, ...)
{
	char what[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	snprintf(ps->err, ps->errlen, "%s:%d: %s", ps->name, ps->lineno, what);
	return -1;
}

/* C's isspace() in the "C" locale, without its sign trap. */
static bool acl_isspace(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Mosquitto's check of an ACL topic (mosquitto_sub_topic_check): `+` and
 * `#` only as whole levels, `#` last, at most 65535 bytes and 200 `/`. */
static bool acl_topic_valid(const char *t, size_t n)
{
	unsigned slashes = 0;
	if (n > 65535)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool level_start = i == 0 || t[i - 1] == '/';
		if (t[i] == '+' && (!level_start || (i + 1 < n && t[i + 1] != '/')))
			return false;
		if (t[i] == '#' && (!level_start || i + 1 < n))
			return false;
		if (t[i] == '/' && ++slashes > ACL_MAX_LEVELS - 1)
			return false;
	}
	return true;
}

static bool acl_has(const char *s, size_t n, const char *needle)
{
	for (size_t i = 0; i + 1 < n; i++)
		if (s[i] == needle[0] && s[i + 1] == needle[1])
			return true;
	return false;
}

/* A `topic` or `pattern` line; rest is what follows the keyword's space
 * (strtok_r semantics: the access word, one space, the topic). */
static int acl_parse_rule(struct acl_parse_state *ps, bool pattern, char *rest)
{
	while (*rest == ' ')
		rest++;
	if (!*rest)
		return acl_fail(ps, "empty topic");
	char *access_s = rest;
	char *sp = strchr(rest, ' ');
	char *topic = NULL;
	if (sp) {
		*sp = '\0';
		topic = sp + 1;
		if (!*topic)
			topic = NULL;
	}
	uint8_t bits = ACL_READ | ACL_WRITE;
	if (!topic) {
		topic = access_s; /* `topic TOPIC`: read and write */
	} else {
		while (acl_isspace(*topic))
			topic++;
		if (strcmp(access_s, "read") == 0)
			bits = ACL_READ;
		else if (strcmp(access_s, "write") == 0)
			bits = ACL_WRITE;
		else if (strcmp(access_s, "readwrite") == 0)
			bits = ACL_READ | ACL_WRITE;
		else if (strcmp(access_s, "deny") == 0)
			bits = ACL_DENY;
		else
			return acl_fail(ps, "invalid topic access type '%.40s' (read, write, readwrite or "
					    "deny)", access_s);
	}
	size_t len = strlen(topic);
	if (!acl_topic_valid(topic, len))
		return acl_fail(ps, "invalid ACL topic '%.80s%s'", topic, len > 80 ? "..." : "");
	struct acl_list *l;
	if (pattern) {
		bool c = acl_has(topic, len, "%c"), u = acl_has(topic, len, "%u");
		if (!c && !u && ps->warn) {
			char w[200];
			snprintf(w, sizeof w, "%s:%d: ACL pattern '%.80s' does not contain %%c or %%u",
				 ps->name, ps->lineno, topic);
			ps->warn(ps->warn_user, w);
		}
		l = u ? &ps->a->pat_u : &ps->a->pat;
	} else if (ps->user) {
		l = acl_user_list(ps->a, ps->user, ps->user_len);
	} else {
		l = &ps->a->anon;
	}
	if (!l || acl_list_add(ps->a, l, topic, len, bits, pattern) < 0)
		return acl_fail(ps, ps->a->n_nodes >= ACL_MAX_NODES
					    ? "too many rules (at most %u topic levels in all)"
					    : "out of memory (%u)",
				ACL_MAX_NODES);
	return 0;
}

/* One line, line[0..n) with no newline (and a NUL at line[n]). */
static int acl_parse_line(struct acl_parse_state *ps, char *line, size_t n)
{
	/* fgets() and strlen(): a NUL ends the line's text */
	n = strlen(line);
	while (n > 0 && acl_isspace(line[n - 1]))
		line[--n] = '\0';
	if (line[0] == '#')
		return 0;
	char *p = line;
	while (*p == ' ')
		p++;
	if (!*p)
		return 0;
	char *tok = p;
	char *rest = strchr(p, ' ');
	if (rest)
		*rest++ = '\0';
	else
		rest = p + strlen(p);
	if (strcmp(tok, "topic") == 0 || strcmp(tok, "pattern") == 0)
		return acl_parse_rule(ps, tok[0] == 'p', rest);
	if (strcmp(tok, "user") == 0) {
		while (acl_isspace(*rest))
			rest++;
		if (!*rest)
			return acl_fail(ps, "missing username");
		size_t len = strlen(rest);
		char *u = malloc(len + 1);
		if (!u)
			return acl_fail(ps, "out of memory");
		memcpy(u, rest, len + 1);
		free(ps->user);
		ps->user = u;
		ps->user_len = len;
		return 0;
	}
	return acl_fail(ps, "invalid line (expected topic, pattern, user or a # comment): '%.60s'",
			tok);
}

struct acl *acl_parse(const char *text, size_t len, const char *name, acl_warn_cb warn,
		      void *warn_user, char *err, size_t errlen)
{
	struct acl_parse_state ps = {.name = name ? name : "acl_file", .warn = warn,
				     .warn_user = warn_user, .err = err, .errlen = errlen};
	char *line = NULL;
	int rc = -1;
	if (len > ACL_MAX_FILE) {
		snprintf(err, errlen, "%s: larger than %u bytes", ps.name, ACL_MAX_FILE);
		return NULL;
	}
	ps.a = calloc(1, sizeof *ps.a);
	line = malloc(ACL_MAX_LINE + 1);
	if (ps.a && line)
		(void)acl_node_new(ps.a); /* node 0 stands for "none" */
	if (!ps.a || !line || ps.a->n_nodes != 1) {
		snprintf(err, errlen, "%s: out of memory", ps.name);
		goto out;
	}
	size_t i = 0;
	while (i < len) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - text) : len;
		ps.lineno++;
		if (end - i > ACL_MAX_LINE) {
			acl_fail(&ps, "line longer than %u bytes", ACL_MAX_LINE);
			goto out;
		}
		memcpy(line, text + i, end - i);
		line[end - i] = '\0';
		if (acl_parse_line(&ps, line, end - i) < 0)
			goto out;
		i = nl ? end + 1 : len;
	}
	rc = 0;
out:
	free(line);
	free(ps.user);
	if (rc < 0) {
		acl_free(ps.a);
		return NULL;
	}
	return ps.a;
}

struct acl *acl_load(const char *path, acl_warn_cb warn, void *warn_user, char *err,
		     size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	struct acl *a = NULL;
	if (!f) {
		snprintf(err, errlen, "acl_file %s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	buf = malloc(ACL_MAX_FILE + 1);
	if (!buf) {
		snprintf(err, errlen, "acl_file %s: out of memory", path);
		goto out;
	}
	size_t n = fread(buf, 1, ACL_MAX_FILE + 1, f);
	if (ferror(f)) {
		snprintf(err, errlen, "acl_file %s: cannot read: %s", path, strerror(errno));
		goto out;
	}
	a = acl_parse(buf, n, path, warn, warn_user, err, errlen);
out:
	free(buf);
	fclose(f);
	return a;
}
