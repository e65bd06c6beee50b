/*
 * http.rl - the HTTP/1.1 request head (RFC 7230 3, 5.3; URI syntax from
 * RFC 3986), and nothing else: the grammar alone, as Puma's
 * http11_parser_common.rl. codec/http_parse.rl includes it and defines the
 * actions, which only record where things are:
 *
 *   mark        an element starts (method, target, field name)
 *   method      the method ends            target   the request-target ends
 *   path_start, path_end                   the path of the target
 *   query_start, query_end                 its query
 *   major, minor                           the version's digits
 *   colon       a field name ends, its value starts
 *   field_end   a field's line ends
 *   done        the empty line that ends the head
 *
 * Not accepted: obsolete line folding (RFC 7230 3.2.4 lets a server
 * refuse it), a request-target in authority form (CONNECT), control
 * characters in a field value. A bare LF ends a line (RFC 7230 3.5).
 */

%%{
	machine http_head;
	alphtype unsigned char;

	eol = "\r"? "\n";
	tchar = alnum | "!" | "#" | "$" | "%" | "&" | "'" | "*" | "+" | "-" | "." | "^" | "_"
		| "`" | "|" | "~";
	token = tchar+;
	field_char = 0x21..0x7E | 0x80..0xFF | " " | "\t";

	unreserved = alnum | "-" | "." | "_" | "~";
	pct_encoded = "%" xdigit xdigit;
	sub_delims = "!" | "$" | "&" | "'" | "(" | ")" | "*" | "+" | "," | ";" | "=";
	pchar = unreserved | pct_encoded | sub_delims | ":" | "@";
	abs_path = ("/" pchar*)+;
	query = (pchar | "/" | "?")*;
	path_part = abs_path >path_start %path_end ("?" query >query_start %query_end)?;

	scheme = alpha (alnum | "+" | "-" | ".")*;
	authority = (unreserved | pct_encoded | sub_delims | ":" | "@" | "[" | "]")+;

	origin_form = path_part;
	absolute_form = scheme "://" authority path_part?;
	asterisk_form = "*";
	request_target = (origin_form | absolute_form | asterisk_form) >mark %target;

	version = "HTTP/" digit @major "." digit @minor;
	request_line = token >mark %method " " request_target " " version eol;

	header_field = token >mark ":" @colon field_char* (eol >field_end);

	main := request_line header_field* eol @done;
}%%
