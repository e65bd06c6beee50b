/*
 * mqtt.rl - the MQTT grammar, and nothing else: byte classes, the fixed
 * header, MQTT 5 property blocks and the body of every packet type, as
 * Ragel machines. No C host code lives here; codec/decode.rl includes each
 * section below into a machine of its own, defines the actions named here
 * and owns the public functions (the layout of Puma's
 * http11_parser_common.rl and Mongrel2's state_machine.rl).
 *
 * Counted fields (strings, binary data, property blocks, payloads) appear
 * here as their two length bytes or their varint length, carrying an action
 * that consumes the content after a bounds check and jumps past it (fexec):
 * the grammar states where a counted field is, the host how long it is.
 */

%%{
	# Byte classes shared by every machine that reads text.
	machine mqtt_chars;
	alphtype unsigned char;

	tail = 0x80..0xBF;
	# One code point: well-formed, no overlong form, no surrogate, not
	# U+0000 [MQTT-1.5.4-1] [MQTT-1.5.4-2].
	u8char = 0x01..0x7F
		| 0xC2..0xDF tail
		| 0xE0 0xA0..0xBF tail
		| (0xE1..0xEC | 0xEE..0xEF) tail tail
		| 0xED 0x80..0x9F tail
		| 0xF0 0x90..0xBF tail tail
		| 0xF1..0xF3 tail tail tail
		| 0xF4 0x80..0x8F tail tail;

	# A character of a topic level: neither separator nor wildcard.
	lchar = u8char - ('+' | '#' | '/');
}%%

%%{
	# A UTF-8 string as MQTT restricts it (1.5.4).
	machine mqtt_utf8;
	include mqtt_chars;

	main := u8char*;
}%%

%%{
	# A topic name: no wildcard [MQTT-3.3.2-2] [MQTT-4.7.1-1].
	machine mqtt_topic_name;
	include mqtt_chars;

	main := (u8char - ('+' | '#'))*;
}%%

%%{
	# A topic filter. '#' fills a whole level and only the last one, '+' a
	# whole level: [MQTT-4.7.1-1] [MQTT-4.7.1-2] in 5.0, [MQTT-4.7.1-2]
	# [MQTT-4.7.1-3] in 3.1.1.
	machine mqtt_topic_filter;
	include mqtt_chars;

	level = lchar* | '+';
	filt = (level '/')* (level | '#');
	# $share/{ShareName}/{filter}: a share name of one or more characters
	# without wildcards or '/', and a non-empty filter [MQTT-4.8.2-1]
	# [MQTT-4.8.2-2].
	shared = '$share/' lchar+ '/' (filt - zlen);
	main := shared | (filt - ('$share/' any*));
}%%

%%{
	# The fixed header (2.1). Actions: save_first, add_len_digit,
	# stop_header; condition: legal_first.
	machine mqtt_frame;
	alphtype unsigned char;

	# The first byte: a packet type and the flags the specification fixes
	# for it. Which bytes those are is one table in the host
	# (legal_flags in decode.rl), read here as a condition and by
	# codec_decode() for a first byte it is handed.
	first_byte = any when legal_first;

	# Remaining length: at most four digits, minimally encoded
	# [MQTT-1.5.5-1] (a last digit of 0 after a continuation is a longer
	# form of a smaller number).
	remaining = ((0x80..0xFF $add_len_digit){0,3} 0x00..0x7F $add_len_digit)
	          - ((0x80..0xFF){1,3} 0x00);

	# The header ends at the last length digit: whatever follows is the
	# body, so the machine stops there.
	main := first_byte @save_first remaining @stop_header;
}%%

