/*
 * pwfile.c - Mosquitto's "name:secret" line files (password_file,
 * psk_file): reading them whole, cutting them into entries, bounded.
 */
#include "auth/pwfile.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int pwfile_is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* Trims blanks from both ends of [*p, *p + *n). */
static void pwfile_trim(const char **p, size_t *n)
{
	while (*n && pwfile_is_blank(**p)) {
		(*p)++;
		(*n)--;
	}
	while (*n && pwfile_is_blank((*p)[*n - 1]))
		(*n)--;
}

int pwfile_next_line(const char *text, size_t len, size_t *pos, const char **line, size_t *n)
{
	if (*pos >= len)
		return 0;
	*line = text + *pos;
	const char *nl = memchr(*line, '\n', len - *pos);
	*n = nl ? (size_t)(nl - *line) : len - *pos;
	*pos += *n + (nl ? 1 : 0);
	return 1;
}

int pwfile_split(const char *line, size_t n, const char **name, size_t *name_len,
		 const char **secret, size_t *secret_len)
{
	pwfile_trim(&line, &n);
	if (n == 0 || line[0] == '#')
		return 0;
	const char *colon = memchr(line, ':', n);
	if (!colon)
		return -1;
	*name = line;
	*name_len = (size_t)(colon - line);
	*secret = colon + 1;
	*secret_len = n - *name_len - 1;
	pwfile_trim(name, name_len);
	pwfile_trim(secret, secret_len);
	return 1;
}

long pwfile_parse(const char *text, size_t len, const char *file, pwfile_entry_cb cb, void *ctx,
		  char *err, size_t errlen)
{
	char why[256];
	long entries = 0;
	unsigned long lineno = 0;
	size_t pos = 0, n, name_len, secret_len;
	const char *line, *name, *secret;
	if (len > PWFILE_MAX_BYTES) {
		snprintf(err, errlen, "%s: larger than %u bytes", file, PWFILE_MAX_BYTES);
		return -1;
	}
	while (pwfile_next_line(text, len, &pos, &line, &n)) {
		lineno++;
		why[0] = '\0';
		int kind = pwfile_split(line, n, &name, &name_len, &secret, &secret_len);
		if (kind == 0)
			continue;
		if (memchr(line, '\0', n))
			snprintf(why, sizeof(why), "NUL byte in the line");
		else if (kind < 0)
			snprintf(why, sizeof(why), "expected name:secret (no ':' in the line)");
		else if (name_len == 0)
			snprintf(why, sizeof(why), "empty name before ':'");
		else if (name_len > PWFILE_MAX_NAME)
			snprintf(why, sizeof(why), "name longer than %u bytes", PWFILE_MAX_NAME);
		else if (secret_len == 0)
			snprintf(why, sizeof(why), "nothing after ':'");
		else if (secret_len > PWFILE_MAX_SECRET)
			snprintf(why, sizeof(why), "secret longer than %u bytes", PWFILE_MAX_SECRET);
		else if (cb(ctx, name, name_len, secret, secret_len, why, sizeof(why)) == 0)
			entries++;
		else if (!why[0])
			snprintf(why, sizeof(why), "refused");
		if (why[0]) {
			snprintf(err, errlen, "%s:%lu: %s", file, lineno, why);
			return -1;
		}
	}
	return entries;
}

int pwfile_read(const char *what, const char *path, char **out, size_t *len, char *err,
		size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;
	*out = NULL;
	*len = 0;
	if (!f) {
		snprintf(err, errlen, "%s %s: cannot open: %s", what, path, strerror(errno));
		return -1;
	}
	for (;;) {
		if (n == cap) {
			/* one byte over the bound tells a file that is too large */
			size_t ncap = cap ? cap * 2 : 4096;
			if (ncap > PWFILE_MAX_BYTES + 1)
				ncap = PWFILE_MAX_BYTES + 1;
			if (cap == ncap) {
				snprintf(err, errlen, "%s %s: larger than %u bytes", what, path,
					 PWFILE_MAX_BYTES);
				goto fail;
			}
			char *nb = realloc(buf, ncap + 1);
			if (!nb) {
				snprintf(err, errlen, "%s %s: out of memory", what, path);
				goto fail;
			}
			buf = nb;
			cap = ncap;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s %s: read error: %s", what, path, strerror(errno));
		goto fail;
	}
	if (n > PWFILE_MAX_BYTES) {
		snprintf(err, errlen, "%s %s: larger than %u bytes", what, path, PWFILE_MAX_BYTES);
		goto fail;
	}
	fclose(f);
	if (!buf && !(buf = malloc(1))) {
		snprintf(err, errlen, "%s %s: out of memory", what, path);
		return -1;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
fail:
	fclose(f);
	if (buf) {
		pwfile_wipe(buf, cap);
		free(buf);
	}
	return -1;
}

/* FNV-1a. */
static uint32_t pwfile_name_hash(const char *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 16777619u;
	return h;
}

long pwfile_index_find(const struct pwfile_index *ix, const char *name, size_t len,
		       pwfile_name_fn name_of, const void *ctx)
{
	if (!ix->nslots)
		return -1;
	size_t mask = ix->nslots - 1;
	for (size_t i = pwfile_name_hash(name, len) & mask;; i = (i + 1) & mask) {
		uint32_t s = ix->slots[i];
		if (!s)
			return -1;
		size_t n;
		const char *p = name_of(ctx, s - 1, &n);
		if (n == len && memcmp(p, name, len) == 0)
			return (long)(s - 1);
	}
}

int pwfile_index_build(struct pwfile_index *ix, size_t n, pwfile_name_fn name_of,
		       const void *ctx, size_t *dup)
{
	size_t want = 16;
	while (want < n * 2)
		want *= 2;
	ix->slots = calloc(want, sizeof(*ix->slots));
	if (!ix->slots)
		return -1;
	ix->nslots = want;
	for (size_t k = 0; k < n; k++) {
		size_t len;
		const char *name = name_of(ctx, k, &len);
		if (pwfile_index_find(ix, name, len, name_of, ctx) >= 0) {
			*dup = k;
			return -2;
		}
		size_t i = pwfile_name_hash(name, len) & (want - 1);
		while (ix->slots[i])
			i = (i + 1) & (want - 1);
		ix->slots[i] = (uint32_t)(k + 1);
	}
	return 0;
}

void pwfile_index_free(struct pwfile_index *ix)
{
	free(ix->slots);
	ix->slots = NULL;
	ix->nslots = 0;
}

void *pwfile_load(const char *what, const char *path, pwfile_parse_fn parse, char *err,
		  size_t errlen)
{
	char *text;
	size_t len;
	err[0] = '\0';
	if (pwfile_read(what, path, &text, &len, err, errlen) < 0)
		return NULL;
	void *db = parse(text, len, path, err, errlen);
	pwfile_wipe(text, len);
	free(text);
	return db;
}

const char *pwfile_printable(const char *name, size_t len, char *buf, size_t buflen)
{
	size_t o = 0;
	if (buflen == 0)
		return buf;
	for (size_t i = 0; i < len && i < 64 && o + 5 < buflen; i++) {
		unsigned char ch = (unsigned char)name[i];
		if (ch < 0x20 || ch > 0x7e || ch == '\\')
			o += (size_t)snprintf(buf + o, buflen - o, "\\x%02x", ch);
		else
			buf[o++] = (char)ch;
	}
	if (len > 64 && o + 4 < buflen) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

void pwfile_wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;
	while (n--)
		*v++ = 0;
}
