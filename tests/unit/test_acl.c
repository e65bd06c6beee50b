/*
 * test_acl.c - auth/acl*.c: the acl_file parser (Mosquitto's syntax, its
 * quirks and its errors), the topic decision (sections, patterns, deny
 * first, $ topics, dangerous names, whole-level substitution) and the
 * subscription-filter decision. Expected results are Mosquitto's
 * (src/security_default.c; 2.1's whole-level %c/%u); the differential
 * integration test checks the same against the real Mosquitto.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/acl.h"
#include "tests/unit/runner.h"

static int warnings;

static void on_warn(void *user, const char *text)
{
	(void)user;
	(void)text;
	warnings++;
}

static struct acl *parse_ok(const char *text)
{
	char err[400] = "";
	warnings = 0;
	struct acl *a = acl_parse(text, strlen(text), "t.acl", on_warn, NULL, err, sizeof err);
	if (!a)
		fprintf(stderr, "acl_parse: %s\n", err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	return a;
}

/* The error message of a text the parser must refuse, "" if accepted. */
static const char *parse_err(const char *text)
{
	static char err[400];
	err[0] = '\0';
	struct acl *a = acl_parse(text, strlen(text), "t.acl", NULL, NULL, err, sizeof err);
	if (a) {
		acl_free(a);
		return "";
	}
	return err;
}

static struct acl_who who(const char *cid, const char *user)
{
	struct acl_who w = {cid, strlen(cid), user, user ? strlen(user) : 0, user != NULL};
	return w;
}

static bool can(const struct acl *a, const char *cid, const char *user, const char *topic,
		enum acl_access access)
{
	struct acl_who w = who(cid, user);
	return acl_check(a, &w, (const uint8_t *)topic, strlen(topic), access);
}

static bool sub_ok(const struct acl *a, const char *cid, const char *user, const char *filter)
{
	struct acl_who w = who(cid, user);
	return acl_filter_readable(a, &w, (const uint8_t *)filter, strlen(filter));
}

static const char *const FILE_A =
	"# the anonymous section\n"
	"topic read public/#\n"
	"topic readwrite anon/rw\n"
	"\n"
	"user alice\n"
	"topic readwrite alice/#\n"
	"topic deny alice/secret/#\n"
	"topic write shared/in\n"
	"topic read $SYS/broker/clients/#\n"
	"user bob\n"
	"topic bob/x\n"
	"pattern readwrite devices/%c/#\n"
	"pattern read users/%u/inbox\n"
	"pattern deny devices/%c/locked\n"
	"pattern read nopat/here\n";

static void test_anonymous_section(void)
{
	struct acl *a = parse_ok(FILE_A);
	CU_ASSERT_EQUAL(warnings, 1); /* nopat/here: no %c or %u */
	CU_ASSERT_TRUE(can(a, "c1", NULL, "public/a", ACL_READ));
	CU_ASSERT_TRUE(can(a, "c1", NULL, "public", ACL_READ)); /* "x/#" matches "x" */
	CU_ASSERT_FALSE(can(a, "c1", NULL, "public/a", ACL_WRITE));
	CU_ASSERT_TRUE(can(a, "c1", NULL, "anon/rw", ACL_WRITE));
	CU_ASSERT_FALSE(can(a, "c1", NULL, "anon/rw/x", ACL_WRITE));
	/* patterns apply to anonymous clients too, but not those with %u */
	CU_ASSERT_TRUE(can(a, "c1", NULL, "devices/c1/t", ACL_READ));
	CU_ASSERT_FALSE(can(a, "c1", NULL, "users/c1/inbox", ACL_READ));
	CU_ASSERT_FALSE(can(a, "c1", NULL, "devices/c1/locked", ACL_READ)); /* pattern deny */
	CU_ASSERT_TRUE(can(a, "c1", NULL, "nopat/here", ACL_READ));
	/* the anonymous section is not a user's */
	CU_ASSERT_FALSE(can(a, "c1", "alice", "public/a", ACL_READ));
	acl_free(a);
}

