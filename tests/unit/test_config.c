/*
 * test_config.c - the Mosquitto-syntax configuration parser, the TLS
 * priority string and the password file check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/runner.h"
#include "transport/config.h"
#include "transport/passwd.h"
#include "transport/tls.h"

static char tmp_path[64];
static int warnings;
static char last_warning[640];

static void on_warn(void *user, const char *text)
{
	(void)user;
	warnings++;
	snprintf(last_warning, sizeof(last_warning), "%s", text);
}

/* Writes text to a temporary file and loads it into c. */
static int load_text(struct conf *c, const char *text, char *err, size_t errlen)
{
	snprintf(tmp_path, sizeof(tmp_path), "/tmp/midge-test-conf-XXXXXX");
	int fd = mkstemp(tmp_path);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	warnings = 0;
	last_warning[0] = '\0';
	int rc = conf_load(c, tmp_path, on_warn, NULL, err, errlen);
	unlink(tmp_path);
	return rc;
}

/* conf_init() and load_text() that must succeed: the parser's message is
 * printed before the test stops, so a failure says which line it hated. */
static void load_ok(struct conf *c, const char *text)
{
	char err[256];
	conf_init(c);
	if (load_text(c, text, err, sizeof(err)) != 0) {
		fprintf(stderr, "conf_load: %s\n", err);
		CU_FAIL_FATAL("configuration text refused");
	}
}

static void test_defaults(void)
{
	struct conf c;
	conf_init(&c);
	CU_ASSERT_EQUAL(c.n_listeners, 0);
	CU_ASSERT_EQUAL(c.sys_interval, 10);
	CU_ASSERT_EQUAL(c.max_connections, -1);
	CU_ASSERT_TRUE(c.engine.allow_anonymous);
	CU_ASSERT_FALSE(c.hooks_off);
	conf_clear(&c);
}

static void test_listener_blocks(void)
{
	struct conf c;
	char err[256];
	conf_init(&c);
	int rc = load_text(&c,
			   "# comment\n"
			   "\n"
			   "listener 1883 127.0.0.1\n"
			   "max_connections 10\n"
			   "listener 8883\n"
			   "  certfile /etc/c.pem  \n"
			   "keyfile /etc/k.pem\n"
			   "cafile /etc/ca.pem\n"
			   "require_certificate true\n"
			   "use_identity_as_username true\n"
			   "tls_version tlsv1.3\n"
			   "allow_anonymous true\n",
			   err, sizeof(err));
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_EQUAL_FATAL(c.n_listeners, 2);
	CU_ASSERT_STRING_EQUAL(c.listeners[0].host, "127.0.0.1");
	CU_ASSERT_EQUAL(c.listeners[0].port, 1883);
	CU_ASSERT_EQUAL(c.listeners[0].max_connections, 10);
	CU_ASSERT_PTR_NULL(c.listeners[0].certfile);
	CU_ASSERT_PTR_NULL(c.listeners[1].host);
	CU_ASSERT_EQUAL(c.listeners[1].port, 8883);
	CU_ASSERT_STRING_EQUAL(c.listeners[1].certfile, "/etc/c.pem");
	CU_ASSERT_STRING_EQUAL(c.listeners[1].keyfile, "/etc/k.pem");
	CU_ASSERT_STRING_EQUAL(c.listeners[1].cafile, "/etc/ca.pem");
	CU_ASSERT_TRUE(c.listeners[1].require_certificate);
	CU_ASSERT_TRUE(c.listeners[1].use_identity_as_username);
	CU_ASSERT_TRUE(c.allow_anonymous_set);
	CU_ASSERT_EQUAL(c.max_connections, -1);
	conf_clear(&c);
}

