/*
 * test_codec.c - the codec: hand-written byte vectors for every packet type
 * and protocol level, malformed packets with their exact reason codes,
 * chunking invariance of the frame scanner, round trips through the
 * encoder for every type, level and property, and the UTF-8 / topic
 * validators.
 */
#include "codec/codec.h"
#include "codec/internal.h"
#include "tests/unit/runner.h"
#include "tests/unit/test_codec_compare.h"
#include "tests/unit/test_codec_vectors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Scans and decodes one whole packet the way the transport does. The body
 * is copied into a buffer of exactly its size so that ASan sees any read
 * past it; *copy receives that buffer (free it). */
static int decode_packet(const uint8_t *b, size_t n, uint8_t version, struct codec_packet *pkt,
			 uint8_t **copy)
{
	struct codec_frame fr;
	int rc = codec_frame_scan(b, n, 0, &fr);

	*copy = NULL;
	if (rc != 0)
		return rc;
	if (fr.header_len + (size_t)fr.remaining != n)
		return 1000; /* the vector itself is wrong */
	*copy = malloc(fr.remaining ? fr.remaining : 1);
	if (fr.remaining)
		memcpy(*copy, b + fr.header_len, fr.remaining);
	return codec_decode(fr.first, *copy, fr.remaining, version, pkt);
}

static const struct vec *find_vec(const char *name)
{
	for (size_t i = 0; i < N_VALID; i++)
		if (strcmp(valid_vectors[i].name, name) == 0)
			return &valid_vectors[i];
	return NULL;
}

/* Decodes the named valid vector into *pkt; the returned buffer backs the
 * views and must be freed. */
static uint8_t *decode_named(const char *name, struct codec_packet *pkt)
{
	const struct vec *v = find_vec(name);
	uint8_t *copy = NULL;
	int rc;

	CU_ASSERT_PTR_NOT_NULL_FATAL(v);
	rc = decode_packet(v->bytes, v->len, v->version, pkt, &copy);
	if (rc != 0)
		fprintf(stderr, "\n%s: rc %d\n", name, rc);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	return copy;
}

static int buf_is(struct codec_buf b, const char *s)
{
	return b.len == strlen(s) && memcmp(b.p, s, b.len) == 0;
}

/* ---- valid vectors ---------------------------------------------------- */

static void test_valid_all_decode(void)
{
	for (size_t i = 0; i < N_VALID; i++) {
		struct codec_packet pkt;
		uint8_t *copy;
		int rc = decode_packet(valid_vectors[i].bytes, valid_vectors[i].len,
				       valid_vectors[i].version, &pkt, &copy);
		if (rc != 0)
			fprintf(stderr, "\n%s: rc %d\n", valid_vectors[i].name, rc);
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT_EQUAL(pkt.type, valid_vectors[i].bytes[0] >> 4);
		free(copy);
	}
}

static void test_connect_v311_fields(void)
{
	struct codec_packet p;
	uint8_t *b = decode_named("connect_v311_full", &p);
	struct codec_connect *c = &p.u.connect;

	CU_ASSERT_EQUAL(p.version, CODEC_V311);
	CU_ASSERT(buf_is(c->protocol_name, "MQTT"));
	CU_ASSERT_EQUAL(c->level, 4);
	CU_ASSERT_EQUAL(c->flags, 0xEE);
	CU_ASSERT(c->clean_start && c->will && c->will_retain && c->has_username && c->has_password);
	CU_ASSERT_EQUAL(c->will_qos, 1);
	CU_ASSERT_EQUAL(c->keep_alive, 60);
	CU_ASSERT(buf_is(c->client_id, "cid"));
	CU_ASSERT(buf_is(c->will_topic, "w/t"));
	CU_ASSERT(buf_is(c->will_payload, "hi"));
	CU_ASSERT(buf_is(c->username, "u"));
	CU_ASSERT(buf_is(c->password, "pw"));
	free(b);

	b = decode_named("connect_v311_min", &p);
	CU_ASSERT(p.u.connect.clean_start && !p.u.connect.will && !p.u.connect.has_username);
	CU_ASSERT_EQUAL(p.u.connect.client_id.len, 0);
	free(b);
}

static void test_connect_v31_fields(void)
{
	struct codec_packet p;
	uint8_t *b = decode_named("connect_v31", &p);

	CU_ASSERT_EQUAL(p.version, CODEC_V31);
	CU_ASSERT(buf_is(p.u.connect.protocol_name, "MQIsdp"));
	CU_ASSERT(buf_is(p.u.connect.client_id, "a"));
	free(b);
}

/* Mosquitto's bridge bit: 0x84 is 3.1.1 from a bridge; MQTT 5 has none. */
static void test_connect_bridge_bit(void)
{
	struct codec_packet p;
	uint8_t *b = decode_named("connect_v311_bridge", &p);

	CU_ASSERT_EQUAL(p.version, CODEC_V311);
	CU_ASSERT_EQUAL(p.u.connect.level, CODEC_V311);
	CU_ASSERT(p.u.connect.bridge);
	free(b);
	b = decode_named("connect_v311_min", &p);
	CU_ASSERT(!p.u.connect.bridge);
	free(b);
	static const uint8_t v5b[] = {0x00, 0x04, 'M', 'Q', 'T', 'T', 0x85, 0x02, 0x00, 0x3C, 0x00, 0x00, 0x00};
	CU_ASSERT_EQUAL(codec_decode(0x10, v5b, sizeof v5b, CODEC_V311, &p),
			-MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION); /* [MQTT-3.1.2-2] */
}

static void test_connect_v5_fields(void)
{
	struct codec_packet p;
	struct codec_buf k, v;
	uint32_t pos = 0;
	uint8_t *b = decode_named("connect_v5_props", &p);

	CU_ASSERT_EQUAL(p.version, CODEC_V5);
	CU_ASSERT(CODEC_HAS_PROP(&p.u.connect.props, CODEC_PROP_SESSION_EXPIRY));
	CU_ASSERT_EQUAL(p.u.connect.props.session_expiry, 10);
	CU_ASSERT(buf_is(p.u.connect.client_id, "a"));
	free(b);

	b = decode_named("connect_v5_will", &p);
	struct codec_connect *c = &p.u.connect;
	CU_ASSERT_EQUAL(c->props.receive_max, 10);
	CU_ASSERT_EQUAL(c->props.user_count, 1);
	CU_ASSERT_EQUAL(codec_props_next_user(&c->props, &pos, &k, &v), 1);
	CU_ASSERT(buf_is(k, "k") && buf_is(v, "v"));
	CU_ASSERT_EQUAL(codec_props_next_user(&c->props, &pos, &k, &v), 0);
	CU_ASSERT(buf_is(c->client_id, "c"));
	CU_ASSERT(c->will && c->has_username && c->has_password);
	CU_ASSERT_EQUAL(c->will_props.will_delay, 5);
	CU_ASSERT_EQUAL(c->will_props.payload_format, 1);
	CU_ASSERT_EQUAL(c->will_props.present,
			CODEC_PROP_BIT(CODEC_PROP_WILL_DELAY) | CODEC_PROP_BIT(CODEC_PROP_PAYLOAD_FORMAT));
	CU_ASSERT(buf_is(c->will_topic, "t"));
	CU_ASSERT_EQUAL(c->will_payload.len, 2);
	CU_ASSERT(buf_is(c->username, "u") && buf_is(c->password, "p"));
	free(b);
}

static void test_connack_fields(void)
{
	struct codec_packet p;
	uint8_t *b = decode_named("connack_v311_sp", &p);

	CU_ASSERT(p.u.connack.session_present);
	CU_ASSERT_EQUAL(p.u.connack.rc, 0);
	free(b);
	b = decode_named("connack_v31_rc5", &p);
	CU_ASSERT_EQUAL(p.u.connack.rc, MQTT_CONNACK_V3_NOT_AUTHORIZED);
	free(b);
	b = decode_named("connack_v5_props", &p);
	CU_ASSERT_EQUAL(p.u.connack.props.max_qos, 1);
	CU_ASSERT(CODEC_HAS_PROP(&p.u.connack.props, CODEC_PROP_RETAIN_AVAILABLE));
	CU_ASSERT_EQUAL(p.u.connack.props.retain_available, 0);
	CU_ASSERT(buf_is(p.u.connack.props.assigned_client_id, "id"));
	free(b);
}

