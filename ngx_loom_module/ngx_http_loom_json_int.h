/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_JSON_INT_H_INCLUDED_
#define _NGX_HTTP_LOOM_JSON_INT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* what the scanner (ngx_http_loom_json.c) takes from the text helpers */


/* literals up to this length go to strtod() from the stack */
#define NGX_HTTP_LOOM_JSON_NUMLEN     64


/* ngx_http_loom_json_text.c */
u_char *ngx_http_loom_json_unquote(u_char *dst, u_char *p, u_char *last);
ngx_uint_t ngx_http_loom_json_overflows(u_char *p, u_char *last);
ngx_int_t ngx_http_loom_json_syntax_error(ngx_str_t *err, u_char c,
    char *context);
ngx_int_t ngx_http_loom_json_literal_error(ngx_str_t *err, u_char c,
    char *literal, ngx_uint_t n);
ngx_int_t ngx_http_loom_json_error(ngx_str_t *err, char *text);
u_char *ngx_http_loom_json_quote_char(u_char *p, u_char c);


#endif /* _NGX_HTTP_LOOM_JSON_INT_H_INCLUDED_ */
