/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>
#include "ngx_http_loom_http.h"
#include "ngx_http_loom_protocol.h"
#include "ngx_http_loom_json.h"
#include "ngx_http_loom_utf8.h"


/*
 * The location of loom_http (docs/http.md):
 *
 *     GET  .../topics               listTopics (?cursor= for a next page)
 *     GET  .../topics/NAME          get, with an ETag of its position
 *     POST .../topics/NAME          publish of the body
 *     GET  .../topics/NAME/events   an event stream (ngx_http_loom_http_sse.c)
 *
 * NAME is the rest of the path as sent, percent-decoded here: "%2F" is a
 * slash of the name, so that a topic whose name ends in "/events" can be
 * read.  The answer of the action gives the status: its code, but 404
 * for a topic that does not exist; the body is the answer's members but
 * "id", "action" and "type", with "code" the HTTP status.
 */


#define NGX_HTTP_LOOM_HTTP_HEARTBEAT   15000


static ngx_int_t ngx_http_loom_http_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_loom_http_route(ngx_http_request_t *r,
    ngx_uint_t *route, ngx_str_t *name);
static ngx_int_t ngx_http_loom_http_not_allowed(ngx_http_request_t *r,
    char *allow);
static ngx_int_t ngx_http_loom_http_get(ngx_http_loom_http_t *h);
static ngx_int_t ngx_http_loom_http_ask(ngx_http_loom_http_t *h,
    u_char *m, size_t len);
static ngx_int_t ngx_http_loom_http_list(ngx_http_loom_http_t *h);
static ngx_int_t ngx_http_loom_http_post(ngx_http_loom_http_t *h);
static void ngx_http_loom_http_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_loom_http_publish(ngx_http_loom_http_t *h,
    u_char *body, size_t len);
static ngx_int_t ngx_http_loom_http_read_body(ngx_http_request_t *r,
    ngx_str_t *body);



char *
ngx_http_loom_http(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_loom_loc_conf_t *llcf = conf;

    ngx_str_t                  *value, s;
    ngx_msec_t                  ms;
    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_loom_main_conf_t  *lmcf;

    if (llcf->http_heartbeat) {
        return "is duplicate";
    }

    llcf->http_heartbeat = NGX_HTTP_LOOM_HTTP_HEARTBEAT;

    value = cf->args->elts;

    if (cf->args->nelts == 2) {

        if (ngx_strncmp(value[1].data, "heartbeat=", 10) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }

        s.data = value[1].data + 10;
        s.len = value[1].len - 10;

        ms = ngx_parse_time(&s, 0);

        if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid heartbeat \"%V\"", &s);
            return NGX_CONF_ERROR;
        }

        llcf->http_heartbeat = ms;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_loom_http_handler;

    lmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_loom_module);
    lmcf->used = 1;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_loom_http_handler(ngx_http_request_t *r)
{
    void                      *access;
    ngx_int_t                  rc;
    ngx_str_t                  name;
    ngx_uint_t                 route;
    ngx_http_loom_http_t      *h;
    ngx_http_loom_loc_conf_t  *llcf;

    if (ngx_http_loom_get_worker() == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_loom_module);

    rc = ngx_http_loom_http_route(r, &route, &name);

    if (rc != NGX_OK) {
        (void) ngx_http_discard_request_body(r);

        return (rc == NGX_DECLINED)
               ? ngx_http_loom_http_error(r, NGX_HTTP_NOT_FOUND,
                                          "not found")
               : ngx_http_loom_http_error(r, NGX_HTTP_BAD_REQUEST,
                                          "topic name is not valid UTF-8");
    }

    switch (route) {

    case NGX_HTTP_LOOM_HTTP_LIST:
        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
            return ngx_http_loom_http_not_allowed(r, "GET, HEAD");
        }

        break;

    case NGX_HTTP_LOOM_HTTP_TOPIC:
        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_POST))) {
            return ngx_http_loom_http_not_allowed(r, "GET, HEAD, POST");
        }

        break;

    default: /* NGX_HTTP_LOOM_HTTP_EVENTS */
        if (r->method != NGX_HTTP_GET) {
            return ngx_http_loom_http_not_allowed(r, "GET");
        }
    }

    if (r->method != NGX_HTTP_POST) {
        rc = ngx_http_discard_request_body(r);

        if (rc != NGX_OK) {
            return rc;
        }
    }

    /* the credential, as for a WebSocket; what it allows, per request */

    rc = ngx_http_loom_auth_check(r, llcf, r->pool, &access);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_OK) {
        (void) ngx_http_discard_request_body(r);
        return ngx_http_loom_http_error(r, NGX_HTTP_UNAUTHORIZED,
                                        "unauthorized");
    }

    h = ngx_http_loom_http_create(r, access);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->name = name;

    switch (route) {

    case NGX_HTTP_LOOM_HTTP_LIST:
        return ngx_http_loom_http_list(h);

    case NGX_HTTP_LOOM_HTTP_EVENTS:
        return ngx_http_loom_http_events(h);

    default:
        return (r->method == NGX_HTTP_POST) ? ngx_http_loom_http_post(h)
                                            : ngx_http_loom_http_get(h);
    }
}