%%{
	# An MQTT 5 property block (2.2.2): one alternative per identifier, by
	# its wire type (2.2.2.2). Actions: begin_prop, set_byte, set_u16,
	# set_u32, read_string, read_binary, count_user, start_vbi, add_vbi,
	# set_sub_id.
	machine mqtt_props;
	alphtype unsigned char;

	# A variable byte integer, minimally encoded [MQTT-1.5.5-1].
	vbi = ((0x80..0xFF){1,3} 0x01..0x7F | 0x00..0x7F) >start_vbi $add_vbi;

	byte = any @set_byte;
	u16 = any any @set_u16;
	u32 = any any any any @set_u32;
	str = any any @read_string;
	bin = any any @read_binary;
	pair = str str @count_user;

	prop = (0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A) @begin_prop byte
	     | (0x13 | 0x21 | 0x22 | 0x23) @begin_prop u16
	     | (0x02 | 0x11 | 0x18 | 0x27) @begin_prop u32
	     | (0x03 | 0x08 | 0x12 | 0x15 | 0x1A | 0x1C | 0x1F) @begin_prop str
	     | (0x09 | 0x16) @begin_prop bin
	     | 0x0B @begin_prop vbi @set_sub_id
	     | 0x26 @begin_prop pair;

	main := prop*;
}%%

%%{
	# Packet bodies, one entry per packet type and protocol level (the host
	# picks the entry from the fixed header). Actions: start_vbi, add_vbi,
	# read_pid, read_topic, mark_payload, read_props, read_will_props,
	# save_rc, mark_list, read_protocol, check_level, check_connect_flags,
	# read_keep_alive, read_connect_field, read_sub_filter,
	# check_sub_opts_v3, check_sub_opts_v5, read_unsub_filter,
	# save_session_present.
	machine mqtt_body;
	alphtype unsigned char;

	vbi = ((0x80..0xFF){1,3} 0x01..0x7F | 0x00..0x7F) >start_vbi $add_vbi;

	pid = any any @read_pid;
	props = vbi @read_props;
	topic = any any @read_topic;
	payload = (any >mark_payload)?;

	# Reason codes each packet may carry (MQTT 5 2.4 and the packet
	# sections); anything else is malformed.
	rc_connack3 = 0x00..0x05;
	rc_connack5 = 0x00 | 0x80..0x8A | 0x8C | 0x90 | 0x95 | 0x97 | 0x99..0x9D | 0x9F;
	rc_puback = 0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99;
	rc_pubrel = 0x00 | 0x92;
	rc_suback3 = 0x00..0x02 | 0x80; # [MQTT-3.9.3-2]
	rc_suback5 = 0x00..0x02 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91 | 0x97 | 0x9E | 0xA1 | 0xA2;
	rc_unsuback5 = 0x00 | 0x11 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91;
	rc_disconnect = 0x00 | 0x04 | 0x80..0x83 | 0x87 | 0x89 | 0x8B | 0x8D..0x90 | 0x93..0xA2;
	rc_auth = 0x00 | 0x18 | 0x19;

	# CONNECT: the fixed part, then the payload machine the flags and the
	# level choose (cpay_*; read_keep_alive jumps there), each field a
	# counted one.
	connect := any any @read_protocol any @check_level any @check_connect_flags
	           any any @read_keep_alive;
	cfield = any any @read_connect_field;
	cpay_v3 := cfield+;
	cpay_v5 := props cfield+;
	cpay_v5_will := props cfield vbi @read_will_props cfield+;

	connack_v3 := (0x00 | 0x01) @save_session_present rc_connack3 @save_rc;
	connack_v5 := (0x00 | 0x01) @save_session_present rc_connack5 @save_rc props;

	publish_v3_q0 := topic payload;
	publish_v3_q := topic pid payload;
	publish_v5_q0 := topic props payload;
	publish_v5_q := topic pid props payload;

	# PUBACK..PUBCOMP: 3.1.1 has the packet id only; MQTT 5 may omit the
	# reason code (then 0) and the properties (3.4.2.1).
	ack_v3 := pid;
	puback_v5 := pid (rc_puback @save_rc props?)?;
	pubrel_v5 := pid (rc_pubrel @save_rc props?)?;

	subscribe_v3 := pid @mark_list (any any @read_sub_filter any @check_sub_opts_v3)+;
	subscribe_v5 := pid props (any any @read_sub_filter any @check_sub_opts_v5)+;
	suback_v3 := pid @mark_list rc_suback3+;
	suback_v5 := pid props rc_suback5+;
	unsubscribe_v3 := pid @mark_list (any any @read_unsub_filter)+;
	unsubscribe_v5 := pid props (any any @read_unsub_filter)+;
	unsuback_v5 := pid props rc_unsuback5+;

	disconnect_v5 := (rc_disconnect @save_rc props?)?;
	auth_v5 := (rc_auth @save_rc props?)?;
}%%
