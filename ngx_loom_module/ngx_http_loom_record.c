/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_module.h"
#include "ngx_http_loom_record.h"


/*
 * What outlives the HTTP request of a WebSocket: the request is freed
 * after the handshake, but the access log line is written when the
 * connection closes, and limit_conn counts the connection while it is
 * open.  Both live in the connection's pool.
 *
 * The log record keeps what the log phase reads: the request line, URI
 * and arguments, the request headers, times and sizes, the status, and
 * the variables cached during the handshake.  When the connection closes
 * a request is made up again from it and the log phase handlers run on
 * it, so every log_format works; what the record does not keep (response
 * headers but the status, upstream and cache state, other modules'
 * contexts) logs as empty ("-").
 */


typedef struct {
    void                      **main_conf;
    void                      **srv_conf;
    void                      **loc_conf;
    ngx_http_connection_t      *http_connection;
    ngx_http_log_handler_pt     log_handler;

    ngx_str_t                   request_line;
    ngx_str_t                   uri;
    ngx_str_t                   args;
    ngx_str_t                   exten;
    ngx_str_t                   unparsed_uri;
    ngx_str_t                   method_name;
    ngx_str_t                   http_protocol;
    ngx_str_t                   schema;
    ngx_str_t                   server;             /* headers_in.server */
    ngx_str_t                   status_line;

    ngx_table_elt_t            *headers;
    ngx_uint_t                  nheaders;

    ngx_http_variable_value_t  *variables;          /* NULL: none cached */

    time_t                      start_sec;
    ngx_msec_t                  start_msec;
    off_t                       request_length;
    size_t                      header_size;
    ngx_uint_t                  method;
    ngx_uint_t                  http_version;
    ngx_uint_t                  status;
    ngx_uint_t                  err_status;

    unsigned                    http_major:16;
    unsigned                    http_minor:16;
    unsigned                    limit_conn_status:2;
    unsigned                    limit_req_status:3;
    unsigned                    pipeline:1;
} ngx_http_loom_log_record_t;


/* what limit_conn hangs on the request pool (ngx_http_limit_conn_module.c) */

typedef struct {
    ngx_shm_zone_t             *shm_zone;
    ngx_rbtree_node_t          *node;
} ngx_http_loom_limit_conn_cleanup_t;


static u_char *ngx_http_loom_record_str(u_char *p, ngx_str_t *dst,
    ngx_str_t *src);


/* this worker's limit_conn module, once looked up */
static ngx_module_t  *ngx_http_loom_limit_conn_module;


/*
 * limit_conn frees its slot from a cleanup of the request pool: the
 * cleanup moves to the connection's pool, so that the slot is held while
 * the WebSocket is open.  Its cleanups are told from others by their zone.
 */

