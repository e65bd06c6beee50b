/*
 * jwt.c - JWT verification (jwt.h): keys from a PEM/secret file or a
 * JWKS, the header checked against the key before libjwt checks the
 * signature, then the claims read with jansson.
 */
#include "auth/jwt.h"

#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <jwt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum jwt_family { FAM_HS, FAM_RS, FAM_ES };

/* One key: its family, the algs it may verify, and what libjwt is given
 * (the secret bytes, or a PEM public key NUL-terminated). */
struct jwt_key {
	char *kid; /* NULL: none (the key file's single key) */
	enum jwt_family fam;
	unsigned algs; /* JWT_* bits this key may verify */
	unsigned char *key;
	size_t len;
};

struct jwt_verifier {
	atomic_uint refs;
	struct jwt_opts o; /* strings owned */
	struct stat st;    /* of the file read, for jwt_verifier_stale() */
	size_t n;
	struct jwt_key keys[JWT_MAX_KEYS];
};

static const struct {
	const char *name;
	unsigned bit;
	jwt_alg_t lib;
	enum jwt_family fam;
} jwt_algs[] = {
	{"HS256", JWT_HS256, JWT_ALG_HS256, FAM_HS}, {"HS384", JWT_HS384, JWT_ALG_HS384, FAM_HS},
	{"HS512", JWT_HS512, JWT_ALG_HS512, FAM_HS}, {"RS256", JWT_RS256, JWT_ALG_RS256, FAM_RS},
	{"RS384", JWT_RS384, JWT_ALG_RS384, FAM_RS}, {"RS512", JWT_RS512, JWT_ALG_RS512, FAM_RS},
	{"ES256", JWT_ES256, JWT_ALG_ES256, FAM_ES}, {"ES384", JWT_ES384, JWT_ALG_ES384, FAM_ES},
	{"ES512", JWT_ES512, JWT_ALG_ES512, FAM_ES},
};
#define JWT_N_ALGS (sizeof jwt_algs / sizeof jwt_algs[0])

static unsigned jwt_family_bits(enum jwt_family f)
{
	unsigned b = 0;
	for (size_t i = 0; i < JWT_N_ALGS; i++)
		if (jwt_algs[i].fam == f)
			b |= jwt_algs[i].bit;
	return b;
}

static int jwt_alg_index(const char *name)
{
	for (size_t i = 0; i < JWT_N_ALGS; i++)
		if (strcmp(jwt_algs[i].name, name) == 0)
			return (int)i;
	return -1;
}

int jwt_parse_algs(const char *list, unsigned *bits, char *err, size_t errlen)
{
	unsigned b = 0;
	const char *p = list;
	while (*p) {
		size_t n = strcspn(p, ", \t");
		if (n) {
			char name[16];
			if (n >= sizeof name) {
				snprintf(err, errlen, "unknown algorithm '%.*s'", (int)(n > 40 ? 40 : n), p);
				return -1;
			}
			memcpy(name, p, n);
			name[n] = '\0';
			int i = jwt_alg_index(name);
			if (i < 0) {
				snprintf(err, errlen, "%s '%s' (use HS256/384/512, RS256/384/512, ES256/384/512)",
					 strcasecmp(name, "none") == 0 ? "refused algorithm" : "unknown algorithm",
					 name);
				return -1;
			}
			b |= jwt_algs[i].bit;
		}
		p += n;
		p += strspn(p, ", \t");
	}
	if (!b) {
		snprintf(err, errlen, "no algorithm named");
		return -1;
	}
	*bits = b;
	return 0;
}

/* ---- base64url --------------------------------------------------------- */

/* Decodes unpadded base64url s[0..n) into a malloc'ed buffer (NUL added,
 * not counted). Returns 0 or -1 (not base64url, OOM). */
static int jwt_b64url(const char *s, size_t n, unsigned char **out, size_t *outlen)
{
	if (n == 0 || n > JWT_MAX_KEYFILE || n % 4 == 1)
		return -1;
	size_t padded = (n + 3) / 4 * 4;
	char *std = malloc(padded);
	if (!std)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
			free(std);
			return -1;
		}
		std[i] = c;
	}
	memset(std + n, '=', padded - n);
	gnutls_datum_t in = {(unsigned char *)std, (unsigned)padded}, res = {NULL, 0};
	int rc = gnutls_base64_decode2(&in, &res);
	free(std);
	if (rc < 0)
		return -1;
	unsigned char *b = malloc(res.size + 1);
	if (!b) {
		gnutls_free(res.data);
		return -1;
	}
	memcpy(b, res.data, res.size);
	b[res.size] = '\0';
	*outlen = res.size;
	gnutls_free(res.data);
	*out = b;
	return 0;
}