static void test_user_section(void)
{
	struct acl *a = parse_ok(FILE_A);
	CU_ASSERT_TRUE(can(a, "a1", "alice", "alice/x", ACL_READ));
	CU_ASSERT_TRUE(can(a, "a1", "alice", "alice/x", ACL_WRITE));
	CU_ASSERT_FALSE(can(a, "a1", "alice", "alice/secret/k", ACL_READ));
	CU_ASSERT_FALSE(can(a, "a1", "alice", "alice/secret", ACL_WRITE));
	CU_ASSERT_TRUE(can(a, "a1", "alice", "shared/in", ACL_WRITE));
	CU_ASSERT_FALSE(can(a, "a1", "alice", "shared/in", ACL_READ));
	CU_ASSERT_TRUE(can(a, "a1", "alice", "$SYS/broker/clients/total", ACL_READ));
	CU_ASSERT_FALSE(can(a, "a1", "alice", "$SYS/broker/load", ACL_READ));
	CU_ASSERT_TRUE(can(a, "a1", "alice", "users/alice/inbox", ACL_READ));
	CU_ASSERT_FALSE(can(a, "a1", "alice", "users/bob/inbox", ACL_READ));
	CU_ASSERT_TRUE(can(a, "a1", "alice", "devices/a1/x", ACL_WRITE));
	CU_ASSERT_TRUE(can(a, "b1", "bob", "bob/x", ACL_WRITE));
	CU_ASSERT_FALSE(can(a, "b1", "bob", "alice/x", ACL_READ));
	/* a user without a section gets the patterns */
	CU_ASSERT_TRUE(can(a, "c9", "carol", "users/carol/inbox", ACL_READ));
	CU_ASSERT_TRUE(can(a, "c9", "carol", "devices/c9/x", ACL_READ));
	CU_ASSERT_FALSE(can(a, "c9", "carol", "devices/c8/x", ACL_READ));
	/* an empty user name is a name, with no section of its own */
	CU_ASSERT_FALSE(can(a, "c1", "", "public/a", ACL_READ));
	CU_ASSERT_FALSE(can(a, "c1", "", "users//inbox", ACL_READ));
	acl_free(a);
}

/* A user name or client id with + or # gets nothing from the patterns
 * (it would widen them), but keeps its own section. */
static void test_dangerous_names(void)
{
	struct acl *a = parse_ok(FILE_A);
	CU_ASSERT_TRUE(can(a, "x#", "alice", "alice/x", ACL_READ));
	CU_ASSERT_FALSE(can(a, "x#", "alice", "nopat/here", ACL_READ));
	CU_ASSERT_FALSE(can(a, "c1", "ev+l", "nopat/here", ACL_READ));
	CU_ASSERT_FALSE(can(a, "+", NULL, "devices/+/x", ACL_READ));
	CU_ASSERT_FALSE(sub_ok(a, "x#", NULL, "nopat/here"));
	acl_free(a);
}

/* %c and %u are substituted only as a whole level (Mosquitto 2.1); a
 * value with '/' or an empty one matches no level. */
static void test_pattern_whole_level(void)
{
	struct acl *a = parse_ok("pattern read d/%c/x\npattern read pre%c/y\npattern read %u\n");
	CU_ASSERT_TRUE(can(a, "abc", NULL, "d/abc/x", ACL_READ));
	CU_ASSERT_FALSE(can(a, "abc", NULL, "d/ab/x", ACL_READ));
	CU_ASSERT_FALSE(can(a, "abc", NULL, "d/abcd/x", ACL_READ));
	CU_ASSERT_FALSE(can(a, "a/b", NULL, "d/a/b/x", ACL_READ));
	CU_ASSERT_FALSE(can(a, "", NULL, "d//x", ACL_READ));
	CU_ASSERT_FALSE(can(a, "abc", NULL, "preabc/y", ACL_READ));
	CU_ASSERT_TRUE(can(a, "abc", NULL, "pre%c/y", ACL_READ));
	CU_ASSERT_TRUE(can(a, "c", "u1", "u1", ACL_READ));
	CU_ASSERT_FALSE(can(a, "c", "u1", "u1/x", ACL_READ));
	/* a client id of "%u" is a literal value, not a second substitution */
	CU_ASSERT_FALSE(can(a, "%u", "u1", "d/u1/x", ACL_READ));
	CU_ASSERT_TRUE(can(a, "%u", "u1", "d/%u/x", ACL_READ));
	acl_free(a);
}

