/*
 * passwd.c - Mosquitto password files: reading them (pwfile.c cuts the
 * lines), checking a password against an entry in constant time and at
 * the same cost for unknown users, and hashing new passwords for
 * `midge passwd`. SHA-512 and PBKDF2 come from GnuTLS, argon2id from
 * libargon2 (the reference implementation Mosquitto 2.1 uses).
 */
#include "auth/passwd.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <argon2.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "auth/pwfile.h"

/* What it costs to check against an entry: the dummy entry for unknown
 * users copies the parameters most entries share. */
struct passwd_params {
	enum passwd_kind kind;
	uint32_t iterations; /* PBKDF2 iterations; argon2id passes (t) */
	uint32_t m_kib;      /* argon2id memory */
	uint32_t lanes;      /* argon2id parallelism (p) */
	uint32_t version;    /* argon2id: 0x10 or 0x13 */
	uint32_t salt_len, hash_len;
};

struct passwd_entry {
	struct passwd_params pp;
	const char *user; /* all three point into blob */
	const uint8_t *salt, *hash;
	uint32_t user_len;
	uint8_t *blob;
};

struct passwd_db {
	atomic_uint refs; /* a check still running when the broker stops drops its own */
	struct passwd_entry *e;
	size_t n, cap;
	struct pwfile_index index; /* by user name */
	struct passwd_entry dummy;
};

/* ---- small helpers ------------------------------------------------------- */