/* ---- keys ---------------------------------------------------------------- */

static void jwt_key_clear(struct jwt_key *k)
{
	free(k->kid);
	if (k->key) {
		gnutls_memset(k->key, 0, k->len);
		free(k->key);
	}
	memset(k, 0, sizeof *k);
}

static int jwt_key_set_pem(struct jwt_key *k, gnutls_pubkey_t pk);

/* k's family and algs from its PEM public key (RSA, or EC with its
 * curve deciding the one ES alg), and k->key made the key alone in PEM
 * (certtool writes a text description first). Returns 0 or -1 with
 * err. */
static int jwt_key_classify_pem(struct jwt_key *k, char *err, size_t errlen)
{
	gnutls_pubkey_t pk;
	gnutls_datum_t d = {k->key, (unsigned)k->len};
	int rc = -1;
	if (gnutls_pubkey_init(&pk) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int r = gnutls_pubkey_import(pk, &d, GNUTLS_X509_FMT_PEM);
	if (r < 0) {
		snprintf(err, errlen, "not a PEM public key: %s", gnutls_strerror(r));
		goto out;
	}
	unsigned bits;
	int alg = gnutls_pubkey_get_pk_algorithm(pk, &bits);
	if (alg == GNUTLS_PK_RSA) {
		k->fam = FAM_RS;
		k->algs = jwt_family_bits(FAM_RS);
		rc = 0;
	} else if (alg == GNUTLS_PK_EC) {
		gnutls_ecc_curve_t curve;
		if (gnutls_pubkey_export_ecc_raw(pk, &curve, NULL, NULL) < 0) {
			snprintf(err, errlen, "unreadable EC key");
			goto out;
		}
		k->fam = FAM_ES;
		k->algs = curve == GNUTLS_ECC_CURVE_SECP256R1   ? JWT_ES256
			  : curve == GNUTLS_ECC_CURVE_SECP384R1 ? JWT_ES384
			  : curve == GNUTLS_ECC_CURVE_SECP521R1 ? JWT_ES512
								: 0;
		if (!k->algs)
			snprintf(err, errlen, "EC curve %s is not one of P-256, P-384, P-521",
				 gnutls_ecc_curve_get_name(curve));
		else
			rc = 0;
	} else {
		snprintf(err, errlen, "a %s key: JWT needs RSA or EC",
			 gnutls_pk_algorithm_get_name((gnutls_pk_algorithm_t)alg));
	}
	if (rc == 0) {
		unsigned char *was = k->key;
		size_t was_len = k->len;
		k->key = NULL;
		if (jwt_key_set_pem(k, pk) < 0) {
			snprintf(err, errlen, "cannot export the key");
			k->key = was;
			k->len = was_len;
			rc = -1;
		} else {
			free(was);
		}
	}
out:
	gnutls_pubkey_deinit(pk);
	return rc;
}

/* Makes k->key a NUL-terminated PEM of pk. */
static int jwt_key_set_pem(struct jwt_key *k, gnutls_pubkey_t pk)
{
	gnutls_datum_t out = {NULL, 0};
	if (gnutls_pubkey_export2(pk, GNUTLS_X509_FMT_PEM, &out) < 0)
		return -1;
	k->key = malloc(out.size + 1);
	if (k->key) {
		memcpy(k->key, out.data, out.size);
		k->key[out.size] = '\0';
		k->len = out.size;
	}
	gnutls_free(out.data);
	return k->key ? 0 : -1;
}

/* A base64url member of a JWK, decoded into d (free d->data). */
static int jwt_jwk_member(json_t *jwk, const char *name, gnutls_datum_t *d)
{
	json_t *v = json_object_get(jwk, name);
	unsigned char *b;
	size_t n;
	if (!json_is_string(v) || jwt_b64url(json_string_value(v), json_string_length(v), &b, &n) < 0)
		return -1;
	d->data = b;
	d->size = (unsigned)n;
	return 0;
}

/*
 * One JWK into k. Returns 1 when usable, 0 when skipped (a private or
 * encryption key, an unknown kty: RFC 7517 says ignore what is not
 * understood), -1 with err for a key that claims to be usable and is not.
 */
static int jwt_jwk_load(json_t *jwk, struct jwt_key *k, char *err, size_t errlen)
{
	if (!json_is_object(jwk)) {
		snprintf(err, errlen, "a key is not a JSON object");
		return -1;
	}
	const char *kty = json_string_value(json_object_get(jwk, "kty"));
	const char *use = json_string_value(json_object_get(jwk, "use"));
	const char *kid = json_string_value(json_object_get(jwk, "kid"));
	const char *alg = json_string_value(json_object_get(jwk, "alg"));
	if (!kty || (use && strcmp(use, "sig") != 0))
		return 0;
	gnutls_datum_t a = {NULL, 0}, b = {NULL, 0};
	gnutls_pubkey_t pk = NULL;
	int rc = -1;
	if (strcmp(kty, "oct") == 0) {
		if (jwt_jwk_member(jwk, "k", &a) < 0) {
			snprintf(err, errlen, "oct key %s: no base64url k", kid ? kid : "");
			goto out;
		}
		k->fam = FAM_HS;
		k->algs = jwt_family_bits(FAM_HS);
		k->key = a.data;
		k->len = a.size;
		a.data = NULL;
	} else if (strcmp(kty, "RSA") == 0 || strcmp(kty, "EC") == 0) {
		bool rsa = kty[0] == 'R';
		if (gnutls_pubkey_init(&pk) < 0) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		int r;
		if (rsa) {
			if (jwt_jwk_member(jwk, "n", &a) < 0 || jwt_jwk_member(jwk, "e", &b) < 0) {
				snprintf(err, errlen, "RSA key %s: n and e must be base64url", kid ? kid : "");
				goto out;
			}
			r = gnutls_pubkey_import_rsa_raw(pk, &a, &b);
			k->fam = FAM_RS;
			k->algs = jwt_family_bits(FAM_RS);
		} else {
			const char *crv = json_string_value(json_object_get(jwk, "crv"));
			gnutls_ecc_curve_t c = !crv				? GNUTLS_ECC_CURVE_INVALID
					       : strcmp(crv, "P-256") == 0 ? GNUTLS_ECC_CURVE_SECP256R1
					       : strcmp(crv, "P-384") == 0 ? GNUTLS_ECC_CURVE_SECP384R1
					       : strcmp(crv, "P-521") == 0 ? GNUTLS_ECC_CURVE_SECP521R1
									   : GNUTLS_ECC_CURVE_INVALID;
			if (c == GNUTLS_ECC_CURVE_INVALID) {
				snprintf(err, errlen, "EC key %s: crv must be P-256, P-384 or P-521",
					 kid ? kid : "");
				goto out;
			}
			if (jwt_jwk_member(jwk, "x", &a) < 0 || jwt_jwk_member(jwk, "y", &b) < 0) {
				snprintf(err, errlen, "EC key %s: x and y must be base64url", kid ? kid : "");
				goto out;
			}
			r = gnutls_pubkey_import_ecc_raw(pk, c, &a, &b);
			k->fam = FAM_ES;
			k->algs = c == GNUTLS_ECC_CURVE_SECP256R1   ? JWT_ES256
				  : c == GNUTLS_ECC_CURVE_SECP384R1 ? JWT_ES384
								    : JWT_ES512;
		}
		if (r < 0 || jwt_key_set_pem(k, pk) < 0) {
			snprintf(err, errlen, "%s key %s: %s", kty, kid ? kid : "",
				 r < 0 ? gnutls_strerror(r) : "cannot export it");
			goto out;
		}
	} else {
		rc = 0; /* a kty midge does not use */
		goto out;
	}
	if (alg) {
		/* a JWK's alg binds it to that one algorithm (RFC 7517 4.4) */
		int i = jwt_alg_index(alg);
		if (i < 0 || !(k->algs & jwt_algs[i].bit)) {
			snprintf(err, errlen, "key %s: alg %s does not fit a %s key", kid ? kid : "", alg,
				 kty);
			goto out;
		}
		k->algs = jwt_algs[i].bit;
	}
	if (kid && !(k->kid = strdup(kid))) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = 1;
out:
	if (pk)
		gnutls_pubkey_deinit(pk);
	free(a.data);
	free(b.data);
	if (rc != 1)
		jwt_key_clear(k);
	return rc;
}

/* Fills v->keys from a JWKS text. Returns 0 or -1 with err. */
static int jwt_load_jwks(struct jwt_verifier *v, const char *text, size_t len, char *err,
			 size_t errlen)
{
	json_error_t je;
	json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!doc) {
		snprintf(err, errlen, "not JSON (line %d: %s)", je.line, je.text);
		return -1;
	}
	int rc = -1;
	json_t *keys = json_object_get(doc, "keys");
	if (!json_is_array(keys)) {
		snprintf(err, errlen, "a JWKS needs a \"keys\" array");
		goto out;
	}
	size_t i;
	json_t *jwk;
	json_array_foreach(keys, i, jwk)
	{
		if (v->n == JWT_MAX_KEYS) {
			snprintf(err, errlen, "more than %u keys", JWT_MAX_KEYS);
			goto out;
		}
		char e[200];
		int r = jwt_jwk_load(jwk, &v->keys[v->n], e, sizeof e);
		if (r < 0) {
			snprintf(err, errlen, "key %zu: %s", i + 1, e);
			goto out;
		}
		if (r == 0)
			continue;
		for (size_t j = 0; j < v->n; j++) {
			const char *a = v->keys[j].kid, *b = v->keys[v->n].kid;
			if ((!a && !b) || (a && b && strcmp(a, b) == 0)) {
				snprintf(err, errlen, "key %zu: kid '%s' twice", i + 1, b ? b : "");
				jwt_key_clear(&v->keys[v->n]);
				goto out;
			}
		}
		v->n++;
	}
	if (!v->n) {
		snprintf(err, errlen, "no usable signature key (RSA, EC P-256/384/521, oct)");
		goto out;
	}
	rc = 0;
out:
	json_decref(doc);
	return rc;
}

