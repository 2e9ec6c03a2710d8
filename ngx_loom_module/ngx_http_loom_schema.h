/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_SCHEMA_H_INCLUDED_
#define _NGX_HTTP_LOOM_SCHEMA_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>


/*
 * Topic schemas.  A schema is an example object, as in the original Data
 * Loom: only its keys, and which of its values are objects, count.
 *
 * A message matches when it has the schema's keys and no other, and each
 * of its values that is an object matches the schema's value for that key
 * (which must then be an object too).  A scalar, array or null value in
 * the message matches whatever the schema has for that key.
 *
 * Pure code: jansson only, no nginx function calls.
 */


/* NGX_OK: data matches the schema; NGX_DECLINED: it does not */
ngx_int_t ngx_http_loom_schema_match(json_t *schema, json_t *data);

/*
 * registerTopic of a topic that exists succeeds when the schema it brings
 * is the one the topic has, as the original decides it: the existing
 * schema, checked as a message against the new one
 */
ngx_int_t ngx_http_loom_schema_same(json_t *existing, json_t *proposed);


#endif /* _NGX_HTTP_LOOM_SCHEMA_H_INCLUDED_ */