/* [MQTT-4.7.2-1]: a rule whose first level is a wildcard or a pattern
 * never matches a topic starting with $. */
static void test_dollar_topics(void)
{
	struct acl *a = parse_ok("topic read #\ntopic read +/x\npattern read %c/#\n");
	CU_ASSERT_TRUE(can(a, "c", NULL, "foo", ACL_READ));
	CU_ASSERT_FALSE(can(a, "c", NULL, "$SYS/broker/load", ACL_READ));
	CU_ASSERT_FALSE(can(a, "c", NULL, "$a/x", ACL_READ));
	CU_ASSERT_FALSE(can(a, "$c", NULL, "$c/y", ACL_READ));
	CU_ASSERT_TRUE(sub_ok(a, "c", NULL, "#"));
	CU_ASSERT_FALSE(sub_ok(a, "c", NULL, "$SYS/#"));
	CU_ASSERT_FALSE(sub_ok(a, "$c", NULL, "$c/#"));
	acl_free(a);
}

/* Denies win within a section wherever they stand; a section's deny is
 * final, a section's silence falls through to the patterns. */
static void test_deny_order(void)
{
	struct acl *a = parse_ok("user u\ntopic read a/#\ntopic deny a/b\ntopic read a/b\n"
				 "pattern read a/%u\npattern read a/b\n");
	CU_ASSERT_TRUE(can(a, "c", "u", "a/c", ACL_READ));
	CU_ASSERT_FALSE(can(a, "c", "u", "a/b", ACL_READ));
	/* read rule matched but wrong access: on to the patterns */
	CU_ASSERT_FALSE(can(a, "c", "u", "a/c", ACL_WRITE));
	acl_free(a);
	a = parse_ok("user u\ntopic write a/#\npattern read a/%u\npattern deny a/#\n");
	CU_ASSERT_TRUE(can(a, "c", "u", "a/x", ACL_WRITE));
	CU_ASSERT_FALSE(can(a, "c", "u", "a/u", ACL_READ)); /* pattern deny first */
	acl_free(a);
}

static void test_empty_file(void)
{
	struct acl *a = parse_ok("# nothing\n\n   \n");
	CU_ASSERT_FALSE(can(a, "c", NULL, "x", ACL_READ));
	CU_ASSERT_FALSE(can(a, "c", "u", "x", ACL_WRITE));
	CU_ASSERT_FALSE(sub_ok(a, "c", "u", "#"));
	acl_free(a);
	/* a user line with no topic lines makes no section */
	a = parse_ok("user u\npattern read %u/#\n");
	CU_ASSERT_TRUE(can(a, "c", "u", "u/x", ACL_READ));
	acl_free(a);
}

/* Mosquitto's tokenizer: spaces separate, a tab does not; the topic is
 * the rest of the line, blanks trimmed; `topic X` alone is read-write. */
static void test_parse_quirks(void)
{
	struct acl *a = parse_ok("topic read\r\nuser   bob  \n  topic read   a b \ntopic x/y\n");
	CU_ASSERT_TRUE(can(a, "c", NULL, "read", ACL_WRITE)); /* a topic named read */
	CU_ASSERT_TRUE(can(a, "c", "bob", "a b", ACL_READ));
	CU_ASSERT_TRUE(can(a, "c", "bob", "x/y", ACL_WRITE));
	size_t rules, users;
	acl_counts(a, &rules, &users);
	CU_ASSERT_EQUAL(rules, 3);
	CU_ASSERT_EQUAL(users, 1);
	acl_free(a);
	/* user names may hold spaces; sections of the same name merge */
	a = parse_ok("user a b\ntopic x\nuser c\ntopic y\nuser a b\ntopic z\n");
	CU_ASSERT_TRUE(can(a, "c", "a b", "z", ACL_READ));
	CU_ASSERT_TRUE(can(a, "c", "a b", "x", ACL_READ));
	CU_ASSERT_FALSE(can(a, "c", "a b", "y", ACL_READ));
	acl_free(a);
}