/* Reads path whole (at most JWT_MAX_KEYFILE bytes), NUL-terminated. */
static char *jwt_read_file(const char *path, size_t *len, struct stat *st, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	char *buf = NULL;
	if (fstat(fileno(f), st) < 0 || st->st_size > (off_t)JWT_MAX_KEYFILE) {
		snprintf(err, errlen, "%s: larger than %u bytes, or unreadable", path, JWT_MAX_KEYFILE);
		goto out;
	}
	if (!(buf = malloc((size_t)st->st_size + 1))) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	*len = fread(buf, 1, (size_t)st->st_size, f);
	buf[*len] = '\0';
out:
	fclose(f);
	return buf;
}

static void jwt_verifier_free(struct jwt_verifier *v)
{
	for (size_t i = 0; i < v->n; i++)
		jwt_key_clear(&v->keys[i]);
	free((char *)v->o.issuer);
	free((char *)v->o.audience);
	free((char *)v->o.username_claim);
	free((char *)v->o.key_file);
	free((char *)v->o.jwks_file);
	free(v);
}

static int jwt_dup_opt(const char **dst, const char *src)
{
	*dst = NULL;
	return src && !(*dst = strdup(src)) ? -1 : 0;
}

struct jwt_verifier *jwt_verifier_load(const struct jwt_opts *o, char *err, size_t errlen)
{
	struct jwt_verifier *v = calloc(1, sizeof *v);
	char *text = NULL;
	size_t len = 0;
	if (!v) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	atomic_init(&v->refs, 1);
	v->o = *o;
	if (!v->o.algs)
		v->o.algs = JWT_ALGS_ALL;
	if (jwt_dup_opt(&v->o.issuer, o->issuer) < 0 || jwt_dup_opt(&v->o.audience, o->audience) < 0 ||
	    jwt_dup_opt(&v->o.username_claim, o->username_claim ? o->username_claim : "sub") < 0 ||
	    jwt_dup_opt(&v->o.key_file, o->key_file) < 0 ||
	    jwt_dup_opt(&v->o.jwks_file, o->jwks_file) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	const char *path = o->key_file ? o->key_file : o->jwks_file;
	if (!path || (o->key_file && o->jwks_file)) {
		snprintf(err, errlen, "JWT needs one of midge_jwt_key_file and midge_jwt_jwks_file");
		goto fail;
	}
	if (!(text = jwt_read_file(path, &len, &v->st, err, errlen)))
		goto fail;
	char e[300] = "";
	if (o->jwks_file) {
		int rc = jwt_load_jwks(v, text, len, e, sizeof e);
		gnutls_memset(text, 0, len); /* keys copied: the text goes (oct secrets too) */
		free(text);
		text = NULL;
		if (rc < 0) {
			snprintf(err, errlen, "%s: %s", path, e);
			goto fail;
		}
	} else if (strstr(text, "-----BEGIN")) {
		struct jwt_key *k = &v->keys[0];
		k->key = (unsigned char *)text;
		k->len = len;
		text = NULL;
		v->n = 1;
		if (jwt_key_classify_pem(k, e, sizeof e) < 0) {
			snprintf(err, errlen, "%s: %s", path, e);
			goto fail;
		}
	} else {
		/* an HS secret: the file's bytes but a final line end */
		while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
			len--;
		if (!len) {
			snprintf(err, errlen, "%s: empty (an HS secret or a PEM public key)", path);
			goto fail;
		}
		struct jwt_key *k = &v->keys[0];
		k->key = (unsigned char *)text;
		k->len = len;
		k->fam = FAM_HS;
		k->algs = jwt_family_bits(FAM_HS);
		text = NULL;
		v->n = 1;
	}
	unsigned usable = 0;
	for (size_t i = 0; i < v->n; i++)
		usable |= v->keys[i].algs;
	if (!(usable & v->o.algs)) {
		snprintf(err, errlen, "%s: no key for any algorithm of midge_jwt_algorithms", path);
		goto fail;
	}
	return v;
fail:
	free(text);
	jwt_verifier_free(v);
	return NULL;
}

struct jwt_verifier *jwt_verifier_ref(struct jwt_verifier *v)
{
	atomic_fetch_add(&v->refs, 1);
	return v;
}

void jwt_verifier_unref(struct jwt_verifier *v)
{
	if (v && atomic_fetch_sub(&v->refs, 1) == 1)
		jwt_verifier_free(v);
}

bool jwt_verifier_stale(const struct jwt_verifier *v)
{
	struct stat st;
	const char *path = v->o.key_file ? v->o.key_file : v->o.jwks_file;
	if (stat(path, &st) < 0)
		return false; /* gone or unreadable: keep what was read, a reload says why */
	return st.st_size != v->st.st_size || st.st_ino != v->st.st_ino ||
	       st.st_mtim.tv_sec != v->st.st_mtim.tv_sec || st.st_mtim.tv_nsec != v->st.st_mtim.tv_nsec;
}

const struct jwt_opts *jwt_verifier_opts(const struct jwt_verifier *v)
{
	return &v->o;
}

void jwt_verifier_describe(const struct jwt_verifier *v, char *out, size_t outlen)
{
	static const char *const fam[] = {"HS secret", "RSA key", "EC key"};
	if (v->o.key_file)
		snprintf(out, outlen, "key_file %s (%s)", v->o.key_file, fam[v->keys[0].fam]);
	else
		snprintf(out, outlen, "jwks_file %s (%zu keys)", v->o.jwks_file, v->n);
}

int jwt_jwks_check(const char *text, size_t len, char *err, size_t errlen)
{
	struct jwt_verifier *v = calloc(1, sizeof *v);
	if (!v) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int rc = len > JWT_MAX_KEYFILE ? -1 : jwt_load_jwks(v, text, len, err, errlen);
	if (len > JWT_MAX_KEYFILE)
		snprintf(err, errlen, "larger than %u bytes", JWT_MAX_KEYFILE);
	if (rc == 0)
		rc = (int)v->n;
	jwt_verifier_free(v);
	return rc;
}

/* ---- tokens ---------------------------------------------------------------- */

bool jwt_token_shape(const char *t, size_t n)
{
	if (n < 5)
		return false;
	int dots = 0;
	size_t seg = 0;
	for (size_t i = 0; i < n; i++) {
		char c = t[i];
		if (c == '.') {
			if (!seg && dots < 2)
				return false; /* empty header or payload */
			dots++;
			seg = 0;
		} else if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			   c == '-' || c == '_') {
			seg++;
		} else {
			return false;
		}
	}
	return dots == 2;
}

