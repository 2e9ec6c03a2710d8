/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>
#include "ngx_http_loom_http.h"
#include "ngx_http_loom_sse.h"
#include "ngx_http_loom_rev.h"
#include "ngx_http_loom_gap.h"
#include "ngx_http_loom_shm.h"


/*
 * GET .../topics/NAME/events (docs/http.md, "Event streams"): a subscribe
 * with a snapshot, or with "since" from Last-Event-ID (or the lastEventId
 * argument), on the request's session.  Nothing is sent before its
 * answer: an error is an error response; a 200 starts the stream with the
 * snapshot (event "snapshot"), nothing (a resume that recovered: the
 * replay follows), or event "resync" (a resume that did not).  The
 * subscriber's frames are events (NGX_HTTP_LOOM_FRAME_SSE) that the
 * topic layer builds once per delivery for every stream of the worker;
 * they wait in the stream's ring, which has loom_max_send_queue as its
 * limit, until nginx's output filters have written them.
 */


static ngx_int_t ngx_http_loom_sse_last_event_id(ngx_http_loom_http_t *h,
    ngx_str_t *id);
static void ngx_http_loom_sse_answer(ngx_http_loom_http_t *h,
    ngx_str_t *answer);
static ngx_int_t ngx_http_loom_sse_start(ngx_http_loom_http_t *h,
    ngx_http_loom_http_answer_t *a);
static ngx_int_t ngx_http_loom_sse_first(ngx_http_loom_http_t *h,
    ngx_http_loom_http_answer_t *a, ngx_str_t *event);
static ngx_int_t ngx_http_loom_sse_header(ngx_http_request_t *r, char *key,
    char *value);
static void ngx_http_loom_sse_write(ngx_http_request_t *r);
static ngx_int_t ngx_http_loom_sse_flush(ngx_http_loom_http_t *h,
    ngx_chain_t *first);
static void ngx_http_loom_sse_overflow(ngx_http_loom_out_t *o);
static void ngx_http_loom_sse_heartbeat(ngx_event_t *ev);
static void ngx_http_loom_sse_close(ngx_event_t *ev);
static void ngx_http_loom_sse_end(ngx_http_loom_http_t *h, char *why);


ngx_int_t
ngx_http_loom_http_events(ngx_http_loom_http_t *h)
{
    u_char              *m, *p;
    size_t               len;
    ngx_int_t            rc;
    ngx_str_t            id, topic, epoch;
    ngx_http_request_t  *r;

    r = h->request;

    if (r != r->main) {
        return ngx_http_loom_http_error(r, NGX_HTTP_BAD_REQUEST,
                                        "an event stream cannot be a "
                                        "subrequest");
    }

    rc = ngx_http_loom_sse_last_event_id(h, &id);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_OK) {
        rc = ngx_http_loom_sse_last_id(&id, &h->since, &h->epoch);

        if (rc == NGX_ERROR) {
            return ngx_http_loom_http_error(r, NGX_HTTP_BAD_REQUEST,
                                  "Last-Event-ID must be \"<rev>:<epoch>\"");
        }

        h->resume = (rc == NGX_OK);
    }

    if (ngx_http_loom_http_quote(r, &h->name, &topic) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* an id without an epoch is of an epoch that is nobody's */

    if (h->resume && h->epoch.len == 0) {
        ngx_str_set(&h->epoch, "-");
    }

    epoch.len = 0;

    if (h->resume && ngx_http_loom_http_quote(r, &h->epoch, &epoch) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = sizeof("{\"action\":\"subscribe\",\"requireAck\":true,"
                 "\"snapshot\":true,\"topic\":,"
                 "\"since\":{\"epoch\":,\"rev\":}}") - 1
          + topic.len + epoch.len + NGX_INT64_LEN;

    m = ngx_pnalloc(r->pool, len);
    if (m == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_http_loom_cpylit(m, "{\"action\":\"subscribe\","
                                "\"requireAck\":true,\"snapshot\":true,"
                                "\"topic\":");
    p = ngx_cpymem(p, topic.data, topic.len);

    if (h->resume) {
        p = ngx_http_loom_cpylit(p, ",\"since\":{\"epoch\":");
        p = ngx_cpymem(p, epoch.data, epoch.len);
        p = ngx_http_loom_cpylit(p, ",\"rev\":");
        p = ngx_http_loom_rev_decimal(p, h->since);
        *p++ = '}';
    }

    *p++ = '}';

    /* the stream's ring: the subscriber's frames wait there */

    h->out.connection = r->connection;
    h->out.limit = h->session.conf->max_send_queue;
    h->out.overflow = ngx_http_loom_sse_overflow;
    h->out.data = h;

    h->session.subscriber.out = &h->out;
    h->session.subscriber.sse = 1;

    h->last_busy = &h->busy;

    h->heartbeat.handler = ngx_http_loom_sse_heartbeat;
    h->heartbeat.data = h;
    h->heartbeat.log = r->connection->log;

    h->close.handler = ngx_http_loom_sse_close;
    h->close.data = h;
    h->close.log = r->connection->log;

    h->answer = ngx_http_loom_sse_answer;

    r->write_event_handler = ngx_http_loom_sse_write;
    r->main->count++;

    (void) ngx_http_loom_http_run(h, m, p - m);

    return NGX_DONE;
}


/* NGX_OK with id; NGX_DECLINED: none given; NGX_ERROR */

static ngx_int_t
ngx_http_loom_sse_last_event_id(ngx_http_loom_http_t *h, ngx_str_t *id)
{
    ngx_uint_t           i;
    ngx_list_part_t     *part;
    ngx_table_elt_t     *e;
    ngx_http_request_t  *r;

    r = h->request;
    part = &r->headers_in.headers.part;
    e = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            e = part->elts;
            i = 0;
        }

        if (e[i].key.len == 13
            && ngx_strncasecmp(e[i].key.data, (u_char *) "Last-Event-ID", 13)
               == 0)
        {
            *id = e[i].value;
            return NGX_OK;
        }
    }

    /* the argument, for clients and proxies that cannot send the header */

    return ngx_http_loom_http_arg(r, "lastEventId", id);
}


