/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_sha1.h>
#include "ngx_http_loom_module.h"
#include "ngx_http_loom_session.h"
#include "ngx_http_loom_rev.h"
#include "ngx_http_loom_upgrade.h"
#include "ngx_http_loom_shm.h"
#include "ngx_http_loom_json.h"


#define NGX_HTTP_LOOM_WS_GUID      "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define NGX_HTTP_LOOM_MAX_CLIENT_ID  256

/* nginx 1.22 has no name for it */
#define NGX_HTTP_LOOM_UPGRADE_REQUIRED  426


static ngx_int_t ngx_http_loom_handshake_error(ngx_http_request_t *r,
    ngx_uint_t status, char *text);
static ngx_table_elt_t *ngx_http_loom_handshake_header(ngx_http_request_t *r,
    char *name, size_t len, ngx_table_elt_t *after);
static ngx_uint_t ngx_http_loom_handshake_token(ngx_http_request_t *r,
    char *name, size_t nlen, char *token, size_t len);
static ngx_int_t ngx_http_loom_handshake_client_id(ngx_http_request_t *r,
    ngx_http_loom_session_t *s, char **text);
static void ngx_http_loom_handshake_claimed(ngx_http_loom_claim_t *cl,
    ngx_int_t rc);
static ngx_int_t ngx_http_loom_handshake_finish(ngx_http_request_t *r,
    ngx_http_loom_session_t *s);
static ngx_int_t ngx_http_loom_handshake_accept(ngx_http_request_t *r,
    ngx_str_t *key);
static ngx_int_t ngx_http_loom_handshake_add_header(ngx_http_request_t *r,
    char *name, size_t nlen, u_char *value, size_t vlen);


ngx_int_t
ngx_http_loom_handshake_handler(ngx_http_request_t *r)
{
    char                      *text;
    ngx_int_t                  rc;
    ngx_str_t                  key;
    ngx_table_elt_t           *h;
    ngx_http_loom_worker_t    *w;
    ngx_http_loom_session_t   *s;
    ngx_http_loom_loc_conf_t  *llcf;
    void                      *access;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_loom_module);
    w = ngx_http_loom_get_worker();

    if (w == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the credential is checked first, as the original server does */

    rc = ngx_http_loom_auth_check(r, llcf, r->connection->pool,
                                  &access);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_OK) {
        return ngx_http_loom_handshake_error(r, NGX_HTTP_UNAUTHORIZED,
                                             "unauthorized\n");
    }

    if (r != r->main) {
        return ngx_http_loom_handshake_error(r, NGX_HTTP_BAD_REQUEST,
                                      "a websocket cannot be a subrequest\n");
    }

    if (r->method != NGX_HTTP_GET) {
        return ngx_http_loom_handshake_error(r, NGX_HTTP_NOT_ALLOWED,
                        "the websocket handshake must be a GET request\n");
    }

    if (r->http_version != NGX_HTTP_VERSION_11
#if (NGX_HTTP_V2)
        || r->stream
#endif
       )
    {
        return ngx_http_loom_handshake_error(r, NGX_HTTP_BAD_REQUEST,
                              "the websocket handshake needs HTTP/1.1\n");
    }

    if (!ngx_http_loom_handshake_token(r, "Connection", 10, "upgrade", 7))
    {
        return ngx_http_loom_handshake_error(r, NGX_HTTP_BAD_REQUEST,
                                     "missing \"Connection: Upgrade\"\n");
    }

    if (!ngx_http_loom_handshake_token(r, "Upgrade", 7, "websocket", 9))
    {
        return ngx_http_loom_handshake_error(r, NGX_HTTP_BAD_REQUEST,
                                      "missing \"Upgrade: websocket\"\n");
    }

    h = ngx_http_loom_handshake_header(r, "Sec-WebSocket-Version", 21,
                                       NULL);

    if (h == NULL || h->value.len != 2
        || ngx_strncmp(h->value.data, "13", 2) != 0)
    {
        return ngx_http_loom_handshake_error(r, NGX_HTTP_LOOM_UPGRADE_REQUIRED,
                                     "unsupported websocket version\n");
    }

    h = ngx_http_loom_handshake_header(r, "Sec-WebSocket-Key", 17, NULL);

    if (h == NULL) {
        return ngx_http_loom_handshake_error(r, NGX_HTTP_BAD_REQUEST,
                                        "missing \"Sec-WebSocket-Key\"\n");
    }

    key = h->value;

    if (ngx_http_loom_handshake_accept(r, &key) != NGX_OK) {
        return ngx_http_loom_handshake_error(r, NGX_HTTP_BAD_REQUEST,
                                        "invalid \"Sec-WebSocket-Key\"\n");
    }

    if (r->headers_in.content_length_n > 0 || r->headers_in.chunked) {
        return ngx_http_loom_handshake_error(r, NGX_HTTP_BAD_REQUEST,
                                  "the websocket handshake has no body\n");
    }

    s = ngx_http_loom_session_create(r);
    if (s == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s->access = access;

    text = NULL;
    rc = ngx_http_loom_handshake_client_id(r, s, &text);

    if (rc == NGX_AGAIN) {

        /*
         * The id is claimed in Redis: the request waits in its content
         * handler for the answer (ngx_http_loom_handshake_claimed()), and
         * a client that goes away meanwhile finalizes it.
         */

        s->claim->handler = ngx_http_loom_handshake_claimed;
        ngx_http_set_ctx(r, s, ngx_http_loom_module);

        r->read_event_handler = ngx_http_test_reading;
        r->main->count++;

        return NGX_DONE;
    }

    if (rc != NGX_OK) {
        return text ? ngx_http_loom_handshake_error(r, rc, text) : rc;
    }

    return ngx_http_loom_handshake_finish(r, s);
}