/* A JSON segment of the token (header or payload) parsed. */
static json_t *jwt_segment(const char *s, size_t n)
{
	unsigned char *b;
	size_t bl;
	if (jwt_b64url(s, n, &b, &bl) < 0)
		return NULL;
	json_t *j = json_loadb((const char *)b, bl, JSON_REJECT_DUPLICATES, NULL);
	free(b);
	if (j && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* A NumericDate claim: 1 with *out, 0 absent, -1 not a number. */
static int jwt_time_claim(json_t *claims, const char *name, int64_t *out)
{
	json_t *v = json_object_get(claims, name);
	if (!v)
		return 0;
	if (json_is_integer(v)) {
		*out = (int64_t)json_integer_value(v);
		return 1;
	}
	if (json_is_real(v) && json_real_value(v) > -9e15 && json_real_value(v) < 9e15) {
		*out = (int64_t)json_real_value(v);
		return 1;
	}
	return -1;
}

static bool jwt_aud_has(json_t *aud, const char *want)
{
	if (json_is_string(aud))
		return strcmp(json_string_value(aud), want) == 0;
	size_t i;
	json_t *x;
	if (json_is_array(aud))
		json_array_foreach(aud, i, x) if (json_is_string(x) &&
						  strcmp(json_string_value(x), want) == 0) return true;
	return false;
}

/* The claims checks after the signature. Returns JWT_ALLOW or JWT_DENY. */
static int jwt_check_claims(const struct jwt_verifier *v, json_t *c, const char *cid,
			    size_t cid_len, int64_t now, struct jwt_result *out)
{
	int64_t exp = 0, nbf = 0, iat = 0, lee = v->o.leeway_s;
	int he = jwt_time_claim(c, "exp", &exp), hn = jwt_time_claim(c, "nbf", &nbf),
	    hi = jwt_time_claim(c, "iat", &iat);
	if (he < 0 || hn < 0 || hi < 0) {
		snprintf(out->why, sizeof out->why, "exp, nbf or iat is not a number");
		return JWT_DENY;
	}
	if (he && now >= exp + lee) {
		snprintf(out->why, sizeof out->why, "expired (exp %lld, now %lld)", (long long)exp,
			 (long long)now);
		return JWT_DENY;
	}
	if (hn && now + lee < nbf) {
		snprintf(out->why, sizeof out->why, "not valid yet (nbf %lld, now %lld)",
			 (long long)nbf, (long long)now);
		return JWT_DENY;
	}
	if (hi && now + lee < iat) {
		snprintf(out->why, sizeof out->why, "issued in the future (iat %lld, now %lld)",
			 (long long)iat, (long long)now);
		return JWT_DENY;
	}
	if (v->o.issuer) {
		const char *iss = json_string_value(json_object_get(c, "iss"));
		if (!iss || strcmp(iss, v->o.issuer) != 0) {
			snprintf(out->why, sizeof out->why, "issuer is not %s", v->o.issuer);
			return JWT_DENY;
		}
	}
	if (v->o.audience && !jwt_aud_has(json_object_get(c, "aud"), v->o.audience)) {
		snprintf(out->why, sizeof out->why, "audience does not include %s", v->o.audience);
		return JWT_DENY;
	}
	/* the user name comes from the token, never from the client: a token
	 * without the claim would let the client choose the %u of its rules */
	json_t *u = json_object_get(c, v->o.username_claim);
	if (!json_is_string(u) || !json_string_length(u) || json_string_length(u) > 65535 ||
	    memchr(json_string_value(u), 0, json_string_length(u))) {
		snprintf(out->why, sizeof out->why, "no usable \"%s\" claim for the user name",
			 v->o.username_claim);
		return JWT_DENY;
	}
	out->user_len = json_string_length(u);
	if (!(out->user = strdup(json_string_value(u)))) {
		snprintf(out->why, sizeof out->why, "out of memory");
		return JWT_DENY;
	}
	out->exp = he ? exp : 0;
	json_t *acl = json_object_get(c, "acl");
	if (acl) {
		/* %c/%u now (the CONNECT's client id); strict: refused, not loose */
		struct rules_who who = {cid, cid_len, out->user, out->user_len};
		const struct rules_opts ro = {.max = RULES_MAX_TOKEN, .strict = true, .who = &who};
		char e[160]; /* leaves room in why for the prefix */
		if (!(out->rules = rules_from_json(acl, &ro, e, sizeof e))) {
			snprintf(out->why, sizeof out->why, "acl claim: %s", e);
			return JWT_DENY;
		}
	}
	return JWT_ALLOW;
}

int jwt_verify(const struct jwt_verifier *v, const char *t, size_t n, const char *cid,
	       size_t cid_len, int64_t now, struct jwt_result *out)
{
	memset(out, 0, sizeof *out);
	json_t *hdr = NULL, *claims = NULL;
	jwt_t *jwt = NULL;
	char *tok = NULL;
	int rc = JWT_DENY;
	if (n > JWT_MAX_TOKEN || !jwt_token_shape(t, n)) {
		snprintf(out->why, sizeof out->why, "not a JWS compact token of at most %u bytes",
			 JWT_MAX_TOKEN);
		return JWT_DENY;
	}
	const char *d1 = memchr(t, '.', n), *d2 = memchr(d1 + 1, '.', (size_t)(t + n - d1 - 1));
	if (!(hdr = jwt_segment(t, (size_t)(d1 - t)))) {
		snprintf(out->why, sizeof out->why, "the header is not a base64url JSON object");
		goto out;
	}
	const char *alg = json_string_value(json_object_get(hdr, "alg"));
	const char *kid = json_string_value(json_object_get(hdr, "kid"));
	int ai = alg ? jwt_alg_index(alg) : -1;
	if (ai < 0 || !(v->o.algs & jwt_algs[ai].bit)) {
		snprintf(out->why, sizeof out->why, "alg %.20s is not accepted", alg ? alg : "(none)");
		goto out;
	}
	if (json_object_get(hdr, "crit")) {
		snprintf(out->why, sizeof out->why, "a crit header midge does not understand");
		goto out;
	}
	/* the key: by kid in a JWKS (the only key when it has one and the
	 * token names none), the key file's otherwise */
	const struct jwt_key *k = NULL;
	if (v->o.jwks_file) {
		for (size_t i = 0; i < v->n && kid; i++)
			if (v->keys[i].kid && strcmp(v->keys[i].kid, kid) == 0)
				k = &v->keys[i];
		if (!kid && v->n == 1)
			k = &v->keys[0];
	} else {
		k = &v->keys[0];
	}
	if (!k) {
		snprintf(out->why, sizeof out->why, "no key with kid %.40s", kid ? kid : "(none)");
		goto out;
	}
	/* the key decides the family: an RS/ES public key is never an HS
	 * secret (algorithm confusion), nor is a secret a public key */
	if (!(k->algs & jwt_algs[ai].bit)) {
		snprintf(out->why, sizeof out->why, "alg %s does not fit the key (algorithm confusion)",
			 alg);
		goto out;
	}
	if (!(tok = malloc(n + 1)))
		goto out;
	memcpy(tok, t, n);
	tok[n] = '\0';
	int r = jwt_decode(&jwt, tok, k->key, (int)k->len);
	if (r != 0 || !jwt) {
		snprintf(out->why, sizeof out->why, "bad signature for alg %s", alg);
		goto out;
	}
	if (jwt_get_alg(jwt) != jwt_algs[ai].lib) {
		snprintf(out->why, sizeof out->why, "libjwt saw another alg than %s", alg);
		goto out;
	}
	if (!(claims = jwt_segment(d1 + 1, (size_t)(d2 - d1 - 1)))) {
		snprintf(out->why, sizeof out->why, "the payload is not a JSON object");
		goto out;
	}
	rc = jwt_check_claims(v, claims, cid, cid_len, now, out);
out:
	if (rc != JWT_ALLOW)
		jwt_result_clear(out);
	if (jwt)
		jwt_free(jwt);
	free(tok);
	json_decref(hdr);
	json_decref(claims);
	return rc;
}

void jwt_result_clear(struct jwt_result *r)
{
	free(r->user);
	rules_unref(r->rules);
	r->user = NULL;
	r->rules = NULL;
	r->user_len = 0;
}
