/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_JSON_H_INCLUDED_
#define _NGX_HTTP_LOOM_JSON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * A single-pass, validating scanner for the Data Loom request envelope
 *
 *     {"id":..., "action":..., "topic":..., "data":..., "requireAck":...,
 *      "senderId":...}
 *
 * and the members of revisions ("snapshot", "since", "retention",
 * "storage", "limit", "reverse", "from", "until") and of topic schemas
 * ("schemaType", "compatibility", "version"), kept as raw values.
 *
 * It checks the whole text against RFC 8259, finds the envelope members
 * (key match is ASCII case-insensitive, the last duplicate wins, unknown
 * members are skipped), decodes the string members and keeps the raw bytes
 * of "data" so that they can be stored and delivered as sent.  Errors carry
 * the same text as the original Go server, so existing clients see the
 * same messages.
 *
 * Pure code: nginx types and macros only, no nginx function calls.
 */


#define NGX_HTTP_LOOM_JSON_NONE      0     /* member absent */
#define NGX_HTTP_LOOM_JSON_NULL      1
#define NGX_HTTP_LOOM_JSON_FALSE     2
#define NGX_HTTP_LOOM_JSON_TRUE      3
#define NGX_HTTP_LOOM_JSON_NUMBER    4
#define NGX_HTTP_LOOM_JSON_STRING    5
#define NGX_HTTP_LOOM_JSON_ARRAY     6
#define NGX_HTTP_LOOM_JSON_OBJECT    7


/* room for any error message the scanner writes */
#define NGX_HTTP_LOOM_JSON_ERRLEN    256


typedef struct {
    ngx_uint_t    type;                /* NGX_HTTP_LOOM_JSON_* */
    ngx_str_t     raw;                 /* the value's bytes as sent */
} ngx_http_loom_json_value_t;


typedef struct {
    /* the value of each member: type NONE when absent */
    ngx_http_loom_json_value_t  id;
    ngx_http_loom_json_value_t  action;
    ngx_http_loom_json_value_t  topic;
    ngx_http_loom_json_value_t  data;
    ngx_http_loom_json_value_t  require_ack;
    ngx_http_loom_json_value_t  sender_id;

    /*
     * the members of revisions, kept as sent (any type, null included)
     * for the action that uses them to check
     */
    ngx_http_loom_json_value_t  snapshot;
    ngx_http_loom_json_value_t  since;
    ngx_http_loom_json_value_t  retention;
    ngx_http_loom_json_value_t  storage;
    ngx_http_loom_json_value_t  limit;
    ngx_http_loom_json_value_t  reverse;
    ngx_http_loom_json_value_t  from;
    ngx_http_loom_json_value_t  until;

    /* topic schemas: "schemaType", "compatibility", "version" */
    ngx_http_loom_json_value_t  schema_type;
    ngx_http_loom_json_value_t  compatibility;
    ngx_http_loom_json_value_t  version;

    /*
     * decoded string members (escapes resolved, UTF-8); empty when the
     * member is absent or null; they point into the caller's scratch buffer
     */
    ngx_str_t                   id_str;
    ngx_str_t                   action_str;
    ngx_str_t                   topic_str;
    ngx_str_t                   sender_id_str;

    unsigned                    require_ack_flag:1;

    /* the top-level value was the literal null (routed as action "") */
    unsigned                    null_document:1;

    /*
     * the first number inside "data" whose magnitude does not fit a double
     * (1e400); empty if none
     */
    ngx_str_t                   data_overflow;
} ngx_http_loom_json_envelope_t;


/*
 * Scans buf[0..len).  The input must be valid UTF-8 (the caller checks it).
 * scratch must have room for len bytes: decoded strings go there.
 *
 * Returns NGX_OK, or NGX_ERROR with a NUL-terminated message in
 * err[NGX_HTTP_LOOM_JSON_ERRLEN] (err->len set), worded as Go's
 * encoding/json words it:
 *
 *   syntax:  "invalid character 'h' looking for beginning of value",
 *            "unexpected end of JSON input", "exceeded max depth", ...
 *   types:   "json: cannot unmarshal number into Go struct field
 *             WebSocketMessage.id of type string",
 *            "json: cannot unmarshal array into Go value of type
 *             network.WebSocketMessage"
 */
ngx_int_t ngx_http_loom_json_scan_envelope(u_char *buf, size_t len,
    ngx_uint_t max_depth, u_char *scratch, ngx_http_loom_json_envelope_t *env,
    ngx_str_t *err);

/*
 * JSON string escaping (no surrounding quotes), as Go's encoder does it:
 * '"' and '\\' escaped, \n \r \t as such, other control bytes as \u00XX,
 * '<' '>' '&' as \u003c \u003e \u0026, U+2028 and U+2029 as \u2028 \u2029,
 * bytes that are not valid UTF-8 as \ufffd.
 */
size_t ngx_http_loom_json_escape_len(u_char *src, size_t len);
u_char *ngx_http_loom_json_escape(u_char *dst, u_char *src, size_t len);


#endif /* _NGX_HTTP_LOOM_JSON_H_INCLUDED_ */