static void test_parse_errors(void)
{
	CU_ASSERT_PTR_NOT_NULL(strstr(parse_err("topic\n"), "t.acl:1: empty topic"));
	CU_ASSERT_PTR_NOT_NULL(strstr(parse_err("\ntopic foo bar\n"), "t.acl:2: invalid topic access"));
	CU_ASSERT_PTR_NOT_NULL(strstr(parse_err("topic read a/#/b\n"), "invalid ACL topic"));
	CU_ASSERT_PTR_NOT_NULL(strstr(parse_err("topic read a+\n"), "invalid ACL topic"));
	CU_ASSERT_PTR_NOT_NULL(strstr(parse_err("  # indented\n"), "invalid line"));
	CU_ASSERT_PTR_NOT_NULL(strstr(parse_err("user\n"), "missing username"));
	CU_ASSERT_PTR_NOT_NULL(strstr(parse_err("user    \n"), "missing username"));
	CU_ASSERT_PTR_NOT_NULL(strstr(parse_err("topic\tread x\n"), "invalid line"));
	CU_ASSERT_PTR_NOT_NULL(strstr(parse_err("allow all\n"), "invalid line"));
	CU_ASSERT_STRING_EQUAL(parse_err("topic read a/+/#\npattern deny +/%c\n"), "");
}