static void
ngx_http_loom_sse_answer(ngx_http_loom_http_t *h, ngx_str_t *answer)
{
    ngx_int_t                    rc;
    ngx_http_request_t          *r;
    ngx_http_loom_http_answer_t  a;

    r = h->request;

    if (ngx_http_loom_http_parse(r, answer, &a) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    if (a.code != NGX_HTTP_OK) {
        rc = ngx_http_loom_http_error_answer(r, &a);

    } else {
        rc = ngx_http_loom_sse_start(h, &a);
    }

    json_decref(a.json);

    if (a.code != NGX_HTTP_OK || rc == NGX_ERROR) {
        ngx_http_finalize_request(r, rc);
    }
}


static ngx_int_t
ngx_http_loom_sse_start(ngx_http_loom_http_t *h,
    ngx_http_loom_http_answer_t *a)
{
    ngx_int_t                  rc;
    ngx_str_t                  event;
    ngx_buf_t                 *b;
    ngx_chain_t               *cl;
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_loom_loc_conf_t  *llcf;

    r = h->request;
    c = r->connection;
    llcf = h->session.conf;

    ngx_str_null(&event);

    if (ngx_http_loom_sse_first(h, a, &event) != NGX_OK) {
        return NGX_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = -1;
    ngx_str_set(&r->headers_out.content_type, "text/event-stream");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (ngx_http_loom_sse_header(r, "Cache-Control", "no-cache") != NGX_OK
        || ngx_http_loom_sse_header(r, "X-Accel-Buffering", "no") != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return NGX_ERROR;
    }

    h->streaming = 1;

    /* a graceful shutdown closes the stream, as an idle connection */

    if (c->fd != (ngx_socket_t) -1) {
        c->idle = 1;
    }

    ngx_add_timer(&h->heartbeat, llcf->http_heartbeat);

    /* the first event goes before anything in the ring */

    cl = NULL;

    if (event.len) {
        cl = ngx_alloc_chain_link(r->pool);
        b = ngx_calloc_buf(r->pool);

        if (cl == NULL || b == NULL) {
            return NGX_ERROR;
        }

        b->memory = 1;
        b->pos = event.data;
        b->last = event.data + event.len;
        b->flush = 1;

        cl->buf = b;
        cl->next = NULL;
    }

    rc = ngx_http_loom_sse_flush(h, cl);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    /*
     * the worker began to shut down while the first answer was awaited:
     * the idle connections were closed before this one was; it ends
     * behind its first event, and the client comes back to a new worker
     */

    if (ngx_exiting && !h->closing) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "loom http: event stream closed: "
                      "server shutting down");

        h->closing = 1;
        ngx_post_event(&h->close, &ngx_posted_events);
    }

    return NGX_OK;
}


