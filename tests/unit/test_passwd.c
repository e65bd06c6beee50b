/*
 * test_passwd.c - auth/: password files in the three formats Mosquitto
 * writes (vectors from mosquitto_passwd 2.0, the argon2 command-line tool
 * and Python's argon2-cffi), the file reader's rules and bounds, the
 * hashes `midge passwd` writes (checked again by libargon2's own
 * verifier), the cost of an unknown user, and psk_file.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <argon2.h>

#include "auth/passwd.h"
#include "auth/psk.h"
#include "auth/pwfile.h"
#include "tests/unit/runner.h"

static char err[512];

static struct passwd_db *parse(const char *text)
{
	err[0] = '\0';
	return passwd_parse(text, strlen(text), "pw", err, sizeof(err));
}

static int check(const struct passwd_db *db, const char *user, const char *pw)
{
	return passwd_check(db, user, strlen(user), pw, pw ? strlen(pw) : 0);
}

/* Vectors made with mosquitto_passwd 2.0 (-H sha512-pbkdf2 and -H sha512). */
static void test_mosquitto_2_0(void)
{
	struct passwd_db *db = parse(
		"alice:$7$101$NvXAw60AWfWNgvje$bdJvD/9qtMHjEB96EhtMZWJcuQEPH6Wf+oSRWtraZPT59krArKZ"
		"44WwnP1hvaK8y+6EBl20pZGBy+VEAWryiqg==\n"
		"bob:$6$0AYtCAbIaI1pyzcQ$9VVN1p0vNpfQgW2hU5k6DQng1+a6NEocWDM1wXLia7hVmq1iaSoiaR8ysH"
		"NuJcsY2Wtd840fS4KrQJQGXmvD4g==\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(db);
	CU_ASSERT_EQUAL(passwd_count(db), 2);
	CU_ASSERT_EQUAL(check(db, "alice", "secret"), 0);
	CU_ASSERT_EQUAL(check(db, "alice", "secreT"), -1);
	CU_ASSERT_EQUAL(check(db, "bob", "hunter2"), 0);
	CU_ASSERT_EQUAL(check(db, "bob", "hunter"), -1);
	CU_ASSERT_EQUAL(check(db, "carol", "secret"), -1);
	CU_ASSERT_EQUAL(check(db, "alice", NULL), -1);
	CU_ASSERT_EQUAL(check(db, "Alice", "secret"), -1);
	passwd_unref(db);
}

/* Made by the argon2 tool (Debian's `argon2`, the reference code) and
 * by Python's argon2-cffi with its defaults (m=100 MiB, t=2, p=8). */
static void test_argon2id_vectors(void)
{
	struct passwd_db *db = parse(
		"a:$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0$GMv1V/a9uBNqF+93SqBH3JLZiqfe1V1xP9Sf"
		"OSAqqRE\n"
		"b:$argon2id$v=19$m=4096,t=2,p=2$MDEyMzQ1Njc4OWFiY2RlZg$gXLiwOxe2jz6telP41Y9Ug\n"
		"c:$argon2id$v=16$m=256,t=1,p=1$c29tZXNhbHR2YWx1ZQ$IDuQ7nZLe6wJu1y5U4OXd6poKk/s0ifEClL"
		"EsCoS2R0\n"
		"d:$argon2id$v=19$m=102400,t=2,p=8$plCsc65BOG6FMyo6NvLTBw$Pl05WRCt9BN0J4LFOVT0KQ\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(db);
	CU_ASSERT_EQUAL(check(db, "a", "secret"), 0);
	CU_ASSERT_EQUAL(check(db, "a", "secret "), -1);
	CU_ASSERT_EQUAL(check(db, "b", "hunter2"), 0);
	CU_ASSERT_EQUAL(check(db, "b", "hunter3"), -1);
	CU_ASSERT_EQUAL(check(db, "c", "old"), 0);
	CU_ASSERT_EQUAL(check(db, "c", "new"), -1);
	CU_ASSERT_EQUAL(check(db, "d", "pyth0n"), 0);
	CU_ASSERT_EQUAL(check(db, "d", "python"), -1);
	passwd_unref(db);
	/* argon2i and argon2d are not what Mosquitto writes: refused */
	CU_ASSERT_PTR_NULL(parse("a:$argon2i$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0$GYmiOk1cEj5J7+Ojpe"
				 "Jt3dB1+CvfuU5HO+coyqLrizE\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "pw:1: "));
}

/* What midge passwd writes: Mosquitto 2.1's argon2id parameters, which
 * libargon2's own verifier (decoding the string itself) accepts too. */
static void test_hash_roundtrip(void)
{
	static const enum passwd_kind kinds[] = {PASSWD_ARGON2ID, PASSWD_PBKDF2_SHA512,
						 PASSWD_SHA512};
	const char pw[] = "p\0ss:w\xc3\xb6rd"; /* MQTT passwords are binary */
	for (size_t k = 0; k < 3; k++) {
		char hash[512], line[600];
		CU_ASSERT_EQUAL_FATAL(passwd_hash(kinds[k], 1000, pw, sizeof(pw) - 1, hash,
						  sizeof(hash)), 0);
		CU_ASSERT(passwd_is_hash(hash, strlen(hash)));
		if (kinds[k] == PASSWD_ARGON2ID) {
			CU_ASSERT_EQUAL(strncmp(hash, "$argon2id$v=19$m=47104,t=1,p=1$", 31), 0);
			CU_ASSERT_EQUAL(argon2id_verify(hash, pw, sizeof(pw) - 1), ARGON2_OK);
			CU_ASSERT_NOT_EQUAL(argon2id_verify(hash, pw, sizeof(pw) - 2), ARGON2_OK);
		} else {
			CU_ASSERT_EQUAL(strncmp(hash, kinds[k] == PASSWD_SHA512 ? "$6$" : "$7$1000$", 3),
					0);
		}
		snprintf(line, sizeof(line), "  user : %s \r\n", hash);
		struct passwd_db *db = parse(line);
		CU_ASSERT_PTR_NOT_NULL_FATAL(db);
		CU_ASSERT_EQUAL(passwd_check(db, "user", 4, pw, sizeof(pw) - 1), 0);
		CU_ASSERT_EQUAL(passwd_check(db, "user", 4, pw, 1), -1);
		CU_ASSERT_EQUAL(passwd_check(db, "user", 4, pw, sizeof(pw) - 2), -1);
		passwd_unref(db);
	}
	char small[20];
	CU_ASSERT_EQUAL(passwd_hash(PASSWD_ARGON2ID, 0, "x", 1, small, sizeof(small)), -1);
}

/* Mosquitto's line rules, and midge's refusals (each naming the line). */
static void test_file_rules(void)
{
	char h[256], text[1024];
	CU_ASSERT_EQUAL_FATAL(passwd_hash(PASSWD_SHA512, 0, "pw", 2, h, sizeof(h)), 0);
	snprintf(text, sizeof(text), "# comment\n\n   \n\tu1:%s\n#u2:%s\nu3 :\t%s", h, h, h);
	struct passwd_db *db = parse(text);
	CU_ASSERT_PTR_NOT_NULL_FATAL(db);
	CU_ASSERT_EQUAL(passwd_count(db), 2);
	CU_ASSERT_EQUAL(check(db, "u1", "pw"), 0);
	CU_ASSERT_EQUAL(check(db, "u2", "pw"), -1);
	CU_ASSERT_EQUAL(check(db, "u3", "pw"), 0);
	passwd_unref(db);

	static const struct {
		const char *text, *why;
	} bad[] = {
		{"dave:plaintext\n", "pw:1: password of 'dave' is in plain text"},
		{"\n\nnocolon\n", "pw:3: expected name:secret"},
		{":$6$x$y\n", "pw:1: empty name"},
		{"eve:\n", "pw:1: nothing after ':'"},
		{"a:$7$0$NvXAw60AWfWNgvje$bdJvD/9qtMHjEB96EhtMZWJcuQEPH6Wf+oSRWtraZPT59krArKZ44Ww"
		 "nP1hvaK8y+6EBl20pZGBy+VEAWryiqg==\n", "pw:1: password of 'a' is not a hash"},
		{"a:$7$10000001$NvXAw60AWfWNgvje$bdJvD/9qtMHjEB96EhtMZWJcuQEPH6Wf+oSRWtraZPT59krArK"
		 "Z44WwnP1hvaK8y+6EBl20pZGBy+VEAWryiqg==\n", "not a hash"},
		/* a hash of 63 bytes is not SHA-512 */
		{"a:$6$0AYtCAbIaI1pyzcQ$9VVN1p0vNpfQgW2hU5k6DQng1+a6NEocWDM1wXLia7hVmq1iaSoiaR8ysHNuJ"
		 "csY2Wtd840fS4KrQJQGXmvD\n", "not a hash"},
		{"a:$argon2id$v=19$m=2097152,t=1,p=1$c2FsdHNhbHRzYWx0$GMv1V/a9uBNqF+93SqBH3JLZiqfe1V1x"
		 "P9SfOSAqqRE\n", "not a hash"},
		{"a:$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0=$GMv1V/a9uBNqF+93SqBH3JLZiqfe1V1x"
		 "P9SfOSAqqRE\n", "not a hash"},
		{"a:$argon2id$v=18$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0$GMv1V/a9uBNqF+93SqBH3JLZiqfe1V1x"
		 "P9SfOSAqqRE\n", "not a hash"},
		{"a:$argon2id$v=19$t=1,m=1024,p=1$c2FsdHNhbHRzYWx0$GMv1V/a9uBNqF+93SqBH3JLZiqfe1V1x"
		 "P9SfOSAqqRE\n", "not a hash"},
		{"\x01\n:x", "pw:1: expected name:secret"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CU_ASSERT_PTR_NULL(parse(bad[i].text));
		if (!strstr(err, bad[i].why))
			printf("\n  case %zu: '%s' lacks '%s'\n", i, err, bad[i].why);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i].why));
	}
	/* a name twice: which line wins would be a guess */
	snprintf(text, sizeof(text), "u:%s\nv:%s\nu:%s\n", h, h, h);
	CU_ASSERT_PTR_NULL(parse(text));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "pw: user 'u' appears twice"));
	/* control characters of a name are escaped in the message */
	CU_ASSERT_PTR_NULL(parse("a\nb\x1b[2J:plain\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "pw:1: "));
	CU_ASSERT_PTR_NULL(parse("ab\x1b[2J:plain\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "'ab\\x1b[2J'"));
	/* an empty file is a file with no users */
	db = parse("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(db);
	CU_ASSERT_EQUAL(check(db, "anyone", ""), -1);
	passwd_unref(db);
	/* a missing file names itself */
	CU_ASSERT_PTR_NULL(passwd_load("/nonexistent/midge-pw", err, sizeof(err)));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "password_file /nonexistent/midge-pw: cannot open"));
}

/* The calling thread's CPU time: both checks hash on this thread (argon2
 * with one lane starts none), and other processes on a busy machine then
 * do not decide the comparison, as they did with the wall clock. */
static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}

/*
 * An unknown user costs what a known one does: the medians of repeated
 * checks (interleaved, so load on the machine hits both alike) differ by
 * less than a quarter. Before the dummy entry an unknown user was
 * answered without hashing: thousands of times faster.
 */
static void timing_case(const char *name, const char *hash, size_t users)
{
	enum { ROUNDS = 15 };
	size_t cap = users * 600 + 1;
	char *text = malloc(cap), *p = text;
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	for (size_t i = 0; i < users; i++)
		p += snprintf(p, cap - (size_t)(p - text), "user%zu:%s\n", i, hash);
	struct passwd_db *db = parse(text);
	free(text);
	CU_ASSERT_PTR_NOT_NULL_FATAL(db);
	double known[ROUNDS], unknown[ROUNDS];
	for (int r = 0; r < ROUNDS; r++) {
		double t0 = now_s();
		CU_ASSERT_EQUAL(check(db, "user0", "wrong"), -1);
		double t1 = now_s();
		CU_ASSERT_EQUAL(check(db, "nobody", "wrong"), -1);
		double t2 = now_s();
		known[r] = t1 - t0;
		unknown[r] = t2 - t1;
	}
	double mk = median(known, ROUNDS), mu = median(unknown, ROUNDS);
	double diff = mk > mu ? mk - mu : mu - mk;
	printf("\n  %s: known %.2f ms, unknown %.2f ms (median of %d)\n", name, mk * 1e3,
	       mu * 1e3, ROUNDS);
	CU_ASSERT(diff < 0.25 * mk);
	passwd_unref(db);
}

static void test_unknown_user_costs_the_same(void)
{
	char h[512];
	CU_ASSERT_EQUAL_FATAL(passwd_hash(PASSWD_PBKDF2_SHA512, 20000, "right", 5, h, sizeof(h)), 0);
	timing_case("PBKDF2, 20000 iterations", h, 3);
	timing_case("argon2id, m=1024,t=1,p=1",
		    "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0$GMv1V/a9uBNqF+93SqBH3JLZiqfe1V1x"
		    "P9SfOSAqqRE", 2);
}

static void test_psk_file(void)
{
	const char *text = "# identities\nid1:0123456789abcdefABCDEF\n  id2 : 00ff \n";
	struct psk_db *db = psk_parse(text, strlen(text), "psk", err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(db);
	CU_ASSERT_EQUAL(psk_count(db), 2);
	uint8_t key[PSK_MAX_KEY];
	CU_ASSERT_EQUAL(psk_lookup(db, "id1", 3, key), 11);
	CU_ASSERT_EQUAL(key[0], 0x01);
	CU_ASSERT_EQUAL(key[10], 0xef);
	CU_ASSERT_EQUAL(psk_lookup(db, "id2", 3, key), 2);
	CU_ASSERT_EQUAL(key[1], 0xff);
	CU_ASSERT_EQUAL(psk_lookup(db, "id3", 3, key), -1);
	CU_ASSERT_EQUAL(psk_lookup(db, "id", 2, key), -1);
	psk_unref(db);
	static const char *bad[] = {"id:abc\n", "id:zz\n", "id\n", "a:00\na:11\n"};
	for (size_t i = 0; i < 4; i++) {
		CU_ASSERT_PTR_NULL(psk_parse(bad[i], strlen(bad[i]), "psk", err, sizeof(err)));
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "psk"));
	}
}

static void test_printable(void)
{
	char buf[300];
	CU_ASSERT_STRING_EQUAL(pwfile_printable("a\nb\\", 4, buf, sizeof(buf)), "a\\x0ab\\x5c");
	char longname[100];
	memset(longname, 'x', sizeof(longname));
	CU_ASSERT_EQUAL(strlen(pwfile_printable(longname, sizeof(longname), buf, sizeof(buf))), 67);
}

static const struct test_case cases[] = {
	{"mosquitto_passwd 2.0 files ($7$, $6$)", test_mosquitto_2_0},
	{"argon2id from the argon2 tool and argon2-cffi", test_argon2id_vectors},
	{"hashes midge passwd writes", test_hash_roundtrip},
	{"file rules and refusals", test_file_rules},
	{"an unknown user costs what a known one does", test_unknown_user_costs_the_same},
	{"psk_file", test_psk_file},
	{"names in messages", test_printable},
	{NULL, NULL},
};

static const struct test_suite suites[] = {
	{"passwd", cases},
	{NULL, NULL},
};

TEST_RUNNER_MAIN(suites)