static void test_default_listener_port(void)
{
	struct conf c;
	load_ok(&c, "port 1884\nmax_connections 5\nlistener 9000\n");
	CU_ASSERT_EQUAL_FATAL(c.n_listeners, 2);
	CU_ASSERT_EQUAL(c.listeners[c.default_listener].port, 1884);
	CU_ASSERT_EQUAL(c.listeners[c.default_listener].max_connections, 5);
	CU_ASSERT_EQUAL(c.max_connections, 5);
	conf_clear(&c);
}

static void test_message_size_and_queue_zero(void)
{
	struct conf c;
	load_ok(&c, "max_packet_size 49152\nmessage_size_limit 32768\nmax_queued_messages 0\n");
	/* a payload bound, not a packet bound: max_packet_size stays */
	CU_ASSERT_EQUAL(c.engine.max_packet_size, 49152);
	CU_ASSERT_EQUAL(c.engine.message_size_limit, 32768);
	/* 0 ("unlimited") is accepted with a word on the bound it means */
	CU_ASSERT_EQUAL(c.engine.max_queued_messages, 0);
	CU_ASSERT_EQUAL(warnings, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(last_warning, "1048576"));
	conf_clear(&c);
}

static void test_engine_limits(void)
{
	struct conf c;
	load_ok(&c,
		"max_inflight_messages 7\n"
		"max_queued_messages 123\n"
		"max_queued_bytes 4096\n"
		"max_inflight_bytes 65536\n"
		"max_packet_size 2000\n"
		"max_keepalive 300\n"
		"queue_qos0_messages true\n"
		"retain_available false\n"
		"allow_zero_length_clientid false\n"
		"persistent_client_expiration 2d\n"
		"sys_interval 0\n");
	CU_ASSERT_EQUAL(c.engine.max_inflight, 7);
	CU_ASSERT_EQUAL(c.engine.max_queued_messages, 123);
	CU_ASSERT_EQUAL(c.engine.max_queued_bytes, 4096);
	CU_ASSERT_EQUAL(c.engine.max_inflight_bytes, 65536);
	CU_ASSERT_EQUAL(c.engine.max_packet_size, 2000);
	CU_ASSERT_EQUAL(c.engine.max_keepalive, 300);
	CU_ASSERT_TRUE(c.engine.queue_qos0_messages);
	CU_ASSERT_FALSE(c.engine.retain_available);
	CU_ASSERT_FALSE(c.engine.allow_zero_length_clientid);
	CU_ASSERT_EQUAL(c.engine.persistent_client_expiration, 2 * 86400);
	CU_ASSERT_EQUAL(c.sys_interval, 0);
	conf_clear(&c);
}

static void test_unknown_key_names_file_and_line(void)
{
	struct conf c;
	char err[256];
	conf_init(&c);
	CU_ASSERT_EQUAL(load_text(&c, "port 1883\n\nfrobnicate 3\n", err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, ":3: "));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "frobnicate"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, tmp_path));
	conf_clear(&c);
}

static void test_malformed_values(void)
{
	static const char *const bad[] = {
		"allow_anonymous yes\n", "port 70000\n",       "max_inflight_messages -3\n",
		"listener\n",            "listener abc\n",     "persistent_client_expiration 3x\n",
		"log_type loud\n",       "log_dest file\n",    "tls_version tlsv1\n",
		"max_qos 3\n",           "protocol websockets\n", "require_certificate 1\n",
		NULL,
	};
	for (int i = 0; bad[i]; i++) {
		struct conf c;
		char err[256];
		conf_init(&c);
		int rc = load_text(&c, bad[i], err, sizeof(err));
		CU_ASSERT_EQUAL(rc, -1);
		if (rc != -1)
			fprintf(stderr, "accepted: %s", bad[i]);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, ":1: "));
		conf_clear(&c);
	}
}

static void test_mosquitto_only_keys_warn(void)
{
	struct conf c;
	load_ok(&c, "acl_file /etc/acl\npersistence false\nauth_opt_x 1\n");
	CU_ASSERT_EQUAL(warnings, 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(last_warning, ":3: "));
	CU_ASSERT_PTR_NOT_NULL(strstr(last_warning, "auth_opt_x"));
	conf_clear(&c);
}