/*
 * The event that starts the stream: "snapshot" with the answer's data
 * and position, or "resync" as the topic layer sends it when a resume
 * did not recover; none when it did
 */

static ngx_int_t
ngx_http_loom_sse_first(ngx_http_loom_http_t *h,
    ngx_http_loom_http_answer_t *a, ngx_str_t *event)
{
    u_char                     *p;
    json_t                     *rev, *ts;
    ngx_str_t                  *data, topic, reason, value, body;
    const char                 *epoch;
    ngx_http_request_t         *r;
    ngx_http_loom_sse_event_t   ev;

    r = h->request;

    rev = json_object_get(a->json, "rev");
    ts = json_object_get(a->json, "ts");
    epoch = json_string_value(json_object_get(a->json, "epoch"));

    if (!json_is_integer(rev) || epoch == NULL) {
        return NGX_ERROR;
    }

    if (json_is_true(json_object_get(a->json, "recovered"))) {
        return NGX_OK;
    }

    ngx_memzero(&ev, sizeof(ngx_http_loom_sse_event_t));

    ev.rev = (uint64_t) json_integer_value(rev);
    ev.epoch.data = (u_char *) epoch;
    ev.epoch.len = ngx_strlen(epoch);

    data = &a->data;

    if (data->data == NULL) {
        ngx_str_set(&value, "null");
        data = &value;
    }

    if (!h->resume) {
        ngx_str_set(&ev.name, "snapshot");

        if (ngx_http_loom_http_members(r, a->json, 0, data,
                                       &ev.data) != NGX_OK) {
            return NGX_ERROR;
        }

    } else {
        ngx_str_set(&ev.name, "resync");

        if (h->epoch.len == ev.epoch.len
            && ngx_strncmp(h->epoch.data, ev.epoch.data, ev.epoch.len) == 0)
        {
            ngx_str_set(&reason, "gap");

        } else {
            ngx_str_set(&reason, "epoch");
        }

        if (ngx_http_loom_http_quote(r, &h->name, &topic) != NGX_OK) {
            return NGX_ERROR;
        }

        body.len = ngx_http_loom_rev_resync_len(&topic, &reason, data,
                                                ev.rev, &ev.epoch,
                                                json_integer_value(ts));
        body.data = ngx_pnalloc(r->pool, body.len);

        if (body.data == NULL) {
            return NGX_ERROR;
        }

        (void) ngx_http_loom_rev_resync(body.data, &topic, &reason, data,
                                        ev.rev, &ev.epoch,
                                        json_integer_value(ts));
        ev.data = body;
    }

    event->len = ngx_http_loom_sse_event_len(&ev);
    event->data = ngx_pnalloc(r->pool, event->len);

    if (event->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_http_loom_sse_event(event->data, &ev);
    event->len = p - event->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_sse_header(ngx_http_request_t *r, char *key, char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value.data = (u_char *) value;
    h->value.len = ngx_strlen(value);

    return NGX_OK;
}


static void
ngx_http_loom_sse_write(ngx_http_request_t *r)
{
    ngx_connection_t      *c;
    ngx_http_loom_http_t  *h;

    c = r->connection;
    h = ngx_http_get_module_ctx(r, ngx_http_loom_module);

    if (c->write->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "client timed out");
        c->timedout = 1;
        ngx_http_finalize_request(r, NGX_HTTP_REQUEST_TIME_OUT);
        return;
    }

    if (!h->streaming || h->closing) {
        return;
    }

    if (ngx_http_loom_sse_flush(h, NULL) == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_ERROR);
    }
}


/*
 * The frames of the ring not handed on yet go to the output filters, each
 * in a buffer of its own (after first, if given); those the filters have
 * written leave the ring, in order
 */