ngx_int_t
ngx_http_loom_record_keep_limit_conn(ngx_http_request_t *r)
{
    ngx_uint_t                           i;
    ngx_module_t                        *module;
    ngx_list_part_t                     *part;
    ngx_shm_zone_t                      *zone, *zones;
    ngx_pool_cleanup_t                  *cln, *ncln;
    ngx_http_loom_limit_conn_cleanup_t  *lc;

    module = ngx_http_loom_limit_conn_module;

    if (module == NULL) {
        for (i = 0; ngx_cycle->modules[i]; i++) {
            if (ngx_strcmp(ngx_cycle->modules[i]->name,
                           "ngx_http_limit_conn_module")
                == 0)
            {
                module = ngx_cycle->modules[i];
                break;
            }
        }

        if (module == NULL) {
            /* not built in: nothing to keep, and nothing to look for */
            module = &ngx_http_loom_module;
        }

        ngx_http_loom_limit_conn_module = module;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {

        if (cln->handler == NULL || cln->data == NULL) {
            continue;
        }

        lc = cln->data;
        zone = NULL;

        part = (ngx_list_part_t *) &ngx_cycle->shared_memory.part;

        while (part && zone == NULL) {
            zones = part->elts;

            for (i = 0; i < part->nelts; i++) {
                if (&zones[i] == lc->shm_zone && zones[i].tag == module) {
                    zone = &zones[i];
                    break;
                }
            }

            part = part->next;
        }

        if (zone == NULL
            || (u_char *) lc->node < zone->shm.addr
            || (u_char *) lc->node >= zone->shm.addr + zone->shm.size)
        {
            continue;
        }

        ncln = ngx_pool_cleanup_add(r->connection->pool,
                               sizeof(ngx_http_loom_limit_conn_cleanup_t));
        if (ncln == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(ncln->data, lc, sizeof(ngx_http_loom_limit_conn_cleanup_t));
        ncln->handler = cln->handler;

        cln->handler = NULL;
    }

    return NGX_OK;
}


static u_char *
ngx_http_loom_record_str(u_char *p, ngx_str_t *dst, ngx_str_t *src)
{
    dst->len = src->len;

    if (src->len == 0) {
        dst->data = NULL;
        return p;
    }

    dst->data = p;

    return ngx_cpymem(p, src->data, src->len);
}


/* what the log phase reads of the request, in one piece of c->pool */

void *
ngx_http_loom_record_create(ngx_http_request_t *r)
{
    u_char                      *p;
    size_t                       size;
    ngx_uint_t                   i, n, nvars, cached;
    ngx_list_part_t             *part;
    ngx_table_elt_t             *h, *dst;
    ngx_http_variable_value_t   *v, *vv;
    ngx_http_core_main_conf_t   *cmcf;
    ngx_http_loom_log_record_t  *lr;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_core_module);
    nvars = cmcf->variables.nelts;

    size = sizeof(ngx_http_loom_log_record_t)
           + r->request_line.len + r->uri.len + r->args.len + r->exten.len
           + r->unparsed_uri.len + r->method_name.len + r->http_protocol.len
           + r->schema.len + r->headers_in.server.len
           + r->headers_out.status_line.len;

    n = 0;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (h[i].hash == 0) {
                continue;
            }

            n++;
            size += sizeof(ngx_table_elt_t) + h[i].key.len
                    + h[i].value.len + h[i].key.len;
        }
    }

    cached = 0;
    v = r->variables;

    for (i = 0; i < nvars; i++) {
        if (v[i].valid && !v[i].no_cacheable && !v[i].not_found) {
            cached++;
            size += v[i].len;
        }
    }

    if (cached) {
        size += nvars * sizeof(ngx_http_variable_value_t);
    }

    lr = ngx_pcalloc(r->connection->pool, size + NGX_ALIGNMENT);
    if (lr == NULL) {
        return NULL;
    }

    p = (u_char *) lr + sizeof(ngx_http_loom_log_record_t);

    lr->main_conf = r->main_conf;
    lr->srv_conf = r->srv_conf;
    lr->loc_conf = r->loc_conf;
    lr->http_connection = r->http_connection;
    lr->log_handler = r->log_handler;

    lr->start_sec = r->start_sec;
    lr->start_msec = r->start_msec;
    lr->request_length = r->request_length;
    lr->header_size = r->header_size;
    lr->method = r->method;
    lr->http_version = r->http_version;
    lr->http_major = r->http_major;
    lr->http_minor = r->http_minor;
    lr->status = r->headers_out.status;
    lr->err_status = r->err_status;
    lr->limit_conn_status = r->main->limit_conn_status;
    lr->limit_req_status = r->main->limit_req_status;
    lr->pipeline = r->pipeline;

    /* the arrays first, aligned */

    p = ngx_align_ptr(p, NGX_ALIGNMENT);

    if (cached) {
        lr->variables = (ngx_http_variable_value_t *) p;
        p += nvars * sizeof(ngx_http_variable_value_t);
    }

    lr->headers = (ngx_table_elt_t *) p;
    p += n * sizeof(ngx_table_elt_t);

    if (cached) {
        for (i = 0; i < nvars; i++) {
            vv = &lr->variables[i];

            if (!v[i].valid || v[i].no_cacheable || v[i].not_found) {
                continue;
            }

            *vv = v[i];
            vv->data = p;

            if (v[i].len) {
                p = ngx_cpymem(p, v[i].data, v[i].len);
            }
        }
    }

    dst = lr->headers;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (h[i].hash == 0) {
                continue;
            }

            dst->hash = h[i].hash;
            p = ngx_http_loom_record_str(p, &dst->key, &h[i].key);
            p = ngx_http_loom_record_str(p, &dst->value, &h[i].value);
            dst->lowcase_key = p;
            p = ngx_cpymem(p, h[i].lowcase_key, h[i].key.len);
            dst++;
        }
    }

    lr->nheaders = n;

    p = ngx_http_loom_record_str(p, &lr->request_line, &r->request_line);
    p = ngx_http_loom_record_str(p, &lr->uri, &r->uri);
    p = ngx_http_loom_record_str(p, &lr->args, &r->args);
    p = ngx_http_loom_record_str(p, &lr->exten, &r->exten);
    p = ngx_http_loom_record_str(p, &lr->unparsed_uri, &r->unparsed_uri);
    p = ngx_http_loom_record_str(p, &lr->method_name, &r->method_name);
    p = ngx_http_loom_record_str(p, &lr->http_protocol, &r->http_protocol);
    p = ngx_http_loom_record_str(p, &lr->schema, &r->schema);
    p = ngx_http_loom_record_str(p, &lr->server, &r->headers_in.server);
    p = ngx_http_loom_record_str(p, &lr->status_line,
                             &r->headers_out.status_line);

    return lr;
}


/*
 * Logs the request from its record: a request is made up again in the
 * connection's pool, with the request headers back in their places, and
 * the log phase handlers run on it as ngx_http_free_request() runs them.
 */