static void
ngx_http_loom_handshake_claimed(ngx_http_loom_claim_t *cl, ngx_int_t rc)
{
    ngx_connection_t         *c;
    ngx_http_request_t       *r;
    ngx_http_loom_session_t  *s;

    s = cl->data;
    r = s->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    r->read_event_handler = ngx_http_block_reading;

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "loom: ClientId \"%V\" is connected to another node",
                      &s->client_id);

        /* the zone's entry and the claim go now, not with the connection */
        ngx_http_loom_session_release(s);

        rc = ngx_http_loom_handshake_error(r, NGX_HTTP_CONFLICT,
                                           "client ID already exists\n");

    } else {
        /* NGX_OK, or Redis did not answer: the claim is made later */
        rc = ngx_http_loom_handshake_finish(r, s);
    }

    ngx_http_finalize_request(r, rc);

    /* outside of ngx_http_request_handler() */
    ngx_http_run_posted_requests(c);
}


/* the ClientId is the connection's: the 101 goes out */

static ngx_int_t
ngx_http_loom_handshake_finish(ngx_http_request_t *r,
    ngx_http_loom_session_t *s)
{
    ngx_int_t                rc;
    ngx_table_elt_t         *h;
    ngx_http_loom_worker_t  *w;

    w = s->worker;

    ngx_http_set_ctx(r, s, ngx_http_loom_module);

    if (s->claim) {
        s->claim->handler = ngx_http_loom_session_claim_lost;
    }

    /* revisions (docs/protocol.md section 15) when the client asks */

    for (h = ngx_http_loom_handshake_header(r, "Sec-WebSocket-Protocol", 22,
                                            NULL);
         h;
         h = ngx_http_loom_handshake_header(r, "Sec-WebSocket-Protocol", 22,
                                            h))
    {
        if (ngx_http_loom_rev_offered(&h->value)) {
            s->subscriber.v2 = 1;
            break;
        }
    }

    /* counted before the client can see the 101 */

    if (w->stats) {
        w->stats->connections++;
        w->stats->connections_total++;
        s->counted = 1;
    }

    r->headers_out.status = NGX_HTTP_SWITCHING_PROTOCOLS;
    ngx_str_set(&r->headers_out.status_line, "101 Switching Protocols");
    r->headers_out.content_length_n = -1;
    r->keepalive = 0;

    if (ngx_http_loom_handshake_add_header(r, "Upgrade", 7,
                                           (u_char *) "websocket", 9)
        != NGX_OK)
    {
        goto failed;
    }

    if (s->subscriber.v2
        && ngx_http_loom_handshake_add_header(r, "Sec-WebSocket-Protocol", 22,
                                   (u_char *) NGX_HTTP_LOOM_REV_PROTOCOL,
                                   sizeof(NGX_HTTP_LOOM_REV_PROTOCOL) - 1)
           != NGX_OK)
    {
        goto failed;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        goto failed;
    }

    if (ngx_http_send_special(r, NGX_HTTP_FLUSH) == NGX_ERROR) {
        goto failed;
    }

    r->main->count++;

    ngx_http_loom_auth_start(s);
    ngx_http_loom_upgrade_start(s);

    return NGX_DONE;

failed:

    if (w->stats) {
        w->stats->connections_total--;
    }

    ngx_http_loom_session_release(s);

    return NGX_ERROR;
}