static void test_publish_fields(void)
{
	struct codec_packet p;
	uint32_t pos = 0, id;
	uint8_t *b = decode_named("publish_v311_q1", &p);

	CU_ASSERT(p.u.publish.dup && p.u.publish.retain);
	CU_ASSERT_EQUAL(p.u.publish.qos, 1);
	CU_ASSERT(buf_is(p.u.publish.topic, "a/b"));
	CU_ASSERT_EQUAL(p.u.publish.packet_id, 10);
	CU_ASSERT(buf_is(p.u.publish.payload, "hi"));
	free(b);

	b = decode_named("publish_v31_q2", &p);
	CU_ASSERT_EQUAL(p.u.publish.qos, 2);
	CU_ASSERT_EQUAL(p.u.publish.payload.len, 0);
	CU_ASSERT_EQUAL(p.version, CODEC_V31);
	free(b);

	b = decode_named("publish_v5_q2_props", &p);
	struct codec_props *pr = &p.u.publish.props;
	CU_ASSERT_EQUAL(pr->payload_format, 1);
	CU_ASSERT_EQUAL(pr->message_expiry, 60);
	CU_ASSERT_EQUAL(pr->topic_alias, 5);
	CU_ASSERT_EQUAL(pr->sub_id, 129);
	CU_ASSERT_EQUAL(pr->sub_id_count, 2);
	CU_ASSERT_EQUAL(pr->user_count, 1);
	CU_ASSERT_EQUAL(codec_props_next_sub_id(pr, &pos, &id), 1);
	CU_ASSERT_EQUAL(id, 129);
	CU_ASSERT_EQUAL(codec_props_next_sub_id(pr, &pos, &id), 1);
	CU_ASSERT_EQUAL(id, 2);
	CU_ASSERT_EQUAL(codec_props_next_sub_id(pr, &pos, &id), 0);
	CU_ASSERT(buf_is(p.u.publish.payload, "x"));
	CU_ASSERT_EQUAL(pr->raw.len, 22);
	free(b);

	b = decode_named("publish_v5_alias", &p);
	CU_ASSERT_EQUAL(p.u.publish.topic.len, 0);
	CU_ASSERT_EQUAL(p.u.publish.props.topic_alias, 1);
	free(b);

	b = decode_named("publish_v5_req", &p);
	CU_ASSERT(buf_is(p.u.publish.topic, "\xC3\xA9"));
	CU_ASSERT(buf_is(p.u.publish.props.content_type, "t/x"));
	CU_ASSERT(buf_is(p.u.publish.props.response_topic, "r"));
	CU_ASSERT_EQUAL(p.u.publish.props.correlation_data.len, 2);
	free(b);
}

static void test_ack_fields(void)
{
	struct codec_packet p;
	uint8_t *b = decode_named("puback_v5_short", &p);

	CU_ASSERT_EQUAL(p.u.ack.packet_id, 1);
	CU_ASSERT_EQUAL(p.u.ack.rc, 0);
	CU_ASSERT_EQUAL(p.u.ack.props.present, 0);
	free(b);
	b = decode_named("puback_v5_props", &p);
	CU_ASSERT_EQUAL(p.u.ack.rc, 0x80);
	CU_ASSERT(buf_is(p.u.ack.props.reason_string, "bad"));
	free(b);
	b = decode_named("pubrel_v5", &p);
	CU_ASSERT_EQUAL(p.type, CODEC_PUBREL);
	CU_ASSERT_EQUAL(p.u.ack.rc, MQTT_RC_PACKET_ID_NOT_FOUND);
	free(b);
	b = decode_named("pubcomp_v31", &p);
	CU_ASSERT_EQUAL(p.u.ack.packet_id, 4);
	free(b);
}

/* Walks p's SUBSCRIBE or UNSUBSCRIBE list through the codec's iterator:
 * exactly n entries with these filters (SUBSCRIBE: and these QoS), then
 * the end. */
static void check_list(const struct codec_packet *p, size_t n, const char *const filters[],
		       const uint8_t qos[])
{
	uint32_t pos = 0;
	struct codec_sub_entry e;

	for (size_t i = 0; i <= n; i++) {
		int more = p->type == CODEC_SUBSCRIBE
				   ? codec_subscribe_next(&p->u.subscribe, &pos, &e)
				   : codec_unsubscribe_next(&p->u.unsubscribe, &pos, &e.filter);
		CU_ASSERT_EQUAL(more, i < n);
		if (i == n || !more)
			break;
		CU_ASSERT(buf_is(e.filter, filters[i]));
		if (qos)
			CU_ASSERT_EQUAL(e.qos, qos[i]);
	}
}

static const char *const two_filters[] = {"a/b", "#"};

static void test_subscribe_fields(void)
{
	static const uint8_t qos[] = {1, 2};
	struct codec_packet p;
	struct codec_sub_entry e;
	uint32_t pos = 0;
	uint8_t *b = decode_named("subscribe_v311", &p);

	CU_ASSERT_EQUAL(p.u.subscribe.packet_id, 10);
	CU_ASSERT_EQUAL(p.u.subscribe.count, 2);
	check_list(&p, 2, two_filters, qos);
	free(b);

	b = decode_named("subscribe_v5", &p);
	CU_ASSERT_EQUAL(p.u.subscribe.props.sub_id, 5);
	CU_ASSERT_EQUAL(codec_subscribe_next(&p.u.subscribe, &pos, &e), 1);
	CU_ASSERT(buf_is(e.filter, "a/+"));
	CU_ASSERT_EQUAL(e.options, 0x2D);
	CU_ASSERT(e.qos == 1 && e.no_local && e.retain_as_published && e.retain_handling == 2);
	free(b);

	b = decode_named("subscribe_v5_shared", &p);
	pos = 0;
	CU_ASSERT_EQUAL(codec_subscribe_next(&p.u.subscribe, &pos, &e), 1);
	CU_ASSERT(buf_is(e.filter, "$share/g/t/#"));
	CU_ASSERT_EQUAL(p.u.subscribe.props.user_count, 1);
	free(b);
}

static void test_unsubscribe_suback_fields(void)
{
	struct codec_packet p;
	uint8_t *b = decode_named("unsubscribe_v5", &p);

	CU_ASSERT_EQUAL(p.u.unsubscribe.packet_id, 11);
	CU_ASSERT_EQUAL(p.u.unsubscribe.count, 2);
	check_list(&p, 2, two_filters, NULL);
	free(b);

	b = decode_named("suback_v311", &p);
	CU_ASSERT_EQUAL(p.u.suback.count, 2);
	CU_ASSERT(p.u.suback.codes[0] == 1 && p.u.suback.codes[1] == 0x80);
	free(b);
	b = decode_named("unsuback_v311", &p);
	CU_ASSERT_EQUAL(p.u.suback.count, 0);
	CU_ASSERT_EQUAL(p.u.suback.packet_id, 11);
	free(b);
	b = decode_named("unsuback_v5", &p);
	CU_ASSERT_EQUAL(p.u.suback.count, 2);
	CU_ASSERT_EQUAL(p.u.suback.codes[1], MQTT_RC_NO_SUBSCRIPTION_EXISTED);
	free(b);
}

static void test_disconnect_auth_fields(void)
{
	struct codec_packet p;
	uint8_t *b = decode_named("disconnect_v5_props", &p);

	CU_ASSERT_EQUAL(p.u.disconnect.rc, MQTT_RC_SESSION_TAKEN_OVER);
	CU_ASSERT(CODEC_HAS_PROP(&p.u.disconnect.props, CODEC_PROP_SESSION_EXPIRY));
	free(b);
	b = decode_named("disconnect_v5_rc", &p);
	CU_ASSERT_EQUAL(p.u.disconnect.rc, MQTT_RC_DISCONNECT_WITH_WILL);
	free(b);
	b = decode_named("auth_v5", &p);
	CU_ASSERT_EQUAL(p.u.disconnect.rc, MQTT_RC_CONTINUE_AUTH);
	CU_ASSERT(buf_is(p.u.disconnect.props.auth_method, "SCRA"));
	CU_ASSERT_EQUAL(p.u.disconnect.props.auth_data.len, 2);
	free(b);
}

/* ---- chunking invariance ------------------------------------------------ */

/* Feeds the packet to a little stream reader, first `split` bytes then the
 * rest, and decodes when the scanner says it is complete. */
static void check_split(const struct vec *v, size_t split, const struct codec_packet *ref)
{
	uint8_t *buf = malloc(v->len);
	size_t have = 0;
	struct codec_frame fr;
	struct codec_packet pkt;
	int rc = CODEC_PARTIAL;
	const char *diff;

	size_t steps[2] = {split, v->len - split};
	bool complete = false;
	for (int s = 0; s < 2 && !complete; s++) {
		memcpy(buf + have, v->bytes + have, steps[s]);
		have += steps[s];
		rc = codec_frame_scan(buf, have, 0, &fr);
		if (rc == CODEC_PARTIAL)
			CU_ASSERT(have < 5 && have < v->len);
		complete = rc == 0 && have >= fr.header_len + (size_t)fr.remaining;
	}
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_FATAL(complete);
	CU_ASSERT_EQUAL(fr.header_len + fr.remaining, v->len);
	CU_ASSERT_EQUAL(codec_decode(fr.first, buf + fr.header_len, fr.remaining, v->version, &pkt),
			0);
	diff = cmp_packet(ref, &pkt);
	if (diff)
		fprintf(stderr, "\n%s split %zu: %s differs\n", v->name, split, diff);
	CU_ASSERT_PTR_NULL(diff);
	free(buf);
}