/* 1 when a[0..n) equals b[0..n); the time depends on n only. */
static int passwd_ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
	volatile uint8_t diff = 0;
	for (size_t i = 0; i < n; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

static int passwd_is_b64(int ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '+' || ch == '/';
}

/*
 * Decodes base64 s[0..n) into out (at most max bytes): padded when
 * padded is true (Mosquitto's $6$ / $7$), unpadded otherwise (the PHC
 * strings of argon2). Strict alphabet; GnuTLS does the decoding. Returns
 * the byte count or -1.
 */
static long passwd_b64_decode(const char *s, size_t n, bool padded, uint8_t *out, size_t max)
{
	char buf[1024];
	size_t len = n;
	if (n == 0 || n + 3 > sizeof(buf))
		return -1;
	if (padded) {
		if (n % 4)
			return -1;
		while (len > 0 && n - len < 2 && s[len - 1] == '=')
			len--;
	}
	for (size_t i = 0; i < len; i++)
		if (!passwd_is_b64((unsigned char)s[i]))
			return -1;
	if (len % 4 == 1)
		return -1;
	memcpy(buf, s, len);
	while (len % 4)
		buf[len++] = '=';
	gnutls_datum_t in = {(unsigned char *)buf, (unsigned)len}, dec = {NULL, 0};
	if (gnutls_base64_decode2(&in, &dec) < 0)
		return -1;
	long got = dec.size <= max ? (long)dec.size : -1;
	if (got > 0)
		memcpy(out, dec.data, dec.size);
	gnutls_free(dec.data);
	return got;
}

/* A decimal field of at most 10 digits, no sign. */
static const char *passwd_uint(const char *p, const char *end, uint32_t *out)
{
	uint64_t v = 0;
	const char *start = p;
	while (p < end && *p >= '0' && *p <= '9' && p - start < 10)
		v = v * 10 + (uint64_t)(*p++ - '0');
	if (p == start || v > UINT32_MAX || (p < end && *p >= '0' && *p <= '9'))
		return NULL;
	*out = (uint32_t)v;
	return p;
}

static const char *passwd_expect(const char *p, const char *end, const char *lit)
{
	size_t n = strlen(lit);
	return (size_t)(end - p) >= n && memcmp(p, lit, n) == 0 ? p + n : NULL;
}

/* ---- parsing one hash ---------------------------------------------------- */

struct passwd_parsed {
	struct passwd_params pp;
	uint8_t salt[PASSWD_MAX_SALT];
	uint8_t hash[PASSWD_MAX_ARGON2_HASH];
};

/* "$argon2id$[v=19$]m=M,t=T,p=P$salt$hash", the order libargon2 writes. */
static int passwd_parse_argon2id(const char *p, const char *end, struct passwd_parsed *out)
{
	struct passwd_params *pp = &out->pp;
	pp->kind = PASSWD_ARGON2ID;
	pp->version = ARGON2_VERSION_10; /* a string without v= predates 1.3 */
	const char *q = passwd_expect(p, end, "v=");
	if (q) {
		if (!(q = passwd_uint(q, end, &pp->version)) || !(q = passwd_expect(q, end, "$")))
			return -1;
		if (pp->version != ARGON2_VERSION_10 && pp->version != ARGON2_VERSION_13)
			return -1;
		p = q;
	}
	if (!(p = passwd_expect(p, end, "m=")) || !(p = passwd_uint(p, end, &pp->m_kib)) ||
	    !(p = passwd_expect(p, end, ",t=")) || !(p = passwd_uint(p, end, &pp->iterations)) ||
	    !(p = passwd_expect(p, end, ",p=")) || !(p = passwd_uint(p, end, &pp->lanes)) ||
	    !(p = passwd_expect(p, end, "$")))
		return -1;
	if (pp->iterations < ARGON2_MIN_TIME || pp->iterations > PASSWD_MAX_ARGON2_T ||
	    pp->lanes < ARGON2_MIN_LANES || pp->lanes > PASSWD_MAX_ARGON2_P ||
	    pp->m_kib < 8 * pp->lanes || pp->m_kib > PASSWD_MAX_ARGON2_M_KIB)
		return -1;
	const char *dollar = memchr(p, '$', (size_t)(end - p));
	if (!dollar)
		return -1;
	long salt = passwd_b64_decode(p, (size_t)(dollar - p), false, out->salt, sizeof(out->salt));
	long hash = passwd_b64_decode(dollar + 1, (size_t)(end - dollar - 1), false, out->hash,
				      sizeof(out->hash));
	if (salt < ARGON2_MIN_SALT_LENGTH || hash < ARGON2_MIN_OUTLEN)
		return -1;
	pp->salt_len = (uint32_t)salt;
	pp->hash_len = (uint32_t)hash;
	return 0;
}

/* "$7$iterations$salt$hash" or "$6$salt$hash", padded base64, a
 * 64-byte hash (SHA-512). */
static int passwd_parse_sha512(const char *p, const char *end, enum passwd_kind kind,
			       struct passwd_parsed *out)
{
	struct passwd_params *pp = &out->pp;
	pp->kind = kind;
	if (kind == PASSWD_PBKDF2_SHA512) {
		if (!(p = passwd_uint(p, end, &pp->iterations)) || !(p = passwd_expect(p, end, "$")))
			return -1;
		if (pp->iterations == 0 || pp->iterations > PASSWD_MAX_PBKDF2_ITERATIONS)
			return -1;
	}
	const char *dollar = memchr(p, '$', (size_t)(end - p));
	if (!dollar)
		return -1;
	long salt = passwd_b64_decode(p, (size_t)(dollar - p), true, out->salt, sizeof(out->salt));
	long hash = passwd_b64_decode(dollar + 1, (size_t)(end - dollar - 1), true, out->hash,
				      sizeof(out->hash));
	if (salt <= 0 || hash != PASSWD_HASH_LEN)
		return -1;
	pp->salt_len = (uint32_t)salt;
	pp->hash_len = (uint32_t)hash;
	return 0;
}

static int passwd_parse_hash(const char *s, size_t n, struct passwd_parsed *out)
{
	const char *end = s + n, *p;
	memset(&out->pp, 0, sizeof(out->pp));
	if ((p = passwd_expect(s, end, "$argon2id$")))
		return passwd_parse_argon2id(p, end, out);
	if ((p = passwd_expect(s, end, "$7$")))
		return passwd_parse_sha512(p, end, PASSWD_PBKDF2_SHA512, out);
	if ((p = passwd_expect(s, end, "$6$")))
		return passwd_parse_sha512(p, end, PASSWD_SHA512, out);
	return -1;
}

bool passwd_is_hash(const char *hash, size_t len)
{
	struct passwd_parsed p;
	return passwd_parse_hash(hash, len, &p) == 0;
}

/* ---- hashing --------------------------------------------------------------- */

/* The hash of password with e's parameters and salt into out
 * (e->pp.hash_len bytes). 0 or -1. */
static int passwd_compute(const struct passwd_params *pp, const uint8_t *salt,
			  const char *password, size_t password_len, uint8_t *out)
{
	switch (pp->kind) {
	case PASSWD_ARGON2ID: {
		if (password_len > ARGON2_MAX_PWD_LENGTH)
			return -1;
		/* One thread per check whatever the lanes: the result is the
		 * same, and the pool's bound on concurrent checks stays true. */
		argon2_context ctx = {
			.out = out,
			.outlen = pp->hash_len,
			.pwd = (uint8_t *)(uintptr_t)password,
			.pwdlen = (uint32_t)password_len,
			.salt = (uint8_t *)(uintptr_t)salt,
			.saltlen = pp->salt_len,
			.t_cost = pp->iterations,
			.m_cost = pp->m_kib,
			.lanes = pp->lanes,
			.threads = 1,
			.version = pp->version,
			.flags = ARGON2_DEFAULT_FLAGS,
		};
		return argon2_ctx(&ctx, Argon2_id) == ARGON2_OK ? 0 : -1;
	}
	case PASSWD_PBKDF2_SHA512: {
		gnutls_datum_t key = {(unsigned char *)(uintptr_t)password, (unsigned)password_len};
		gnutls_datum_t s = {(unsigned char *)(uintptr_t)salt, pp->salt_len};
		return gnutls_pbkdf2(GNUTLS_MAC_SHA512, &key, &s, pp->iterations, out,
				     PASSWD_HASH_LEN) < 0 ? -1 : 0;
	}
	case PASSWD_SHA512: {
		gnutls_hash_hd_t h;
		if (gnutls_hash_init(&h, GNUTLS_DIG_SHA512) < 0)
			return -1;
		int rc = gnutls_hash(h, password, password_len);
		if (rc >= 0)
			rc = gnutls_hash(h, salt, pp->salt_len);
		gnutls_hash_deinit(h, out);
		return rc < 0 ? -1 : 0;
	}
	}
	return -1;
}

/* ---- the database ---------------------------------------------------------- */

static const char *passwd_name_of(const void *ctx, size_t i, size_t *len)
{
	const struct passwd_db *db = ctx;
	*len = db->e[i].user_len;
	return db->e[i].user;
}

static const struct passwd_entry *passwd_lookup(const struct passwd_db *db, const char *user,
						size_t len)
{
	long i = pwfile_index_find(&db->index, user, len, passwd_name_of, db);
	return i < 0 ? NULL : &db->e[i];
}

static void passwd_entry_clear(struct passwd_entry *e)
{
	if (e->blob) {
		pwfile_wipe(e->blob, e->user_len + e->pp.salt_len + e->pp.hash_len);
		free(e->blob);
	}
	memset(e, 0, sizeof(*e));
}

static int passwd_entry_set(struct passwd_entry *e, const char *user, size_t user_len,
			    const struct passwd_parsed *p)
{
	e->blob = malloc(user_len + p->pp.salt_len + p->pp.hash_len + 1);
	if (!e->blob)
		return -1;
	e->pp = p->pp;
	e->user_len = (uint32_t)user_len;
	memcpy(e->blob, user, user_len);
	memcpy(e->blob + user_len, p->salt, p->pp.salt_len);
	memcpy(e->blob + user_len + p->pp.salt_len, p->hash, p->pp.hash_len);
	e->user = (const char *)e->blob;
	e->salt = e->blob + user_len;
	e->hash = e->salt + p->pp.salt_len;
	return 0;
}

static int passwd_add(void *ctx, const char *name, size_t name_len, const char *secret,
		      size_t secret_len, char *err, size_t errlen)
{
	struct passwd_db *db = ctx;
	struct passwd_parsed p;
	char shown[300];
	if (passwd_parse_hash(secret, secret_len, &p) < 0) {
		pwfile_printable(name, name_len, shown, sizeof(shown));
		if (secret[0] != '$')
			snprintf(err, errlen,
				 "password of '%s' is in plain text; hash the file with "
				 "`midge passwd -U FILE` (or mosquitto_passwd -U)",
				 shown);
		else
			snprintf(err, errlen,
				 "password of '%s' is not a hash midge can check ($argon2id$, $7$ "
				 "or $6$ within midge's bounds, see docs/security.md)",
				 shown);
		return -1;
	}
	if (db->n == db->cap) {
		size_t ncap = db->cap ? db->cap * 2 : 16;
		struct passwd_entry *ne = realloc(db->e, ncap * sizeof(*ne));
		if (!ne) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		db->e = ne;
		db->cap = ncap;
	}
	struct passwd_entry *e = &db->e[db->n];
	memset(e, 0, sizeof(*e));
	if (passwd_entry_set(e, name, name_len, &p) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	db->n++;
	pwfile_wipe(&p, sizeof(p));
	return 0;
}

/* The table of names; a name twice is an error (which line would win is
 * not something a reader of the file should have to know). */
static int passwd_index(struct passwd_db *db, char *err, size_t errlen)
{
	size_t dup = 0;
	int rc = pwfile_index_build(&db->index, db->n, passwd_name_of, db, &dup);
	if (rc == -2) {
		char shown[300];
		const struct passwd_entry *e = &db->e[dup];
		snprintf(err, errlen, "user '%s' appears twice",
			 pwfile_printable(e->user, e->user_len, shown, sizeof(shown)));
	} else if (rc < 0) {
		snprintf(err, errlen, "out of memory");
	}
	return rc < 0 ? -1 : 0;
}

static int passwd_params_equal(const struct passwd_params *a, const struct passwd_params *b)
{
	return a->kind == b->kind && a->iterations == b->iterations && a->m_kib == b->m_kib &&
	       a->lanes == b->lanes && a->version == b->version && a->salt_len == b->salt_len &&
	       a->hash_len == b->hash_len;
}

/*
 * The entry an unknown user is checked against: the parameters most
 * entries share (Mosquitto 2.1's argon2id for an empty file), a random
 * salt and hash, and an empty name no lookup can return.
 */
static int passwd_make_dummy(struct passwd_db *db)
{
	struct passwd_params seen[8];
	size_t count[8] = {0}, kinds = 0, best = 0;
	for (size_t k = 0; k < db->n; k++) {
		size_t j = 0;
		while (j < kinds && !passwd_params_equal(&seen[j], &db->e[k].pp))
			j++;
		if (j == kinds && kinds < 8)
			seen[kinds++] = db->e[k].pp;
		if (j < kinds && ++count[j] > count[best])
			best = j;
	}
	struct passwd_parsed p;
	memset(&p, 0, sizeof(p));
	if (kinds) {
		p.pp = seen[best];
	} else {
		p.pp.kind = PASSWD_ARGON2ID;
		p.pp.iterations = PASSWD_ARGON2_T;
		p.pp.m_kib = PASSWD_ARGON2_M_KIB;
		p.pp.lanes = PASSWD_ARGON2_P;
		p.pp.version = ARGON2_VERSION_13;
		p.pp.salt_len = PASSWD_SALT_LEN;
		p.pp.hash_len = PASSWD_HASH_LEN;
	}
	if (gnutls_rnd(GNUTLS_RND_NONCE, p.salt, p.pp.salt_len) < 0 ||
	    gnutls_rnd(GNUTLS_RND_NONCE, p.hash, p.pp.hash_len) < 0)
		return -1;
	return passwd_entry_set(&db->dummy, "", 0, &p);
}

struct passwd_db *passwd_parse(const char *text, size_t len, const char *file, char *err,
			       size_t errlen)
{
	struct passwd_db *db = calloc(1, sizeof(*db));
	if (!db) {
		snprintf(err, errlen, "%s: out of memory", file);
		return NULL;
	}
	atomic_init(&db->refs, 1);
	if (pwfile_parse(text, len, file, passwd_add, db, err, errlen) < 0)
		goto fail;
	char why[400];
	if (passwd_index(db, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: %s", file, why);
		goto fail;
	}
	if (passwd_make_dummy(db) < 0) {
		snprintf(err, errlen, "%s: no randomness or memory for the dummy entry", file);
		goto fail;
	}
	return db;
fail:
	passwd_unref(db);
	return NULL;
}

static void *passwd_parse_any(const char *text, size_t len, const char *file, char *err,
			      size_t errlen)
{
	return passwd_parse(text, len, file, err, errlen);
}

struct passwd_db *passwd_load(const char *path, char *err, size_t errlen)
{
	return pwfile_load("password_file", path, passwd_parse_any, err, errlen);
}

struct passwd_db *passwd_ref(struct passwd_db *db)
{
	atomic_fetch_add(&db->refs, 1);
	return db;
}

void passwd_unref(struct passwd_db *db)
{
	if (!db || atomic_fetch_sub(&db->refs, 1) > 1)
		return;
	for (size_t i = 0; i < db->n; i++)
		passwd_entry_clear(&db->e[i]);
	passwd_entry_clear(&db->dummy);
	free(db->e);
	pwfile_index_free(&db->index);
	free(db);
}

bool passwd_has_user(const struct passwd_db *db, const char *user, size_t user_len)
{
	return passwd_lookup(db, user, user_len) != NULL;
}

size_t passwd_count(const struct passwd_db *db)
{
	return db ? db->n : 0;
}

int passwd_check(const struct passwd_db *db, const char *user, size_t user_len,
		 const char *password, size_t password_len)
{
	uint8_t out[PASSWD_MAX_ARGON2_HASH];
	if (!db)
		return -1;
	const struct passwd_entry *e = passwd_lookup(db, user, user_len);
	int known = e != NULL, given = password != NULL;
	if (!e)
		e = &db->dummy;
	if (!password) {
		password = "";
		password_len = 0;
	}
	int computed = passwd_compute(&e->pp, e->salt, password, password_len, out) == 0;
	int same = passwd_ct_equal(out, e->hash, e->pp.hash_len);
	pwfile_wipe(out, sizeof(out));
	return known & given & computed & same ? 0 : -1;
}

/* ---- writing ----------------------------------------------------------------- */

static int passwd_b64_encode(const uint8_t *data, size_t n, bool padded, char *out, size_t outlen)
{
	gnutls_datum_t in = {(unsigned char *)(uintptr_t)data, (unsigned)n}, enc = {NULL, 0};
	if (gnutls_base64_encode2(&in, &enc) < 0)
		return -1;
	size_t len = enc.size;
	while (!padded && len && enc.data[len - 1] == '=')
		len--;
	int rc = len < outlen ? 0 : -1;
	if (rc == 0) {
		memcpy(out, enc.data, len);
		out[len] = '\0';
	}
	gnutls_free(enc.data);
	return rc;
}

int passwd_hash(enum passwd_kind kind, unsigned iterations, const char *password,
		size_t password_len, char *out, size_t outlen)
{
	uint8_t salt[PASSWD_SALT_LEN], hash[PASSWD_HASH_LEN];
	char salt64[128], hash64[128];
	int rc = -1;
	if (gnutls_rnd(GNUTLS_RND_RANDOM, salt, sizeof(salt)) < 0)
		return -1;
	if (kind == PASSWD_ARGON2ID) {
		rc = argon2id_hash_encoded(PASSWD_ARGON2_T, PASSWD_ARGON2_M_KIB, PASSWD_ARGON2_P,
					   password, password_len, salt, sizeof(salt),
					   PASSWD_HASH_LEN, out, outlen) == ARGON2_OK ? 0 : -1;
		goto out;
	}
	struct passwd_params pp = {.kind = kind,
				   .iterations = iterations ? iterations : PASSWD_PBKDF2_ITERATIONS,
				   .salt_len = PASSWD_SHA512_SALT_LEN,
				   .hash_len = sizeof(hash)};
	if ((kind != PASSWD_PBKDF2_SHA512 && kind != PASSWD_SHA512) ||
	    pp.iterations > PASSWD_MAX_PBKDF2_ITERATIONS ||
	    passwd_compute(&pp, salt, password, password_len, hash) < 0 ||
	    passwd_b64_encode(salt, pp.salt_len, true, salt64, sizeof(salt64)) < 0 ||
	    passwd_b64_encode(hash, sizeof(hash), true, hash64, sizeof(hash64)) < 0)
		goto out;
	int n = kind == PASSWD_SHA512
			? snprintf(out, outlen, "$6$%s$%s", salt64, hash64)
			: snprintf(out, outlen, "$7$%u$%s$%s", pp.iterations, salt64, hash64);
	rc = n > 0 && (size_t)n < outlen ? 0 : -1;
out:
	pwfile_wipe(hash, sizeof(hash));
	return rc;
}