/*
 * The response carries a short text saying what was wrong, so that a
 * client author sees it in a browser's network tab or in curl.
 */

static ngx_int_t
ngx_http_loom_handshake_error(ngx_http_request_t *r, ngx_uint_t status,
    char *text)
{
    size_t       len;
    ngx_int_t    rc;
    ngx_buf_t   *b;
    ngx_chain_t  out;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = ngx_strlen(text);

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "text/plain; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    if (ngx_http_loom_handshake_add_header(r, "X-Content-Type-Options", 22,
                                           (u_char *) "nosniff", 7)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (status == NGX_HTTP_LOOM_UPGRADE_REQUIRED) {
        ngx_str_set(&r->headers_out.status_line, "426 Upgrade Required");

        if (ngx_http_loom_handshake_add_header(r, "Sec-WebSocket-Version", 21,
                                               (u_char *) "13", 2)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (status == NGX_HTTP_NOT_ALLOWED) {
        if (ngx_http_loom_handshake_add_header(r, "Allow", 5,
                                               (u_char *) "GET", 3)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (r->method == NGX_HTTP_HEAD) {
        r->header_only = 1;
        return ngx_http_send_header(r);
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = (u_char *) text;
    b->last = b->pos + len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }

    return ngx_http_output_filter(r, &out);
}


/* the header of that name after "after" (the first one if NULL) */

static ngx_table_elt_t *
ngx_http_loom_handshake_header(ngx_http_request_t *r, char *name, size_t len,
    ngx_table_elt_t *after)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (after) {
            if (&h[i] == after) {
                after = NULL;
            }

            continue;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}


/*
 * Some header of the name lists the token (case-insensitive); nginx 1.22
 * keeps no pointer to the Connection header, and either may come twice.
 */

static ngx_uint_t
ngx_http_loom_handshake_token(ngx_http_request_t *r, char *name, size_t nlen,
    char *token, size_t len)
{
    u_char           *p, *last, *start, *end;
    ngx_table_elt_t  *h;

    for (h = ngx_http_loom_handshake_header(r, name, nlen, NULL);
         h;
         h = ngx_http_loom_handshake_header(r, name, nlen, h))
    {
        p = h->value.data;
        last = p + h->value.len;

        while (p < last) {

            while (p < last && (*p == ' ' || *p == '\t' || *p == ',')) {
                p++;
            }

            start = p;

            while (p < last && *p != ',') {
                p++;
            }

            end = p;

            while (end > start && (end[-1] == ' ' || end[-1] == '\t')) {
                end--;
            }

            if ((size_t) (end - start) == len
                && ngx_strncasecmp(start, (u_char *) token, len) == 0)
            {
                return 1;
            }
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_loom_handshake_client_id(ngx_http_request_t *r,
    ngx_http_loom_session_t *s, char **text)
{
    u_char            *p;
    size_t             len;
    ngx_int_t          rc;
    ngx_uint_t         i;
    ngx_str_t          id, *value;
    ngx_table_elt_t   *h;
    ngx_connection_t  *c;

    c = r->connection;

    h = ngx_http_loom_handshake_header(r, "ClientId", 8, NULL);
    value = h ? &h->value : NULL;

    /* a token's subject is the ClientId */

    rc = ngx_http_loom_auth_client_id(s, &value, text);
    if (rc != NGX_OK) {
        return rc;
    }

    if (value == NULL || value->len == 0) {

        /* a client without an id gets one */

        id.data = ngx_pnalloc(c->pool, NGX_HTTP_LOOM_ID_LEN);
        if (id.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_loom_random_id(s->worker, id.data);
        id.len = NGX_HTTP_LOOM_ID_LEN;

    } else {

        if (value->len > NGX_HTTP_LOOM_MAX_CLIENT_ID) {
            *text = "\"ClientId\" is longer than 256 bytes\n";
            return NGX_HTTP_BAD_REQUEST;
        }

        for (i = 0; i < value->len; i++) {
            if (value->data[i] < 0x20 || value->data[i] == 0x7f) {
                *text = "\"ClientId\" has a control character\n";
                return NGX_HTTP_BAD_REQUEST;
            }
        }

        id.len = value->len;
        id.data = ngx_pnalloc(c->pool, id.len);
        if (id.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memcpy(id.data, value->data, id.len);

        rc = ngx_http_loom_shm_client_add(s->worker->shm, &id, c->log);

        if (rc == NGX_DECLINED) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "loom: ClientId \"%V\" is already connected", &id);
            *text = "client ID already exists\n";
            return NGX_HTTP_CONFLICT;
        }

        if (rc == NGX_ERROR) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "loom: zone is full, cannot record ClientId; "
                          "raise \"loom_zone_size\"");
            *text = "server is out of memory\n";
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        s->client_id_registered = 1;
    }

    s->client_id = id;

    len = ngx_http_loom_json_escape_len(id.data, id.len);

    p = ngx_pnalloc(c->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s->sender.data = p;
    s->sender.len = ngx_http_loom_json_escape(p, id.data, id.len) - p;

    /*
     * With loom_client_id_claim, an id the client chose is claimed for
     * every node that shares the Redis.  An assigned UUID is not: its 122
     * random bits do not meet another assigned one, and the zone does not
     * hold it either.
     */

    if (!s->client_id_registered || s->worker->claims == NULL) {
        return NGX_OK;
    }

    rc = ngx_http_loom_claim(s->worker->claims, &id, c, &s->claim);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s->claim->data = s;

    if (rc == NGX_DECLINED) {
        /* Redis is down: the node's own check stands until it is back */
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "loom: ClientId \"%V\" accepted without its claim, "
                      "claimed when redis is back", &id);
        return NGX_OK;
    }

    return NGX_AGAIN;
}


static ngx_int_t
ngx_http_loom_handshake_accept(ngx_http_request_t *r, ngx_str_t *key)
{
    u_char      digest[20], raw[32], *p;
    ngx_str_t   src, dst;
    ngx_sha1_t  sha1;

    /* the key is 16 random bytes in base64: 24 characters */

    if (key->len != 24) {
        return NGX_DECLINED;
    }

    dst.data = raw;

    if (ngx_decode_base64(&dst, key) != NGX_OK || dst.len != 16) {
        return NGX_DECLINED;
    }

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, key->data, key->len);
    ngx_sha1_update(&sha1, NGX_HTTP_LOOM_WS_GUID,
                    sizeof(NGX_HTTP_LOOM_WS_GUID) - 1);
    ngx_sha1_final(digest, &sha1);

    p = ngx_pnalloc(r->pool, ngx_base64_encoded_length(20));
    if (p == NULL) {
        return NGX_ERROR;
    }

    src.data = digest;
    src.len = 20;
    dst.data = p;

    ngx_encode_base64(&dst, &src);

    return ngx_http_loom_handshake_add_header(r, "Sec-WebSocket-Accept", 20,
                                              dst.data, dst.len);
}


static ngx_int_t
ngx_http_loom_handshake_add_header(ngx_http_request_t *r, char *name,
    size_t nlen, u_char *value, size_t vlen)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = nlen;
    h->value.data = value;
    h->value.len = vlen;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}