static void test_chunking_every_split(void)
{
	for (size_t i = 0; i < N_VALID; i++) {
		const struct vec *v = &valid_vectors[i];
		struct codec_packet ref;
		uint8_t *copy;

		CU_ASSERT_EQUAL_FATAL(decode_packet(v->bytes, v->len, v->version, &ref, &copy), 0);
		for (size_t split = 0; split <= v->len; split++)
			check_split(v, split, &ref);
		free(copy);
	}
}

/* The scanner alone, byte by byte: PARTIAL until the header is complete,
 * then always the same frame whatever else has arrived. */
static void test_chunking_byte_by_byte(void)
{
	for (size_t i = 0; i < N_VALID; i++) {
		const struct vec *v = &valid_vectors[i];
		struct codec_frame ref, fr;
		size_t hl;

		CU_ASSERT_EQUAL_FATAL(codec_frame_scan(v->bytes, v->len, 0, &ref), 0);
		hl = ref.header_len;
		for (size_t n = 0; n <= v->len; n++) {
			uint8_t *b = malloc(n ? n : 1);
			memcpy(b, v->bytes, n);
			memset(&fr, 0, sizeof(fr));
			int rc = codec_frame_scan(b, n, 0, &fr);
			if (n < hl) {
				CU_ASSERT_EQUAL(rc, CODEC_PARTIAL);
			} else {
				CU_ASSERT_EQUAL(rc, 0);
				CU_ASSERT(fr.first == ref.first && fr.type == ref.type &&
					  fr.flags == ref.flags && fr.header_len == ref.header_len &&
					  fr.remaining == ref.remaining);
			}
			free(b);
		}
	}
}

/* Several packets back to back in one buffer, split everywhere. */
static void test_chunking_stream(void)
{
	uint8_t stream[4096];
	size_t total = 0, count = 0;

	for (size_t i = 0; i < N_VALID; i++) {
		if (valid_vectors[i].version != 5)
			continue;
		memcpy(stream + total, valid_vectors[i].bytes, valid_vectors[i].len);
		total += valid_vectors[i].len;
		count++;
	}
	for (size_t split = 0; split <= total; split += 7) {
		size_t have = split, off = 0, got = 0;
		for (int round = 0; round < 2; round++) {
			for (;;) {
				struct codec_frame fr;
				struct codec_packet pkt;
				int rc = codec_frame_scan(stream + off, have - off, 0, &fr);
				if (rc == CODEC_PARTIAL || (rc == 0 && off + fr.header_len + fr.remaining > have))
					break;
				CU_ASSERT_EQUAL_FATAL(rc, 0);
				CU_ASSERT_EQUAL(codec_decode(fr.first, stream + off + fr.header_len,
							     fr.remaining, 5, &pkt),
						0);
				off += fr.header_len + fr.remaining;
				got++;
			}
			have = total;
		}
		CU_ASSERT_EQUAL(got, count);
		CU_ASSERT_EQUAL(off, total);
	}
}

/* ---- frame scanner limits ----------------------------------------------- */

static void test_scan_remaining_lengths(void)
{
	struct codec_frame fr;
	/* The boundaries of 2.2.3 / 1.5.5: 0, 127, 128, 16383, 16384,
	 * 2097151, 2097152, 268435455. */
	static const struct {
		uint8_t b[5];
		uint8_t n;
		uint32_t v;
	} t[] = {
		{{0x30, 0x00}, 2, 0},
		{{0x30, 0x7F}, 2, 127},
		{{0x30, 0x80, 0x01}, 3, 128},
		{{0x30, 0xFF, 0x7F}, 3, 16383},
		{{0x30, 0x80, 0x80, 0x01}, 4, 16384},
		{{0x30, 0xFF, 0xFF, 0x7F}, 4, 2097151},
		{{0x30, 0x80, 0x80, 0x80, 0x01}, 5, 2097152},
		{{0x30, 0xFF, 0xFF, 0xFF, 0x7F}, 5, 268435455},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		CU_ASSERT_EQUAL(codec_frame_scan(t[i].b, t[i].n, 0, &fr), 0);
		CU_ASSERT_EQUAL(fr.remaining, t[i].v);
		CU_ASSERT_EQUAL(fr.header_len, t[i].n);
		CU_ASSERT_EQUAL(codec_frame_scan(t[i].b, t[i].n - 1, 0, &fr), CODEC_PARTIAL);
	}
}

/* [MQTT-3.1.2-24]-style limits: the scanner refuses a packet larger than
 * the configured maximum before its body is buffered. */
static void test_scan_max_packet(void)
{
	struct codec_frame fr;
	const uint8_t big[] = {0x30, 0xFF, 0xFF, 0x7F};
	const uint8_t small[] = {0x30, 0x7E};

	CU_ASSERT_EQUAL(codec_frame_scan(big, sizeof(big), 1024, &fr), -MQTT_RC_PACKET_TOO_LARGE);
	CU_ASSERT_EQUAL(codec_frame_scan(big, sizeof(big), 0, &fr), 0);
	CU_ASSERT_EQUAL(codec_frame_scan(small, 2, 128, &fr), 0);  /* 2 + 126 = 128 */
	CU_ASSERT_EQUAL(codec_frame_scan(small, 2, 127, &fr), -MQTT_RC_PACKET_TOO_LARGE);
	CU_ASSERT_EQUAL(codec_frame_scan(small, 1, 127, &fr), CODEC_PARTIAL);
}

static void test_scan_every_first_byte(void)
{
	/* The set of legal first bytes (2.2.2, 3.3.1). */
	int legal = 0;
	for (unsigned b = 0; b < 256; b++) {
		uint8_t hdr[2] = {(uint8_t)b, 0};
		struct codec_frame fr;
		int rc = codec_frame_scan(hdr, 2, 0, &fr);
		unsigned t = b >> 4, f = b & 15;
		int expect;
		if (t == 0)
			expect = 0;
		else if (t == 3)
			expect = ((f >> 1) & 3) != 3 && !((f & 8) && ((f >> 1) & 3) == 0);
		else if (t == 6 || t == 8 || t == 10)
			expect = f == 2;
		else
			expect = f == 0;
		CU_ASSERT_EQUAL(rc, expect ? 0 : -MQTT_RC_MALFORMED);
		legal += rc == 0;
	}
	CU_ASSERT_EQUAL(legal, 24);
}

/* ---- malformed packets --------------------------------------------------- */


static void test_malformed_vectors(void)
{
	CU_ASSERT(N_BAD >= 60);
	for (size_t i = 0; i < N_BAD; i++) {
		const struct bad *b = &bad_vectors[i];
		struct codec_packet pkt;
		uint8_t *copy;
		int rc = decode_packet(b->bytes, b->len, b->version, &pkt, &copy);

		if (rc != -b->rc)
			fprintf(stderr, "\n%s: got %d, want %d\n", b->name, rc, -b->rc);
		CU_ASSERT_EQUAL(rc, -b->rc);
		free(copy);
		/* The decoder checks the first byte itself, too: a caller
		 * that skips the scanner gets the same answer. */
		if (b->len >= 2 && b->bytes[1] < 0x80 && b->len == 2u + b->bytes[1]) {
			rc = codec_decode(b->bytes[0], b->bytes + 2, b->bytes[1], b->version, &pkt);
			if (rc != -b->rc)
				fprintf(stderr, "\n%s (direct): got %d, want %d\n", b->name, rc, -b->rc);
			CU_ASSERT_EQUAL(rc, -b->rc);
		}
	}
}

/* Every proper prefix of a valid body is either malformed or, for
 * packets whose tail is optional, still valid: never a crash or a read
 * past the end (ASan checks the latter). */
static void test_truncated_bodies(void)
{
	for (size_t i = 0; i < N_VALID; i++) {
		const struct vec *v = &valid_vectors[i];
		struct codec_frame fr;
		CU_ASSERT_EQUAL_FATAL(codec_frame_scan(v->bytes, v->len, 0, &fr), 0);
		for (uint32_t n = 0; n < fr.remaining; n++) {
			uint8_t *b = malloc(n ? n : 1);
			struct codec_packet pkt;
			memcpy(b, v->bytes + fr.header_len, n);
			int rc = codec_decode(fr.first, b, n, v->version, &pkt);
			CU_ASSERT(rc == 0 || rc == -MQTT_RC_MALFORMED || rc == -MQTT_RC_PROTOCOL_ERROR);
			free(b);
		}
	}
}