static ngx_int_t
ngx_http_loom_sse_flush(ngx_http_loom_http_t *h, ngx_chain_t *first)
{
    ngx_int_t                  rc;
    ngx_buf_t                 *b;
    ngx_uint_t                 i, mask;
    ngx_chain_t               *in, *cl, **ll;
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_loom_out_t       *o;
    ngx_http_loom_frame_t     *f;
    ngx_http_core_loc_conf_t  *clcf;

    r = h->request;
    c = r->connection;
    o = &h->out;

    in = NULL;
    ll = &in;
    mask = o->size - 1;

    for (i = h->pushed; i < o->count; i++) {
        f = o->ring[(o->head + i) & mask];

        cl = h->free;

        if (cl) {
            h->free = cl->next;

        } else {
            cl = ngx_alloc_chain_link(r->pool);
            if (cl == NULL) {
                return NGX_ERROR;
            }

            cl->buf = ngx_calloc_buf(r->pool);
            if (cl->buf == NULL) {
                return NGX_ERROR;
            }
        }

        b = cl->buf;
        ngx_memzero(b, sizeof(ngx_buf_t));

        b->memory = 1;
        b->start = f->data;
        b->pos = f->data;
        b->last = f->data + f->len;
        b->end = b->last;
        b->flush = (i + 1 == o->count);

        cl->next = NULL;
        *ll = cl;
        ll = &cl->next;
    }

    h->pushed = o->count;

    if (first) {
        first->next = in;
        rc = ngx_http_output_filter(r, first);

    } else {
        rc = ngx_http_output_filter(r, in);
    }

    /* the filters keep the buffers, not the links */

    if (in) {
        *h->last_busy = in;
        h->last_busy = ll;
    }

    while (h->busy && h->busy->buf->pos == h->busy->buf->last) {
        cl = h->busy;
        h->busy = cl->next;
        cl->next = h->free;
        h->free = cl;

        ngx_http_loom_out_shift(o);
        h->pushed--;
    }

    if (h->busy == NULL) {
        h->last_busy = &h->busy;
    }

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (r->out || (c->buffered & NGX_HTTP_LOWLEVEL_BUFFERED) || h->busy) {

        /* what the client does not read in send_timeout ends the stream */

        if (!c->write->timer_set) {
            ngx_add_timer(c->write, clcf->send_timeout);
        }

        if (ngx_handle_write_event(c->write, clcf->send_lowat) != NGX_OK) {
            return NGX_ERROR;
        }

        return NGX_AGAIN;
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    return NGX_OK;
}


/* past loom_max_send_queue: called by the topic layer, closed later */

static void
ngx_http_loom_sse_overflow(ngx_http_loom_out_t *o)
{
    ngx_http_loom_http_t  *h;

    h = o->data;

    o->closed = 1;

    if (!h->closing) {
        h->closing = 1;

        if (h->session.worker->stats) {
            h->session.worker->stats->slow_consumers++;
        }

        ngx_log_error(NGX_LOG_INFO, h->request->connection->log, 0,
                      "loom http: event stream closed: the client reads "
                      "too slowly");

        ngx_post_event(&h->close, &ngx_posted_events);
    }
}


static void
ngx_http_loom_sse_heartbeat(ngx_event_t *ev)
{
    u_char                  *p;
    ngx_http_loom_http_t    *h;
    ngx_http_loom_frame_t   *f;
    ngx_http_loom_access_t  *a;

    h = ev->data;
    a = h->session.access;

    if (ngx_exiting || ngx_terminate) {
        ngx_http_loom_sse_end(h, "server shutting down");
        return;
    }

    if (a && a->expires && ngx_time() >= a->expires) {
        ngx_http_loom_sse_end(h, "the token expired");
        return;
    }

    if (h->session.subscriber.nsubscriptions == 0) {
        ngx_http_loom_sse_end(h, "the topic was unregistered");
        return;
    }

    f = ngx_http_loom_frame_bytes(sizeof(NGX_HTTP_LOOM_SSE_HEARTBEAT) - 1,
                                  &p);
    if (f) {
        ngx_memcpy(p, NGX_HTTP_LOOM_SSE_HEARTBEAT,
                   sizeof(NGX_HTTP_LOOM_SSE_HEARTBEAT) - 1);
        (void) ngx_http_loom_out_send(&h->out, f);
        ngx_http_loom_frame_release(f);
    }

    if (!h->closing) {
        ngx_add_timer(&h->heartbeat, h->session.conf->http_heartbeat);
    }
}


static void
ngx_http_loom_sse_close(ngx_event_t *ev)
{
    ngx_http_loom_sse_end(ev->data, NULL);
}


/* the stream ends: the connection is closed, the client may reconnect */

static void
ngx_http_loom_sse_end(ngx_http_loom_http_t *h, char *why)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = h->request;
    c = r->connection;

    if (why) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "loom http: event stream closed: %s", why);
    }

    h->closing = 1;

    ngx_http_set_log_request(c->log, r);
    ngx_http_finalize_request(r, NGX_ERROR);
    ngx_http_run_posted_requests(c);
}