static void test_logging_and_hooks(void)
{
	struct conf c;
	load_ok(&c,
		"log_type error\n"
		"log_type subscribe\n"
		"log_dest file /var/log/midge.log\n"
		"log_dest syslog\n"
		"midge_hooks_endpoint tcp://127.0.0.1:7000\n"
		"midge_hooks_endpoint ipc:///tmp/x\n"
		"midge_hooks_hwm 50\n"
		"midge_node_name n1\n");
	CU_ASSERT_EQUAL(c.log_types & CONF_LOG_ALL, CONF_LOG_ERR | CONF_LOG_SUBSCRIBE);
	CU_ASSERT_TRUE(c.log_dests & CONF_DEST_FILE);
	CU_ASSERT_TRUE(c.log_dests & CONF_DEST_SYSLOG);
	CU_ASSERT_STRING_EQUAL(c.log_file, "/var/log/midge.log");
	CU_ASSERT_EQUAL(c.n_hooks_endpoints, 2);
	CU_ASSERT_STRING_EQUAL(c.hooks_endpoints[1], "ipc:///tmp/x");
	CU_ASSERT_EQUAL(c.hooks_hwm, 50);
	CU_ASSERT_STRING_EQUAL(c.node_name, "n1");
	CU_ASSERT_FALSE(c.hooks_off);
	conf_clear(&c);
	load_ok(&c, "midge_hooks_endpoint none\n");
	CU_ASSERT_TRUE(c.hooks_off);
	conf_clear(&c);
}

static void test_http_keys(void)
{
	struct conf c, old;
	char err[512];
	load_ok(&c,
		"midge_http_listener 8080 ::1\n"
		"midge_http_certfile /c.pem\n"
		"midge_http_keyfile /k.pem\n"
		"midge_http_password_file /p\n"
		"midge_http_admin alice bob\n"
		"midge_http_admin carol\n"
		"midge_http_sse_clients 3\n"
		"midge_http_sse_buffer 8192\n"
		"midge_http_max_body 2048\n");
	CU_ASSERT_TRUE(c.http.on);
	CU_ASSERT_EQUAL(c.http.port, 8080);
	CU_ASSERT_STRING_EQUAL(c.http.host, "::1");
	CU_ASSERT_EQUAL(c.http.n_admins, 3);
	CU_ASSERT_STRING_EQUAL(c.http.admins[2], "carol");
	CU_ASSERT_EQUAL(c.http.sse_clients, 3);
	CU_ASSERT_EQUAL(c.http.sse_buffer, 8192);
	CU_ASSERT_EQUAL(c.http.max_body, 2048);
	CU_ASSERT_PTR_NOT_NULL(strstr(c.http.where, ":1"));
	/* a reload keeps the running listener, takes the new credentials */
	old = c;
	conf_init(&c);
	load_ok(&c, "midge_http_listener 9090\nmidge_http_token_file /t\n");
	conf_take_http_listener(&c, &old);
	CU_ASSERT_EQUAL(c.http.port, 8080);
	CU_ASSERT_STRING_EQUAL(c.http.host, "::1");
	CU_ASSERT_STRING_EQUAL(c.http.token_file, "/t");
	CU_ASSERT_PTR_NULL(c.http.password_file);
	conf_clear(&old);
	conf_clear(&c);
	const char *bad[] = {"midge_http_listener x\n", "midge_http_listener 70000\n",
			     "midge_http_sse_buffer 10\n", "midge_http_admin\n",
			     "midge_http_certfile\n", "midge_http_nonsense 1\n"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		conf_init(&c);
		CU_ASSERT_EQUAL(load_text(&c, bad[i], err, sizeof(err)), -1);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, ":1:"));
		conf_clear(&c);
	}
}