/* A failed CONNECT still tells the engine which version to answer in. */
static void test_connect_failure_keeps_version(void)
{
	const uint8_t v5_bad_flags[] = {0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x01, 0x00, 0x3C, 0x00,
					0x00, 0x00};
	const uint8_t v6[] = {0x00, 0x04, 'M', 'Q', 'T', 'T', 0x06, 0x02, 0x00, 0x3C, 0x00, 0x00};
	struct codec_packet pkt;

	CU_ASSERT_EQUAL(codec_decode(0x10, v5_bad_flags, sizeof(v5_bad_flags), 0, &pkt),
			-MQTT_RC_MALFORMED);
	CU_ASSERT_EQUAL(pkt.type, CODEC_CONNECT);
	CU_ASSERT_EQUAL(pkt.version, CODEC_V5);
	CU_ASSERT_EQUAL(codec_decode(0x10, v6, sizeof(v6), 0, &pkt),
			-MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION);
	CU_ASSERT_EQUAL(pkt.u.connect.level, 6);
	CU_ASSERT_EQUAL(pkt.version, CODEC_V311);
}

/* ---- UTF-8 and topics ---------------------------------------------------- */

static void test_utf8(void)
{
#define OK(s) CU_ASSERT(codec_utf8_valid((const uint8_t *)(s), sizeof(s) - 1))
#define NO(s) CU_ASSERT(!codec_utf8_valid((const uint8_t *)(s), sizeof(s) - 1))
	OK("");
	OK("abc");
	OK("\xC2\x80");             /* U+0080 */
	OK("\xDF\xBF");             /* U+07FF */
	OK("\xE0\xA0\x80");         /* U+0800 */
	OK("\xED\x9F\xBF");         /* U+D7FF */
	OK("\xEE\x80\x80");         /* U+E000 */
	OK("\xEF\xBF\xBF");         /* U+FFFF */
	OK("\xF0\x90\x80\x80");     /* U+10000 */
	OK("\xF4\x8F\xBF\xBF");     /* U+10FFFF */
	OK("a\xE2\x82\xAC" "b");    /* euro sign */
	NO("\x00");                 /* [MQTT-1.5.4-2] */
	NO("a\x00");
	NO("\xC0\x80");             /* overlong NUL */
	NO("\xC1\xBF");             /* overlong */
	NO("\xE0\x9F\xBF");         /* overlong */
	NO("\xF0\x8F\xBF\xBF");     /* overlong */
	NO("\xED\xA0\x80");         /* U+D800 surrogate [MQTT-1.5.4-1] */
	NO("\xED\xBF\xBF");         /* U+DFFF */
	NO("\xF4\x90\x80\x80");     /* above U+10FFFF */
	NO("\xF5\x80\x80\x80");
	NO("\x80");                 /* lone continuation */
	NO("\xC2");                 /* truncated */
	NO("\xE2\x82");
	NO("\xFF");
	NO("\xFE");
#undef OK
#undef NO
}

static void test_topic_names(void)
{
#define OK(s) CU_ASSERT(codec_topic_name_valid((const uint8_t *)(s), sizeof(s) - 1))
#define NO(s) CU_ASSERT(!codec_topic_name_valid((const uint8_t *)(s), sizeof(s) - 1))
	OK("a");
	OK("/");
	OK("a/b/c");
	OK("$SYS/x");
	OK("a//b");
	OK("\xC3\xA9t\xC3\xA9");
	NO("");        /* [MQTT-4.7.3-1] */
	NO("a/+");     /* [MQTT-3.3.2-2] */
	NO("#");
	NO("a/b#");
	NO("a\x00" "b");
	NO("\xC0\xAF");
#undef OK
#undef NO
}

static void test_topic_filters(void)
{
#define OK(s) CU_ASSERT(codec_topic_filter_valid((const uint8_t *)(s), sizeof(s) - 1))
#define NO(s) CU_ASSERT(!codec_topic_filter_valid((const uint8_t *)(s), sizeof(s) - 1))
	OK("#");
	OK("+");
	OK("/");
	OK("a/#");
	OK("+/+");
	OK("/+/");
	OK("a/+/b/#");
	OK("sport/tennis/player1");
	OK("$share/g/a/#");
	OK("$share/g/#");
	OK("$sharex/+");
	OK("$share");
	NO("");           /* [MQTT-4.7.3-1] */
	NO("a#");         /* [MQTT-4.7.1-2] */
	NO("#/a");
	NO("a/#/");
	NO("a+");         /* [MQTT-4.7.1-3] */
	NO("+a/b");
	NO("a/b+/c");
	NO("$share/");    /* [MQTT-4.8.2-1] */
	NO("$share/g");
	NO("$share/g/");
	NO("$share//a");
	NO("$share/#/a"); /* [MQTT-4.8.2-2] */
	NO("$share/a+/b");
	NO("a\x00");
	NO("\xED\xA0\x80");
#undef OK
#undef NO
}

/* ---- encoder ------------------------------------------------------------- */

static void test_varint_size(void)
{
	CU_ASSERT_EQUAL(codec_varint_size(0), 1);
	CU_ASSERT_EQUAL(codec_varint_size(127), 1);
	CU_ASSERT_EQUAL(codec_varint_size(128), 2);
	CU_ASSERT_EQUAL(codec_varint_size(16383), 2);
	CU_ASSERT_EQUAL(codec_varint_size(16384), 3);
	CU_ASSERT_EQUAL(codec_varint_size(2097151), 3);
	CU_ASSERT_EQUAL(codec_varint_size(2097152), 4);
	CU_ASSERT_EQUAL(codec_varint_size(268435455), 4);
}

/* Decoding the hand vectors and re-encoding them gives the same bytes
 * (each vector uses the shortest form the specification allows, which is
 * what the encoder writes), except the one that spells out an empty
 * property block the encoder omits. */
static void test_reencode_vectors(void)
{
	for (size_t i = 0; i < N_VALID; i++) {
		const struct vec *v = &valid_vectors[i];
		struct codec_packet pkt;
		uint8_t *copy, out[512];
		size_t n;

		CU_ASSERT_EQUAL_FATAL(decode_packet(v->bytes, v->len, v->version, &pkt, &copy), 0);
		n = codec_encode(&pkt, out, sizeof(out));
		CU_ASSERT_EQUAL(n, codec_encode_size(&pkt));
		if (strcmp(v->name, "pubcomp_v5") == 0) {
			CU_ASSERT_EQUAL(n, v->len - 2);
		} else {
			if (n != v->len || memcmp(out, v->bytes, n) != 0)
				fprintf(stderr, "\n%s: re-encoded differently\n", v->name);
			CU_ASSERT(n == v->len && memcmp(out, v->bytes, n) == 0);
		}
		/* Too small by one byte: nothing written. */
		CU_ASSERT_EQUAL(codec_encode(&pkt, out, n - 1), 0);
		free(copy);
	}
}

/* Encodes pkt, checks the size prediction, decodes it back (at the
 * packet's version) and compares field by field; then encodes the decoded
 * packet again and expects the very same bytes. */
static void roundtrip(const struct codec_packet *pkt, const char *what)
{
	size_t size = codec_encode_size(pkt);
	uint8_t *a, *b, *copy;
	struct codec_packet d1, d2;
	size_t n;
	const char *diff;

	CU_ASSERT_FATAL(size > 0);
	a = malloc(size);
	b = malloc(size);
	n = codec_encode(pkt, a, size);
	CU_ASSERT_EQUAL_FATAL(n, size);
	int rc = decode_packet(a, n, pkt->type == CODEC_CONNECT ? 0 : pkt->version, &d1, &copy);
	if (rc)
		fprintf(stderr, "\n%s: decode rc %d\n", what, rc);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	diff = cmp_packet(pkt, &d1);
	if (diff)
		fprintf(stderr, "\n%s: %s differs\n", what, diff);
	CU_ASSERT_PTR_NULL(diff);
	CU_ASSERT_EQUAL(codec_encode(&d1, b, size), size);
	CU_ASSERT(memcmp(a, b, size) == 0);
	uint8_t *copy2;
	CU_ASSERT_EQUAL(decode_packet(b, size, d1.version, &d2, &copy2), 0);
	CU_ASSERT_PTR_NULL(cmp_packet(&d1, &d2));
	free(copy2);
	free(copy);
	free(a);
	free(b);
}

#define BUF(s) ((struct codec_buf){(const uint8_t *)(s), sizeof(s) - 1})

