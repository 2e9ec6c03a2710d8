/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_RECORD_H_INCLUDED_
#define _NGX_HTTP_LOOM_RECORD_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* moves the request's limit_conn slots to the connection's pool */
ngx_int_t ngx_http_loom_record_keep_limit_conn(ngx_http_request_t *r);

/* what the access log needs of the request, in the connection's pool */
void *ngx_http_loom_record_create(ngx_http_request_t *r);

/* writes the access log line of the request the record was made from */
void ngx_http_loom_record_log(ngx_connection_t *c, void *record);


#endif /* _NGX_HTTP_LOOM_RECORD_H_INCLUDED_ */