void
ngx_http_loom_record_log(ngx_connection_t *c, void *record)
{
    ngx_uint_t                   i, n, key;
    ngx_array_t                 *a;
    ngx_table_elt_t             *h, **ph;
    ngx_http_header_t           *hh, *multi;
    ngx_http_request_t          *r;
    ngx_http_handler_pt         *log_handler;
    ngx_http_core_main_conf_t   *cmcf;
    ngx_http_loom_log_record_t  *lr;

    lr = record;

    r = ngx_pcalloc(c->pool, sizeof(ngx_http_request_t));
    if (r == NULL) {
        return;
    }

    r->signature = NGX_HTTP_MODULE;
    r->connection = c;
    r->pool = c->pool;
    r->main = r;
    r->count = 1;
    r->main_conf = lr->main_conf;
    r->srv_conf = lr->srv_conf;
    r->loc_conf = lr->loc_conf;
    r->http_connection = lr->http_connection;
    r->log_handler = lr->log_handler;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_core_module);

    r->ctx = ngx_pcalloc(c->pool, sizeof(void *) * ngx_http_max_module);
    r->variables = ngx_pcalloc(c->pool, cmcf->variables.nelts
                                        * sizeof(ngx_http_variable_value_t));

    if (r->ctx == NULL || r->variables == NULL
        || ngx_list_init(&r->headers_in.headers, c->pool,
                         ngx_max(lr->nheaders, 1), sizeof(ngx_table_elt_t))
           != NGX_OK
        || ngx_list_init(&r->headers_out.headers, c->pool, 1,
                         sizeof(ngx_table_elt_t))
           != NGX_OK
        || ngx_list_init(&r->headers_out.trailers, c->pool, 1,
                         sizeof(ngx_table_elt_t))
           != NGX_OK)
    {
        return;
    }

    if (lr->variables) {
        ngx_memcpy(r->variables, lr->variables,
                   cmcf->variables.nelts * sizeof(ngx_http_variable_value_t));
    }

    /*
     * the headers nginx keeps pointers to, set as the header handlers set
     * them; "Cookie" tells which handler collects several lines
     */

    key = ngx_hash_key((u_char *) "cookie", 6);
    multi = ngx_hash_find(&cmcf->headers_in_hash, key, (u_char *) "cookie", 6);

    for (n = 0; n < lr->nheaders; n++) {
        h = ngx_list_push(&r->headers_in.headers);
        if (h == NULL) {
            return;
        }

        *h = lr->headers[n];

        hh = ngx_hash_find(&cmcf->headers_in_hash, h->hash, h->lowcase_key,
                           h->key.len);

        if (hh == NULL || hh->offset == 0) {
            continue;
        }

        if (multi && hh->handler == multi->handler) {
            a = (ngx_array_t *) ((char *) &r->headers_in + hh->offset);

            if (a->elts == NULL
                && ngx_array_init(a, c->pool, 1, sizeof(ngx_table_elt_t *))
                   != NGX_OK)
            {
                return;
            }

            ph = ngx_array_push(a);
            if (ph == NULL) {
                return;
            }

            *ph = h;
            continue;
        }

        ph = (ngx_table_elt_t **) ((char *) &r->headers_in + hh->offset);

        if (*ph == NULL) {
            *ph = h;
        }
    }

    r->headers_in.server = lr->server;
    r->headers_in.content_length_n = -1;
    r->headers_in.keep_alive_n = -1;

    r->request_line = lr->request_line;
    r->uri = lr->uri;
    r->args = lr->args;
    r->exten = lr->exten;
    r->unparsed_uri = lr->unparsed_uri;
    r->method_name = lr->method_name;
    r->http_protocol = lr->http_protocol;
    r->schema = lr->schema;

    r->start_sec = lr->start_sec;
    r->start_msec = lr->start_msec;
    r->request_length = lr->request_length;
    r->header_size = lr->header_size;
    r->method = lr->method;
    r->http_version = lr->http_version;
    r->http_major = lr->http_major;
    r->http_minor = lr->http_minor;
    r->err_status = lr->err_status;
    r->limit_conn_status = lr->limit_conn_status;
    r->limit_req_status = lr->limit_req_status;
    r->pipeline = lr->pipeline;
    r->valid_location = 1;

    r->headers_out.status = lr->status;
    r->headers_out.status_line = lr->status_line;
    r->headers_out.content_length_n = -1;
    r->headers_out.last_modified_time = -1;

    c->log->action = "logging request";

    log_handler = cmcf->phases[NGX_HTTP_LOG_PHASE].handlers.elts;
    n = cmcf->phases[NGX_HTTP_LOG_PHASE].handlers.nelts;

    for (i = 0; i < n; i++) {
        log_handler[i](r);
    }

    r->logged = 1;

    c->log->action = "closing request";
}