/* A user-property block for `raw`, k1=v1, k2=v2 (in that order). */
static const uint8_t user_raw[] = {0x26, 0x00, 0x02, 'k', '1', 0x00, 0x02, 'v', '1',
				   0x26, 0x00, 0x02, 'k', '2', 0x00, 0x02, 'v', '2'};

/* Every property with a distinct value; fill_props() marks present the
 * ones a packet type allows. */
static const struct codec_props every_prop = {
	.payload_format = 1,
	.message_expiry = 0x01020304,
	.content_type = BUF("text/plain"),
	.response_topic = BUF("reply/to"),
	.correlation_data = BUF("\x00\x01\x02"),
	.session_expiry = 0xFFFFFFFF,
	.assigned_client_id = BUF("auto-1"),
	.server_keep_alive = 120,
	.auth_method = BUF("SCRAM-SHA-1"),
	.auth_data = BUF("\xFF\x00"),
	.request_problem_info = 0,
	.will_delay = 30,
	.request_response_info = 1,
	.response_info = BUF("resp"),
	.server_reference = BUF("other:1883"),
	.reason_string = BUF("why"),
	.receive_max = 20,
	.topic_alias_max = 10,
	.topic_alias = 3,
	.max_qos = 1,
	.retain_available = 1,
	.max_packet_size = 65536,
	.wildcard_sub_available = 0,
	.sub_id_available = 1,
	.shared_sub_available = 0,
	.raw = {user_raw, sizeof(user_raw)},
	.user_count = 2,
};

/* Sets every property allowed for `slot` (a type, 0 = will) with
 * distinct values; returns the expected present mask. */
static uint64_t fill_props(struct codec_props *pr, unsigned slot)
{
	static const uint32_t ids[] = {7, 300, 268435455};
	uint64_t allowed = codec_prop_allowed[slot];

	*pr = every_prop;
	pr->present = allowed;
	if (allowed & CODEC_PROP_BIT(CODEC_PROP_SUBSCRIPTION_ID)) {
		if (slot == CODEC_PUBLISH) {
			pr->sub_ids = ids;
			pr->sub_id_count = 3;
			pr->sub_id = 7;
		} else {
			pr->sub_id = 42;
			pr->sub_id_count = 1;
		}
	}
	return allowed;
}

static struct codec_packet base(uint8_t type, uint8_t version)
{
	struct codec_packet p;

	memset(&p, 0, sizeof(p));
	p.type = type;
	p.version = version;
	p.flags = (type == CODEC_PUBREL || type == CODEC_SUBSCRIBE || type == CODEC_UNSUBSCRIBE) ? 2 : 0;
	return p;
}

static void set_connect(struct codec_packet *p, uint8_t v, bool will, bool user)
{
	struct codec_connect *c = &p->u.connect;

	c->protocol_name = v == CODEC_V31 ? BUF("MQIsdp") : BUF("MQTT");
	c->level = v;
	c->clean_start = true;
	c->keep_alive = 30;
	c->client_id = BUF("client-1");
	if (will) {
		c->will = true;
		c->will_qos = 2;
		c->will_retain = true;
		c->will_topic = BUF("last/will");
		c->will_payload = BUF("\x00gone");
	}
	if (user) {
		c->has_username = true;
		c->has_password = true;
		c->username = BUF("user");
		c->password = BUF("\x01\x02secret");
	}
	c->flags = (uint8_t)(0x02 | (will ? 0x04 | 0x10 | 0x20 : 0) | (user ? 0xC0 : 0));
}

static void test_roundtrip_every_type_and_version(void)
{
	static const uint8_t versions[] = {CODEC_V31, CODEC_V311, CODEC_V5};
	static const struct codec_sub_entry entries[] = {
		{BUF("a/b"), 0, 0, false, false, 0},
		{BUF("+/x/#"), 1, 1, false, false, 0},
		{BUF("#"), 2, 2, false, false, 0},
	};
	static const struct codec_sub_entry entries5[] = {
		{BUF("a/b"), 0x2D, 1, true, true, 2},
		{BUF("$share/g/+"), 0x12, 2, false, false, 1},
	};
	static const struct codec_buf filters[] = {BUF("a/b"), BUF("#"), BUF("x/+/y")};
	static const uint8_t codes3[] = {0, 1, 2, 0x80};
	static const uint8_t codes5[] = {0, 1, 2, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1,
					 0xA2};
	static const uint8_t ucodes5[] = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
	char what[64];

	for (size_t vi = 0; vi < sizeof(versions); vi++) {
		uint8_t v = versions[vi];
		struct codec_packet p;

		for (int w = 0; w < 2; w++)
			for (int u = 0; u < 2; u++) {
				p = base(CODEC_CONNECT, v);
				set_connect(&p, v, w, u);
				snprintf(what, sizeof(what), "connect v%u will %d user %d", v, w, u);
				roundtrip(&p, what);
			}
		p = base(CODEC_CONNACK, v);
		p.u.connack.session_present = true;
		p.u.connack.rc = v == CODEC_V5 ? MQTT_RC_NOT_AUTHORIZED : 5;
		roundtrip(&p, "connack");
		for (uint8_t q = 0; q < 3; q++)
			for (int flags = 0; flags < 4; flags++) {
				p = base(CODEC_PUBLISH, v);
				p.u.publish.qos = q;
				p.u.publish.retain = flags & 1;
				p.u.publish.dup = q && (flags & 2);
				p.flags = (uint8_t)((p.u.publish.dup ? 8 : 0) | q << 1 | p.u.publish.retain);
				p.u.publish.topic = BUF("t/1");
				p.u.publish.packet_id = q ? 0xFFFF : 0;
				p.u.publish.payload = flags & 2 ? BUF("") : BUF("payload\x00\xFF");
				snprintf(what, sizeof(what), "publish v%u q%u f%d", v, q, flags);
				roundtrip(&p, what);
			}
		for (uint8_t t = CODEC_PUBACK; t <= CODEC_PUBCOMP; t++) {
			p = base(t, v);
			p.u.ack.packet_id = 0x1234;
			roundtrip(&p, codec_type_name(t));
			if (v == CODEC_V5) {
				p.u.ack.rc = t == CODEC_PUBREL || t == CODEC_PUBCOMP ? 0x92 : 0x97;
				roundtrip(&p, "ack rc");
			}
		}
		p = base(CODEC_SUBSCRIBE, v);
		p.u.subscribe.packet_id = 7;
		p.u.subscribe.entries = v == CODEC_V5 ? entries5 : entries;
		p.u.subscribe.count = v == CODEC_V5 ? 2 : 3;
		{
			/* the decoded form of entries: a list view, built by encoding */
			uint8_t buf[256];
			struct codec_packet d;
			uint8_t *copy;
			size_t n = codec_encode(&p, buf, sizeof(buf));
			CU_ASSERT_FATAL(n > 0);
			CU_ASSERT_EQUAL_FATAL(decode_packet(buf, n, v, &d, &copy), 0);
			CU_ASSERT_EQUAL(d.u.subscribe.count, p.u.subscribe.count);
			struct codec_sub_entry e;
			uint32_t pos = 0;
			for (uint32_t i = 0; i < p.u.subscribe.count; i++) {
				CU_ASSERT_EQUAL(codec_subscribe_next(&d.u.subscribe, &pos, &e), 1);
				CU_ASSERT_EQUAL(cmp_buf(e.filter, p.u.subscribe.entries[i].filter), 0);
				CU_ASSERT_EQUAL(e.qos, p.u.subscribe.entries[i].qos);
				CU_ASSERT_EQUAL(e.no_local, p.u.subscribe.entries[i].no_local);
				CU_ASSERT_EQUAL(e.retain_handling, p.u.subscribe.entries[i].retain_handling);
			}
			roundtrip(&d, "subscribe");
			free(copy);
		}
		p = base(CODEC_UNSUBSCRIBE, v);
		p.u.unsubscribe.packet_id = 8;
		p.u.unsubscribe.filters = filters;
		p.u.unsubscribe.count = 3;
		{
			uint8_t buf[256];
			struct codec_packet d;
			uint8_t *copy;
			size_t n = codec_encode(&p, buf, sizeof(buf));
			CU_ASSERT_EQUAL_FATAL(decode_packet(buf, n, v, &d, &copy), 0);
			CU_ASSERT_EQUAL(d.u.unsubscribe.count, 3);
			roundtrip(&d, "unsubscribe");
			free(copy);
		}
		p = base(CODEC_SUBACK, v);
		p.u.suback.packet_id = 7;
		p.u.suback.codes = v == CODEC_V5 ? codes5 : codes3;
		p.u.suback.count = v == CODEC_V5 ? sizeof(codes5) : sizeof(codes3);
		roundtrip(&p, "suback");
		p = base(CODEC_UNSUBACK, v);
		p.u.suback.packet_id = 8;
		if (v == CODEC_V5) {
			p.u.suback.codes = ucodes5;
			p.u.suback.count = sizeof(ucodes5);
		}
		roundtrip(&p, "unsuback");
		roundtrip((p = base(CODEC_PINGREQ, v), &p), "pingreq");
		roundtrip((p = base(CODEC_PINGRESP, v), &p), "pingresp");
		roundtrip((p = base(CODEC_DISCONNECT, v), &p), "disconnect");
		if (v == CODEC_V5) {
			p = base(CODEC_DISCONNECT, v);
			p.u.disconnect.rc = MQTT_RC_SERVER_SHUTTING_DOWN;
			roundtrip(&p, "disconnect rc");
			roundtrip((p = base(CODEC_AUTH, v), &p), "auth");
			p.u.disconnect.rc = MQTT_RC_REAUTHENTICATE;
			roundtrip(&p, "auth rc");
		} else {
			p = base(CODEC_AUTH, v);
			CU_ASSERT_EQUAL(codec_encode_size(&p), 0);
		}
	}
}