static void test_tls_priority(void)
{
	struct conf_listener l;
	char buf[256];
	memset(&l, 0, sizeof(l));
	CU_ASSERT_EQUAL(tls_priority_string(&l, buf, sizeof(buf)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "-VERS-ALL"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "+VERS-TLS1.2"));
	CU_ASSERT_PTR_NULL(strstr(buf, "TLS1.1"));
	l.tls_version = (char *)"tlsv1.3";
	CU_ASSERT_EQUAL(tls_priority_string(&l, buf, sizeof(buf)), 0);
	CU_ASSERT_PTR_NULL(strstr(buf, "TLS1.2"));
	l.priority = (char *)"SECURE256";
	CU_ASSERT_EQUAL(tls_priority_string(&l, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "SECURE256");
}

/* Vectors made with mosquitto_passwd 2.0 (-H sha512-pbkdf2 and -H sha512). */
static void test_password_file(void)
{
	char err[256];
	snprintf(tmp_path, sizeof(tmp_path), "/tmp/midge-test-pw-XXXXXX");
	int fd = mkstemp(tmp_path);
	CU_ASSERT_FATAL(fd >= 0);
	const char *text =
		"alice:$7$101$NvXAw60AWfWNgvje$bdJvD/9qtMHjEB96EhtMZWJcuQEPH6Wf+oSRWtraZPT59krArKZ"
		"44WwnP1hvaK8y+6EBl20pZGBy+VEAWryiqg==\n"
		"bob:$6$0AYtCAbIaI1pyzcQ$9VVN1p0vNpfQgW2hU5k6DQng1+a6NEocWDM1wXLia7hVmq1iaSoiaR8ysH"
		"NuJcsY2Wtd840fS4KrQJQGXmvD4g==\n";
	CU_ASSERT_FATAL(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	struct passwd_db *db = passwd_load(tmp_path, err, sizeof(err));
	unlink(tmp_path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(db);
	CU_ASSERT_EQUAL(passwd_check(db, "alice", 5, "secret", 6), 0);
	CU_ASSERT_EQUAL(passwd_check(db, "alice", 5, "secreT", 6), -1);
	CU_ASSERT_EQUAL(passwd_check(db, "bob", 3, "hunter2", 7), 0);
	CU_ASSERT_EQUAL(passwd_check(db, "bob", 3, "hunter", 6), -1);
	CU_ASSERT_EQUAL(passwd_check(db, "carol", 5, "secret", 6), -1);
	CU_ASSERT_EQUAL(passwd_check(db, "alice", 5, NULL, 0), -1);
	passwd_free(db);

	fd = mkstemp(strcpy(tmp_path, "/tmp/midge-test-pw-XXXXXX"));
	CU_ASSERT_FATAL(write(fd, "dave:plaintext\n", 15) == 15);
	close(fd);
	db = passwd_load(tmp_path, err, sizeof(err));
	unlink(tmp_path);
	CU_ASSERT_PTR_NULL(db);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, ":1: "));
}

static const struct test_case cases[] = {
	{"defaults", test_defaults},
	{"listener blocks", test_listener_blocks},
	{"default listener from port", test_default_listener_port},
	{"engine limits", test_engine_limits},
	{"message_size_limit and max_queued_messages 0", test_message_size_and_queue_zero},
	{"unknown key names file and line", test_unknown_key_names_file_and_line},
	{"malformed values", test_malformed_values},
	{"Mosquitto-only keys warn", test_mosquitto_only_keys_warn},
	{"logging and hooks", test_logging_and_hooks},
	{"TLS priority string", test_tls_priority},
	{"HTTP server keys", test_http_keys},
	{"password file ($6$ and $7$)", test_password_file},
	{NULL, NULL},
};

static const struct test_suite config_suites[] = {
	{"config", cases},
	{NULL, NULL},
};

TEST_RUNNER_MAIN(config_suites)