/* NGX_OK; NGX_DECLINED: no such path; NGX_ERROR: a name not UTF-8 */

static ngx_int_t
ngx_http_loom_http_route(ngx_http_request_t *r, ngx_uint_t *route,
    ngx_str_t *name)
{
    u_char  *p, *last, *start, *dst;

    p = r->unparsed_uri.data;
    last = p + r->unparsed_uri.len;

    start = ngx_strlchr(p, last, '?');
    if (start) {
        last = start;
    }

    /* the first "/topics" segment of the path */

    for ( ;; ) {
        start = ngx_strlcasestrn(p, last, (u_char *) "/topics", 7 - 1);

        if (start == NULL) {
            return NGX_DECLINED;
        }

        p = start + 7;

        if (ngx_strncmp(start, "/topics", 7) == 0
            && (p == last || *p == '/'))
        {
            break;
        }
    }

    if (p == last || p + 1 == last) {
        *route = NGX_HTTP_LOOM_HTTP_LIST;
        ngx_str_null(name);
        return NGX_OK;
    }

    p++;
    *route = NGX_HTTP_LOOM_HTTP_TOPIC;

    if (last - p > 7 && ngx_strncmp(last - 7, "/events", 7) == 0) {
        *route = NGX_HTTP_LOOM_HTTP_EVENTS;
        last -= 7;
    }

    dst = ngx_pnalloc(r->pool, last - p);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    name->data = dst;
    ngx_unescape_uri(&dst, &p, last - p, 0);
    name->len = dst - name->data;

    if (name->len == 0) {
        return NGX_DECLINED;
    }

    if (ngx_http_loom_utf8_check(NGX_HTTP_LOOM_UTF8_ACCEPT, name->data,
                                 name->len)
        != NGX_HTTP_LOOM_UTF8_ACCEPT)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_http_not_allowed(ngx_http_request_t *r, char *allow)
{
    ngx_table_elt_t  *h;

    (void) ngx_http_discard_request_body(r);

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    h->value.data = (u_char *) allow;
    h->value.len = ngx_strlen(allow);

    return ngx_http_loom_http_error(r, NGX_HTTP_NOT_ALLOWED,
                                    "method not allowed");
}


static ngx_int_t
ngx_http_loom_http_get(ngx_http_loom_http_t *h)
{
    u_char              *m, *p;
    ngx_str_t            topic;
    ngx_http_request_t  *r;

    r = h->request;

    if (ngx_http_loom_http_quote(r, &h->name, &topic) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    m = ngx_pnalloc(r->pool, sizeof("{\"action\":\"get\",\"topic\":}") - 1
                             + topic.len);
    if (m == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_http_loom_cpylit(m, "{\"action\":\"get\",\"topic\":");
    p = ngx_cpymem(p, topic.data, topic.len);
    *p++ = '}';

    return ngx_http_loom_http_ask(h, m, p - m);
}


/* the request waits for the answer to m, its response */

static ngx_int_t
ngx_http_loom_http_ask(ngx_http_loom_http_t *h, u_char *m, size_t len)
{
    h->answer = ngx_http_loom_http_reply;
    h->request->main->count++;

    (void) ngx_http_loom_http_run(h, m, len);

    return NGX_DONE;
}


static ngx_int_t
ngx_http_loom_http_list(ngx_http_loom_http_t *h)
{
    u_char              *m, *p;
    ngx_str_t            cursor, quoted;
    ngx_http_request_t  *r;

    r = h->request;
    ngx_str_null(&quoted);

    /* ?cursor=<digits>: the next page, as "cursor" in listTopics' data */

    if (ngx_http_loom_http_arg(r, "cursor", &cursor) == NGX_OK) {

        if (ngx_http_loom_http_quote(r, &cursor, &quoted) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    m = ngx_pnalloc(r->pool, sizeof("{\"action\":\"listTopics\","
                                    "\"data\":{\"cursor\":}}") - 1
                             + quoted.len);
    if (m == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_http_loom_cpylit(m, "{\"action\":\"listTopics\"");

    if (quoted.len) {
        p = ngx_http_loom_cpylit(p, ",\"data\":{\"cursor\":");
        p = ngx_cpymem(p, quoted.data, quoted.len);
        *p++ = '}';
    }

    *p++ = '}';

    return ngx_http_loom_http_ask(h, m, p - m);
}


static ngx_int_t
ngx_http_loom_http_post(ngx_http_loom_http_t *h)
{
    ngx_int_t                  rc;
    ngx_http_request_t        *r;
    ngx_http_loom_loc_conf_t  *llcf;

    r = h->request;
    llcf = h->session.conf;

    if (r->headers_in.content_length_n > (off_t) llcf->max_message_size) {
        (void) ngx_http_discard_request_body(r);
        return ngx_http_loom_http_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                        "request body is larger than "
                                        "loom_max_message_size");
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_loom_http_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/* the body is read: the request holds the count of its reading */

static void
ngx_http_loom_http_body(ngx_http_request_t *r)
{
    ngx_int_t              rc;
    ngx_str_t              body;
    ngx_http_loom_http_t  *h;

    h = ngx_http_get_module_ctx(r, ngx_http_loom_module);

    rc = ngx_http_loom_http_read_body(r, &body);

    switch (rc) {

    case NGX_OK:
        rc = ngx_http_loom_http_publish(h, body.data, body.len);
        break;

    case NGX_DECLINED:
        rc = ngx_http_loom_http_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                      "request body is larger than "
                                      "loom_max_message_size");
        break;

    default:
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


/* the body in one piece; NGX_DECLINED: over loom_max_message_size */

static ngx_int_t
ngx_http_loom_http_read_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char                    *p;
    size_t                     len, size;
    ssize_t                    n;
    ngx_buf_t                 *b;
    ngx_chain_t               *cl;
    ngx_http_loom_loc_conf_t  *llcf;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_loom_module);

    len = 0;

    if (r->request_body) {
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            len += ngx_buf_size(cl->buf);
        }
    }

    if (len > llcf->max_message_size) {
        return NGX_DECLINED;
    }

    body->data = ngx_pnalloc(r->pool, len + 1);
    if (body->data == NULL) {
        return NGX_ERROR;
    }

    p = body->data;

    /*
     * A body larger than client_body_buffer_size is in nginx's temporary
     * file: it is read back from there (the page cache has it)
     */

    for (cl = len ? r->request_body->bufs : NULL; cl; cl = cl->next) {
        b = cl->buf;
        size = ngx_buf_size(b);

        if (ngx_buf_in_memory(b)) {
            p = ngx_cpymem(p, b->pos, size);
            continue;
        }

        n = ngx_read_file(b->file, p, size, b->file_pos);

        if (n != (ssize_t) size) {
            return NGX_ERROR;
        }

        p += size;
    }

    body->len = p - body->data;

    return NGX_OK;
}


/*
 * {"action":"publish","requireAck":true,"topic":T,"data":<body>}, after
 * the checks a WebSocket message gets, and one more: the body must be one
 * JSON value and nothing else
 */

static ngx_int_t
ngx_http_loom_http_publish(ngx_http_loom_http_t *h, u_char *body, size_t len)
{
    u_char                         *m, *p, *scratch, *start, *end;
    u_char                          errbuf[NGX_HTTP_LOOM_JSON_ERRLEN];
    size_t                          n;
    ngx_str_t                       topic, err;
    ngx_http_request_t             *r;
    ngx_http_loom_json_envelope_t   env;

    r = h->request;

    if (ngx_http_loom_utf8_check(NGX_HTTP_LOOM_UTF8_ACCEPT, body, len)
        != NGX_HTTP_LOOM_UTF8_ACCEPT)
    {
        return ngx_http_loom_http_error(r, NGX_HTTP_BAD_REQUEST,
                                        "message is not valid UTF-8");
    }

    /* the body without the JSON whitespace around it */

    start = body;
    end = body + len;

    while (start < end && (*start == ' ' || *start == '\t'
                           || *start == '\r' || *start == '\n'))
    {
        start++;
    }

    while (end > start && (end[-1] == ' ' || end[-1] == '\t'
                           || end[-1] == '\r' || end[-1] == '\n'))
    {
        end--;
    }

    if (ngx_http_loom_http_quote(r, &h->name, &topic) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = sizeof("{\"action\":\"publish\",\"requireAck\":true,\"topic\":,"
               "\"data\":}") - 1 + topic.len + (end - start);

    m = ngx_pnalloc(r->pool, n);
    scratch = ngx_pnalloc(r->pool, n);

    if (m == NULL || scratch == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_http_loom_cpylit(m, "{\"action\":\"publish\","
                                "\"requireAck\":true,\"topic\":");
    p = ngx_cpymem(p, topic.data, topic.len);

    /* no body is no data, as a message without "data" */

    if (start < end) {
        p = ngx_http_loom_cpylit(p, ",\"data\":");
        body = p;
        p = ngx_cpymem(p, start, end - start);
    }

    *p++ = '}';

    if (start < end) {
        err.data = errbuf;

        if (ngx_http_loom_json_scan_envelope(m, p - m,
                                             h->session.conf->max_json_depth,
                                             scratch, &env, &err)
            != NGX_OK)
        {
            return ngx_http_loom_http_error(r, NGX_HTTP_BAD_REQUEST,
                                            (char *) errbuf);
        }

        if (env.data.raw.data != body
            || env.data.raw.len != (size_t) (end - start))
        {
            return ngx_http_loom_http_error(r, NGX_HTTP_BAD_REQUEST,
                                   "request body must be one JSON value");
        }
    }

    /* the request's count is the body reading's */

    h->answer = ngx_http_loom_http_reply;

    (void) ngx_http_loom_http_run(h, m, p - m);

    return NGX_DONE;
}