/* The property block of p's type (CONNECT: the packet's, not the will's);
 * NULL for PINGREQ and PINGRESP, which have none. */
static struct codec_props *packet_props(struct codec_packet *p)
{
	switch (p->type) {
	case CODEC_CONNECT: return &p->u.connect.props;
	case CODEC_CONNACK: return &p->u.connack.props;
	case CODEC_PUBLISH: return &p->u.publish.props;
	case CODEC_SUBSCRIBE: return &p->u.subscribe.props;
	case CODEC_UNSUBSCRIBE: return &p->u.unsubscribe.props;
	case CODEC_SUBACK:
	case CODEC_UNSUBACK: return &p->u.suback.props;
	case CODEC_PINGREQ:
	case CODEC_PINGRESP: return NULL;
	case CODEC_DISCONNECT:
	case CODEC_AUTH: return &p->u.disconnect.props;
	default: return &p->u.ack.props;
	}
}

/* Every property, in every packet type that allows it. */
static void test_roundtrip_every_property(void)
{
	static const uint8_t codes[] = {0};
	static const struct codec_buf filters[] = {BUF("a")};
	static const struct codec_sub_entry entries[] = {{BUF("a"), 1, 1, false, false, 0}};
	static const struct codec_subscribe sub1 = {.packet_id = 1, .entries = entries, .count = 1};
	static const struct codec_unsubscribe unsub1 = {.packet_id = 1, .filters = filters, .count = 1};
	static const struct codec_suback suback1 = {.packet_id = 1, .codes = codes, .count = 1};

	for (unsigned t = CODEC_CONNECT; t <= CODEC_AUTH; t++) {
		struct codec_packet p = base((uint8_t)t, CODEC_V5);
		struct codec_props *pr = packet_props(&p);
		char what[64];

		if (!pr)
			continue; /* PINGREQ, PINGRESP */
		switch (t) {
		case CODEC_CONNECT:
			set_connect(&p, CODEC_V5, true, true);
			fill_props(&p.u.connect.will_props, 0);
			break;
		case CODEC_CONNACK:
		case CODEC_DISCONNECT:
		case CODEC_AUTH: break;
		case CODEC_PUBLISH: p.u.publish.topic = BUF("t"); break;
		case CODEC_SUBSCRIBE: p.u.subscribe = sub1; break;
		case CODEC_UNSUBSCRIBE: p.u.unsubscribe = unsub1; break;
		case CODEC_SUBACK:
		case CODEC_UNSUBACK: p.u.suback = suback1; break;
		default: p.u.ack.packet_id = 1; break;
		}
		uint64_t allowed = fill_props(pr, t);
		CU_ASSERT((allowed & CODEC_PROP_BIT(CODEC_PROP_USER_PROPERTY)) != 0);

		uint8_t buf[1024], *copy;
		struct codec_packet d;
		size_t n = codec_encode(&p, buf, sizeof(buf));
		CU_ASSERT_FATAL(n > 0);
		CU_ASSERT_EQUAL(n, codec_encode_size(&p));
		snprintf(what, sizeof(what), "props of %s", codec_type_name((uint8_t)t));
		int rc = decode_packet(buf, n, t == CODEC_CONNECT ? 0 : CODEC_V5, &d, &copy);
		if (rc)
			fprintf(stderr, "\n%s: rc %d\n", what, rc);
		CU_ASSERT_EQUAL_FATAL(rc, 0);
		/* For the decoded side, sub ids come from raw: compare through
		 * the iterator against what we asked for. */
		const struct codec_props *dp = packet_props(&d);
		CU_ASSERT_EQUAL(dp->present, allowed);
		CU_ASSERT_EQUAL(dp->user_count, 2);
		if (allowed & CODEC_PROP_BIT(CODEC_PROP_SUBSCRIPTION_ID)) {
			uint32_t pos = 0, id, k = 0;
			while (codec_props_next_sub_id(dp, &pos, &id)) {
				CU_ASSERT_EQUAL(id, pr->sub_ids ? pr->sub_ids[k] : pr->sub_id);
				k++;
			}
			CU_ASSERT_EQUAL(k, pr->sub_id_count);
			CU_ASSERT_EQUAL(dp->sub_id_count, pr->sub_id_count);
		}
		struct codec_props want = *pr;
		want.sub_ids = NULL;
		want.raw = dp->raw; /* sub ids compared above; users below */
		const char *diff = cmp_props(&want, dp);
		if (diff)
			fprintf(stderr, "\n%s: %s differs\n", what, diff);
		CU_ASSERT_PTR_NULL(diff);
		struct codec_buf k, v;
		uint32_t pos = 0;
		CU_ASSERT(codec_props_next_user(dp, &pos, &k, &v) && cmp_buf(k, BUF("k1")) == 0 &&
			  cmp_buf(v, BUF("v1")) == 0);
		CU_ASSERT(codec_props_next_user(dp, &pos, &k, &v) && cmp_buf(k, BUF("k2")) == 0 &&
			  cmp_buf(v, BUF("v2")) == 0);
		CU_ASSERT_FALSE(codec_props_next_user(dp, &pos, &k, &v));
		if (t == CODEC_CONNECT) {
			CU_ASSERT_EQUAL(d.u.connect.will_props.present, codec_prop_allowed[0]);
			CU_ASSERT_EQUAL(d.u.connect.will_props.will_delay, 30);
			CU_ASSERT(cmp_buf(d.u.connect.will_props.content_type, BUF("text/plain")) == 0);
		}
		roundtrip(&d, what);
		free(copy);
	}
}

static void test_props_size(void)
{
	struct codec_props pr;

	memset(&pr, 0, sizeof(pr));
	CU_ASSERT_EQUAL(codec_props_size(&pr), 1);
	pr.present = CODEC_PROP_BIT(CODEC_PROP_SESSION_EXPIRY);
	CU_ASSERT_EQUAL(codec_props_size(&pr), 6);
	pr.present |= CODEC_PROP_BIT(CODEC_PROP_REASON_STRING);
	pr.reason_string = BUF("abc");
	CU_ASSERT_EQUAL(codec_props_size(&pr), 12);
}

static void test_encode_limits(void)
{
	struct codec_packet p = base(CODEC_PUBLISH, CODEC_V311);
	static uint8_t big[70000];
	uint8_t out[16];

	p.u.publish.topic.p = big;
	p.u.publish.topic.len = 65536; /* over a string's 65535 */
	memset(big, 'a', sizeof(big));
	CU_ASSERT_EQUAL(codec_encode_size(&p), 0);
	CU_ASSERT_EQUAL(codec_encode(&p, out, sizeof(out)), 0);
	p.u.publish.topic.len = 65535;
	CU_ASSERT_EQUAL(codec_encode_size(&p), 1 + 3 + 2 + 65535);
	p.u.publish.payload.p = big;
	p.u.publish.payload.len = CODEC_MAX_REMAINING; /* body over the maximum */
	CU_ASSERT_EQUAL(codec_encode_size(&p), 0);
}

static void test_encode_publish_head(void)
{
	struct codec_packet p = base(CODEC_PUBLISH, CODEC_V5);
	uint8_t whole[64], head[64];
	size_t n, h;

	p.u.publish.qos = 1;
	p.u.publish.packet_id = 9;
	p.u.publish.topic = BUF("a/b");
	p.u.publish.payload = BUF("0123456789");
	p.u.publish.props.present = CODEC_PROP_BIT(CODEC_PROP_MESSAGE_EXPIRY);
	p.u.publish.props.message_expiry = 5;
	n = codec_encode(&p, whole, sizeof(whole));
	h = codec_encode_publish_head(&p, head, sizeof(head));
	CU_ASSERT_EQUAL(h + 10, n);
	CU_ASSERT(memcmp(whole, head, h) == 0);
	CU_ASSERT(memcmp(whole + h, "0123456789", 10) == 0);
	CU_ASSERT_EQUAL(codec_encode_publish_head(&p, head, h - 1), 0);
	p.type = CODEC_PUBACK;
	CU_ASSERT_EQUAL(codec_encode_publish_head(&p, head, sizeof(head)), 0);
}