static void test_parse_bounds(void)
{
	/* a line longer than the bound, 201 slashes, a file too large */
	size_t n = ACL_MAX_LINE + 10;
	char *big = malloc(n + 16);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memcpy(big, "topic read ", 11);
	memset(big + 11, 'a', n - 11);
	big[n] = '\0';
	CU_ASSERT_PTR_NOT_NULL(strstr(parse_err(big), "line longer"));
	char deep[600] = "topic read ";
	for (int i = 0; i < 201; i++)
		strcat(deep, "a/");
	strcat(deep, "a");
	CU_ASSERT_PTR_NOT_NULL(strstr(parse_err(deep), "invalid ACL topic"));
	char err[200];
	CU_ASSERT_PTR_NULL(acl_parse(big, ACL_MAX_FILE + 1, "t", NULL, NULL, err, sizeof err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "larger than"));
	free(big);
	/* a NUL ends a line's text, as fgets() and strlen() make it */
	struct acl *a = acl_parse("topic read a\0junk\ntopic b\n", 25, "t", NULL, NULL, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_TRUE(can(a, "c", NULL, "a", ACL_READ));
	CU_ASSERT_TRUE(can(a, "c", NULL, "b", ACL_READ));
	acl_free(a);
}

/* A SUBSCRIBE is refused only when nothing the filter matches could be
 * read. */
static void test_filter_readable(void)
{
	struct acl *a = parse_ok(FILE_A);
	CU_ASSERT_TRUE(sub_ok(a, "a1", "alice", "alice/#"));
	CU_ASSERT_TRUE(sub_ok(a, "a1", "alice", "#"));
	CU_ASSERT_TRUE(sub_ok(a, "a1", "alice", "+/x"));
	CU_ASSERT_FALSE(sub_ok(a, "a1", "alice", "alice/secret/#"));
	CU_ASSERT_FALSE(sub_ok(a, "a1", "alice", "alice/secret/+/x"));
	CU_ASSERT_FALSE(sub_ok(a, "a1", "alice", "alice/secret"));
	CU_ASSERT_FALSE(sub_ok(a, "a1", "alice", "public/#"));
	CU_ASSERT_FALSE(sub_ok(a, "a1", "alice", "shared/in")); /* write only */
	CU_ASSERT_TRUE(sub_ok(a, "a1", "alice", "+/+/inbox"));
	CU_ASSERT_TRUE(sub_ok(a, "a1", "alice", "$SYS/#"));
	CU_ASSERT_TRUE(sub_ok(a, "a1", "alice", "$SYS/broker/+/x"));
	CU_ASSERT_FALSE(sub_ok(a, "a1", "alice", "$SYS/broker/load/#"));
	CU_ASSERT_FALSE(sub_ok(a, "c1", NULL, "$SYS/#"));
	CU_ASSERT_TRUE(sub_ok(a, "c1", NULL, "#"));
	CU_ASSERT_TRUE(sub_ok(a, "c1", NULL, "devices/c1/#"));
	CU_ASSERT_FALSE(sub_ok(a, "c1", NULL, "devices/c2/#"));
	CU_ASSERT_FALSE(sub_ok(a, "c1", NULL, "devices/c1/locked"));
	CU_ASSERT_TRUE(sub_ok(a, "a1", "alice", "$share/g/alice/#"));
	CU_ASSERT_FALSE(sub_ok(a, "a1", "alice", "$share/g/public/#"));
	acl_free(a);
}

/* What a client may read it may subscribe to: for each topic the check
 * allows, the topic as a filter, and every wildcard form of it, must be
 * readable (the refusal is never wrong). */
static void test_filter_sound(void)
{
	struct acl *a = parse_ok(FILE_A);
	static const char *const topics[] = {"public/a", "alice/x", "alice/secret", "devices/a1/z",
					     "users/alice/inbox", "$SYS/broker/clients/total",
					     "nopat/here", "bob/x", NULL};
	static const char *const users[] = {"alice", "bob", NULL};
	for (int u = 0; u < 3; u++)
		for (int i = 0; topics[i]; i++) {
			if (!can(a, "a1", users[u], topics[i], ACL_READ))
				continue;
			CU_ASSERT_TRUE(sub_ok(a, "a1", users[u], topics[i]));
			if (topics[i][0] != '$')
				CU_ASSERT_TRUE(sub_ok(a, "a1", users[u], "#"));
			char f[100];
			snprintf(f, sizeof f, "+%s", strchr(topics[i], '/'));
			if (topics[i][0] != '$')
				CU_ASSERT_TRUE(sub_ok(a, "a1", users[u], f));
		}
	acl_free(a);
}

static void test_load_file(void)
{
	char path[] = "/tmp/midge-test-acl-XXXXXX";
	int fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(write(fd, FILE_A, strlen(FILE_A)) == (ssize_t)strlen(FILE_A));
	close(fd);
	char err[300];
	struct acl *a = acl_load(path, NULL, NULL, err, sizeof err);
	unlink(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_TRUE(can(a, "a1", "alice", "alice/x", ACL_READ));
	acl_free(a);
	CU_ASSERT_PTR_NULL(acl_load("/nonexistent/acl", NULL, NULL, err, sizeof err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot open"));
	acl_free(NULL);
}

/* Many users: a check looks at one section, found by name. */
static void test_many_users(void)
{
	size_t cap = 20000 * 40;
	char *text = malloc(cap);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	size_t n = 0;
	for (int i = 0; i < 20000; i++)
		n += (size_t)snprintf(text + n, cap - n, "user u%d\ntopic readwrite t/%d/#\n", i, i);
	char err[200];
	struct acl *a = acl_parse(text, n, "big", NULL, NULL, err, sizeof err);
	free(text);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_TRUE(can(a, "c", "u12345", "t/12345/x", ACL_WRITE));
	CU_ASSERT_FALSE(can(a, "c", "u12345", "t/12346/x", ACL_WRITE));
	CU_ASSERT_FALSE(can(a, "c", "u20000", "t/20000", ACL_WRITE));
	acl_free(a);
}

static const struct test_case acl_cases[] = {
	{"anonymous section", test_anonymous_section},
	{"user section", test_user_section},
	{"dangerous names", test_dangerous_names},
	{"pattern whole level", test_pattern_whole_level},
	{"MQTT-4.7.2-1 dollar topics", test_dollar_topics},
	{"deny order", test_deny_order},
	{"empty file", test_empty_file},
	{"parse quirks", test_parse_quirks},
	{"parse errors", test_parse_errors},
	{"parse bounds", test_parse_bounds},
	{"filter readable", test_filter_readable},
	{"filter sound", test_filter_sound},
	{"load file", test_load_file},
	{"many users", test_many_users},
	{NULL, NULL},
};

static const struct test_suite suites[] = {
	{"acl", acl_cases},
	{NULL, NULL},
};

TEST_RUNNER_MAIN(suites)