/* The encoder writes exactly the bytes of the specification's layouts. */
static void test_encode_known_bytes(void)
{
	struct codec_packet p = base(CODEC_CONNACK, CODEC_V311);
	uint8_t out[32];
	static const uint8_t connack[] = {0x20, 0x02, 0x01, 0x00};
	static const uint8_t puback5[] = {0x40, 0x03, 0x00, 0x05, 0x10};
	static const uint8_t disc5[] = {0xE0, 0x01, 0x8B};
	static const uint8_t pingresp[] = {0xD0, 0x00};

	p.u.connack.session_present = true;
	CU_ASSERT_EQUAL(codec_encode(&p, out, sizeof(out)), sizeof(connack));
	CU_ASSERT(memcmp(out, connack, sizeof(connack)) == 0);
	p = base(CODEC_PUBACK, CODEC_V5);
	p.u.ack.packet_id = 5;
	p.u.ack.rc = MQTT_RC_NO_MATCHING_SUBSCRIBERS;
	CU_ASSERT_EQUAL(codec_encode(&p, out, sizeof(out)), sizeof(puback5));
	CU_ASSERT(memcmp(out, puback5, sizeof(puback5)) == 0);
	p = base(CODEC_DISCONNECT, CODEC_V5);
	p.u.disconnect.rc = MQTT_RC_SERVER_SHUTTING_DOWN;
	CU_ASSERT_EQUAL(codec_encode(&p, out, sizeof(out)), sizeof(disc5));
	CU_ASSERT(memcmp(out, disc5, sizeof(disc5)) == 0);
	p = base(CODEC_PINGRESP, 0);
	CU_ASSERT_EQUAL(codec_encode(&p, out, sizeof(out)), sizeof(pingresp));
	CU_ASSERT(memcmp(out, pingresp, sizeof(pingresp)) == 0);
}

static void test_props_decode_api(void)
{
	static const uint8_t will[] = {0x18, 0x00, 0x00, 0x00, 0x07};
	static const uint8_t sess[] = {0x11, 0x00, 0x00, 0x00, 0x07};
	struct codec_props pr;

	CU_ASSERT_EQUAL(codec_props_decode_will(will, sizeof(will), &pr), 0);
	CU_ASSERT_EQUAL(pr.will_delay, 7);
	CU_ASSERT_EQUAL(codec_props_decode_will(sess, sizeof(sess), &pr), -MQTT_RC_MALFORMED);
	CU_ASSERT_EQUAL(codec_props_decode(sess, sizeof(sess), CODEC_DISCONNECT, &pr), 0);
	CU_ASSERT_EQUAL(pr.session_expiry, 7);
	CU_ASSERT_EQUAL(codec_props_decode(sess, sizeof(sess), CODEC_PUBLISH, &pr),
			-MQTT_RC_MALFORMED);
	CU_ASSERT_EQUAL(codec_props_decode(NULL, 0, CODEC_PUBLISH, &pr), 0);
	CU_ASSERT_EQUAL(pr.present, 0);
}

/* Found by fuzz_decode: iterating the properties of a packet that has no
 * property block (a v5 DISCONNECT of length 0) did arithmetic on NULL.
 * Corpus file fuzz/corpus/decode/regress-absent-props. */
static void test_regress_absent_props(void)
{
	struct codec_packet p;
	struct codec_buf k, v;
	uint32_t pos = 0, id;

	CU_ASSERT_EQUAL(codec_decode(0xE0, NULL, 0, CODEC_V5, &p), 0);
	CU_ASSERT_PTR_NULL(p.u.disconnect.props.raw.p);
	CU_ASSERT_EQUAL(codec_props_next_user(&p.u.disconnect.props, &pos, &k, &v), 0);
	CU_ASSERT_EQUAL(codec_props_next_sub_id(&p.u.disconnect.props, &pos, &id), 0);
	CU_ASSERT_EQUAL(codec_decode(0xC0, NULL, 0, CODEC_V311, &p), 0);
}

/* Empty inputs, possibly without a buffer, are handled without touching
 * the pointer. */
static void test_empty_inputs(void)
{
	struct codec_frame fr;
	struct codec_props pr;

	CU_ASSERT_EQUAL(codec_frame_scan(NULL, 0, 0, &fr), CODEC_PARTIAL);
	CU_ASSERT(codec_utf8_valid(NULL, 0));
	CU_ASSERT_FALSE(codec_topic_name_valid(NULL, 0));
	CU_ASSERT_FALSE(codec_topic_filter_valid(NULL, 0));
	CU_ASSERT_EQUAL(codec_props_decode_will(NULL, 0, &pr), 0);
}

static void test_names(void)
{
	CU_ASSERT_STRING_EQUAL(codec_type_name(CODEC_PUBLISH), "PUBLISH");
	CU_ASSERT_STRING_EQUAL(codec_type_name(CODEC_AUTH), "AUTH");
	CU_ASSERT_STRING_EQUAL(codec_type_name(99), "UNKNOWN");
	CU_ASSERT_STRING_EQUAL(codec_rc_name(MQTT_RC_MALFORMED), "malformed packet");
	CU_ASSERT_STRING_EQUAL(codec_rc_name(0x42), "unknown reason code");
}

static const struct test_case vectors[] = {
	{"all valid vectors decode", test_valid_all_decode},
	{"CONNECT 3.1.1 fields", test_connect_v311_fields},
	{"CONNECT 3.1 fields", test_connect_v31_fields},
	{"[MQTT-3.1.2-2] CONNECT with Mosquitto's bridge bit", test_connect_bridge_bit},
	{"CONNECT 5 fields and properties", test_connect_v5_fields},
	{"CONNACK fields", test_connack_fields},
	{"PUBLISH fields", test_publish_fields},
	{"PUBACK..PUBCOMP fields", test_ack_fields},
	{"SUBSCRIBE fields", test_subscribe_fields},
	{"UNSUBSCRIBE, SUBACK, UNSUBACK fields", test_unsubscribe_suback_fields},
	{"DISCONNECT, AUTH fields", test_disconnect_auth_fields},
	{NULL, NULL},
};
static const struct test_case framing[] = {
	{"every split point decodes identically", test_chunking_every_split},
	{"scanner byte by byte", test_chunking_byte_by_byte},
	{"a stream of packets split everywhere", test_chunking_stream},
	{"remaining length boundaries", test_scan_remaining_lengths},
	{"maximum packet size", test_scan_max_packet},
	{"MQTT-2.2.2-2 every first byte", test_scan_every_first_byte},
	{NULL, NULL},
};
static const struct test_case malformed[] = {
	{"malformed vectors with exact reason codes", test_malformed_vectors},
	{"truncated bodies", test_truncated_bodies},
	{"failed CONNECT keeps its version", test_connect_failure_keeps_version},
	{NULL, NULL},
};
static const struct test_case strings[] = {
	{"MQTT-1.5.4-1 MQTT-1.5.4-2 UTF-8", test_utf8},
	{"MQTT-3.3.2-2 topic names", test_topic_names},
	{"MQTT-4.7.1-2 MQTT-4.7.1-3 topic filters", test_topic_filters},
	{NULL, NULL},
};
static const struct test_case encoder[] = {
	{"varint sizes", test_varint_size},
	{"hand vectors re-encode byte for byte", test_reencode_vectors},
	{"round trip every type and version", test_roundtrip_every_type_and_version},
	{"round trip every property", test_roundtrip_every_property},
	{"property block sizes", test_props_size},
	{"encoder limits", test_encode_limits},
	{"PUBLISH head without payload", test_encode_publish_head},
	{"encoder known bytes", test_encode_known_bytes},
	{"property block decoding", test_props_decode_api},
	{"names", test_names},
	{"regression: iterators on an absent property block", test_regress_absent_props},
	{"empty inputs without a buffer", test_empty_inputs},
	{NULL, NULL},
};

/* ---- one definition of the legal first bytes; the framing loop codec_frames() ---- */

/* A body that is valid at MQTT 5 for the packet type of `first`, whatever
 * its flags say (a PUBLISH gets a packet id when its QoS bits are set). */
static size_t layout_valid_body(uint8_t first, uint8_t *b)
{
	static const uint8_t connect[] = {0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 0, 0, 0};
	static const uint8_t pid[] = {0, 1};
	static const uint8_t connack[] = {0, 0, 0};
	static const uint8_t suback[] = {0, 1, 0, 0};
	static const uint8_t subscribe[] = {0, 1, 0, 0, 1, 'a', 0};
	static const uint8_t unsubscribe[] = {0, 1, 0, 0, 1, 'a'};
	const uint8_t *src = NULL;
	size_t n = 0;

	switch (first >> 4) {
	case CODEC_CONNECT: src = connect; n = sizeof(connect); break;
	case CODEC_CONNACK: src = connack; n = sizeof(connack); break;
	case CODEC_PUBLISH:
		b[0] = 0, b[1] = 1, b[2] = 'a', n = 3;
		if (first & 0x06)
			b[n++] = 0, b[n++] = 1;
		b[n++] = 0;
		return n;
	case CODEC_PUBACK:
	case CODEC_PUBREC:
	case CODEC_PUBREL:
	case CODEC_PUBCOMP: src = pid; n = sizeof(pid); break;
	case CODEC_SUBSCRIBE: src = subscribe; n = sizeof(subscribe); break;
	case CODEC_SUBACK:
	case CODEC_UNSUBACK: src = suback; n = sizeof(suback); break;
	case CODEC_UNSUBSCRIBE: src = unsubscribe; n = sizeof(unsubscribe); break;
	default: break; /* PINGREQ, PINGRESP, DISCONNECT, AUTH: empty is valid */
	}
	if (n)
		memcpy(b, src, n);
	return n;
}

/* [MQTT-2.2.2-2]: codec_decode() refuses exactly the first bytes the frame
 * scanner refuses. Both read the one definition (legal_flags in
 * codec/decode.rl); with a body valid for the type, a first byte decodes
 * if and only if it scans, and 24 of the 256 do. */
static void test_layout_first_byte_one_rule(void)
{
	int legal = 0;

	for (unsigned v = 0; v < 256; v++) {
		uint8_t first = (uint8_t)v, hdr[2] = {first, 0}, body[16];
		struct codec_frame fr;
		struct codec_packet pkt;
		size_t n = layout_valid_body(first, body);
		int scan = codec_frame_scan(hdr, 2, 0, &fr);
		int rc = codec_decode(first, body, (uint32_t)n, CODEC_V5, &pkt);

		if (scan == 0) {
			legal++;
			CU_ASSERT_EQUAL(rc, 0);
		} else {
			CU_ASSERT_EQUAL(scan, -MQTT_RC_MALFORMED);
			CU_ASSERT_EQUAL(rc, -MQTT_RC_MALFORMED);
		}
	}
	CU_ASSERT_EQUAL(legal, 24);
}

/* What codec_frames() handed to the callback. */
struct layout_seen {
	size_t count;
	size_t bytes;   /* header + body of every packet seen */
	size_t stop_at; /* > 0: stop (return 1) at this packet */
	uint32_t limit; /* the limit the callback sets after the first packet */
	uint32_t *max;  /* where codec_frames() reads the limit */
};

static int layout_on_packet(void *ctx, const struct codec_frame *fr, const uint8_t *body)
{
	struct layout_seen *s = ctx;
	struct codec_packet pkt;

	CU_ASSERT_EQUAL(codec_decode(fr->first, body, fr->remaining, CODEC_V5, &pkt), 0);
	s->count++;
	s->bytes += (size_t)fr->header_len + fr->remaining;
	if (s->max)
		*s->max = s->limit;
	return s->count == s->stop_at ? 1 : 0;
}

/* The MQTT 5 valid vectors back to back; returns the byte count. */
static size_t layout_stream(uint8_t *stream, size_t cap, size_t *count)
{
	size_t total = 0;

	*count = 0;
	for (size_t i = 0; i < N_VALID; i++) {
		if (valid_vectors[i].version != 5)
			continue;
		CU_ASSERT_FATAL(total + valid_vectors[i].len <= cap);
		memcpy(stream + total, valid_vectors[i].bytes, valid_vectors[i].len);
		total += valid_vectors[i].len;
		(*count)++;
	}
	return total;
}

/* A receive buffer that grows by `step` bytes per read and is compacted
 * after each call, as the transport does: every packet comes out once,
 * whatever the step, and `need` names the whole size of a packet whose
 * fixed header is in but whose body is not. */
static void test_layout_frames_in_steps(void)
{
	uint8_t stream[4096], buf[4096];
	size_t count, total = layout_stream(stream, sizeof(stream), &count);

	for (size_t step = 1; step <= total; step += step < 16 ? 1 : 13) {
		struct layout_seen seen = {0};
		size_t have = 0, fed = 0;

		while (fed < total) {
			struct codec_feed feed;
			size_t add = total - fed < step ? total - fed : step;
			struct codec_frame fr;

			memcpy(buf + have, stream + fed, add);
			have += add;
			fed += add;
			CU_ASSERT_EQUAL_FATAL(codec_frames(buf, have, NULL, layout_on_packet, &seen, &feed), 0);
			CU_ASSERT_FATAL(feed.used <= have);
			memmove(buf, buf + feed.used, have - feed.used);
			have -= feed.used;
			if (codec_frame_scan(buf, have, 0, &fr) == 0) {
				CU_ASSERT_EQUAL(feed.need, (size_t)fr.header_len + fr.remaining);
			} else {
				CU_ASSERT_EQUAL(feed.need, 0);
			}
		}
		CU_ASSERT_EQUAL(seen.count, count);
		CU_ASSERT_EQUAL(seen.bytes, total);
		CU_ASSERT_EQUAL(have, 0);
	}
}

/* A callback's positive return stops the loop after its packet, which is
 * counted as consumed; the caller sees the value. */
static void test_layout_frames_callback_stops(void)
{
	uint8_t stream[4096];
	size_t count, total = layout_stream(stream, sizeof(stream), &count);
	struct layout_seen seen = {0};
	struct codec_feed feed;

	CU_ASSERT_FATAL(count >= 3);
	seen.stop_at = 2;
	CU_ASSERT_EQUAL(codec_frames(stream, total, NULL, layout_on_packet, &seen, &feed), 1);
	CU_ASSERT_EQUAL(seen.count, 2);
	CU_ASSERT_EQUAL(feed.used, seen.bytes);
	CU_ASSERT(feed.used < total);
}

/* A bad fixed header ends the loop with its reason code; the packets
 * before it were handled and consumed. The size limit is read afresh
 * before each packet, so a callback that lowers it (as the engine does
 * when CONNECT is accepted) refuses the next packet, not the current. */
static void test_layout_frames_errors_and_limit(void)
{
	const uint8_t bad[] = {0xC0, 0x00, 0xC0, 0x00, 0xC1, 0x00, 0xC0, 0x00};
	const uint8_t two[] = {0x30, 0x04, 0x00, 0x01, 'a', 0x00, 0x30, 0x04, 0x00, 0x01, 'b', 0x00};
	struct layout_seen seen = {0};
	struct codec_feed feed;
	uint32_t max = 6;

	CU_ASSERT_EQUAL(codec_frames(bad, sizeof(bad), NULL, layout_on_packet, &seen, &feed),
			-MQTT_RC_MALFORMED);
	CU_ASSERT_EQUAL(seen.count, 2);
	CU_ASSERT_EQUAL(feed.used, 4);

	memset(&seen, 0, sizeof(seen));
	seen.max = &max;
	seen.limit = 5; /* one byte short of the second PUBLISH */
	CU_ASSERT_EQUAL(codec_frames(two, sizeof(two), &max, layout_on_packet, &seen, &feed),
			-MQTT_RC_PACKET_TOO_LARGE);
	CU_ASSERT_EQUAL(seen.count, 1);
	CU_ASSERT_EQUAL(feed.used, 6);

	memset(&seen, 0, sizeof(seen));
	CU_ASSERT_EQUAL(codec_frames(NULL, 0, NULL, layout_on_packet, &seen, &feed), 0);
	CU_ASSERT_EQUAL(feed.used, 0);
	CU_ASSERT_EQUAL(feed.need, 0);
	CU_ASSERT_EQUAL(seen.count, 0);
}

static const struct test_case layout[] = {
	{"MQTT-2.2.2-2 decoder and scanner share the legal first bytes",
	 test_layout_first_byte_one_rule},
	{"codec_frames in every read size, with need", test_layout_frames_in_steps},
	{"codec_frames stops when the callback says so", test_layout_frames_callback_stops},
	{"codec_frames errors and a limit changed by the callback",
	 test_layout_frames_errors_and_limit},
	{NULL, NULL},
};

static const struct test_suite codec_suites[] = {
	{"codec vectors", vectors},
	{"codec framing", framing},
	{"codec malformed", malformed},
	{"codec strings", strings},
	{"codec encoder", encoder},
	{"codec grammar and framing loop", layout},
	{NULL, NULL},
};

TEST_RUNNER_MAIN(codec_suites)
