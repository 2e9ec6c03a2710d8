/* SOURCES: ngx_http_loom_topic.c ngx_http_loom_channel.c */
/* SOURCES: ngx_http_loom_gap.c ngx_http_loom_history_entry.c */
/* SOURCES: ngx_http_loom_fanout.c */
/* SOURCES: ngx_http_loom_snapshot.c */
/* SOURCES: ngx_http_loom_rev.c ngx_http_loom_json.c ngx_http_loom_utf8.c */
/* SOURCES: ngx_http_loom_json_text.c ngx_http_loom_schema.c */
/* SOURCES: ngx_http_loom_sse.c */

/*
 * A worker's topics on their own: the schema cache (least recently used
 * topics with a cached schema, evicted past loom_topic_cache), the walk of
 * the topic tree when the subscriber link goes down, registrations and
 * delivery numbers, acks held behind their delivery.  The store, the shared
 * zone and the outs are fakes; the tree is a plain binary search tree with
 * nginx's rbtree interface (balance is not what is tested here).  Freed
 * memory is filled with a pattern, so that a walk through a freed node
 * fails at once.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <cmocka.h>

#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_topic.h"
#include "ngx_http_loom_store.h"
#include "ngx_http_loom_shm.h"


/* what topic.c links against, here without nginx */

static ngx_log_t  test_log;
uint32_t          ngx_crc32_table256[256];    /* every hash is 0 */


void *
ngx_alloc(size_t size, ngx_log_t *log)
{
    return malloc(size);
}


/* the cache of key-set schemas is tested here, not JSON Schemas */

ngx_int_t
ngx_http_loom_jschema_validate(const ngx_http_loom_jschema_t *s,
    json_t *instance, ngx_http_loom_jschema_errors_t *errors)
{
    fail();
    return NGX_ERROR;
}


void
ngx_http_loom_jschema_free(ngx_http_loom_jschema_t *s)
{
    fail();
}


void
ngx_log_error_core(ngx_uint_t level, ngx_log_t *log, ngx_err_t err,
    const char *fmt, ...)
{
}


static int
test_strcmp(ngx_str_t *a, ngx_str_t *b)
{
    size_t  n;
    int     rc;

    n = a->len < b->len ? a->len : b->len;
    rc = memcmp(a->data, b->data, n);

    if (rc == 0) {
        rc = (a->len > b->len) - (a->len < b->len);
    }

    return rc;
}


void
ngx_str_rbtree_insert_value(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t  **p;

    for ( ;; ) {
        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            p = (test_strcmp(&((ngx_str_node_t *) node)->str,
                             &((ngx_str_node_t *) temp)->str) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
}


ngx_str_node_t *
ngx_str_rbtree_lookup(ngx_rbtree_t *rbtree, ngx_str_t *val, uint32_t hash)
{
    int                 rc;
    ngx_rbtree_node_t  *node, *sentinel;

    node = rbtree->root;
    sentinel = rbtree->sentinel;

    while (node != sentinel) {
        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        rc = test_strcmp(val, &((ngx_str_node_t *) node)->str);

        if (rc == 0) {
            return (ngx_str_node_t *) node;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


void
ngx_rbtree_insert(ngx_rbtree_t *tree, ngx_rbtree_node_t *node)
{
    if (tree->root == tree->sentinel) {
        node->parent = NULL;
        node->left = tree->sentinel;
        node->right = tree->sentinel;
        tree->root = node;
        return;
    }

    tree->insert(tree->root, node, tree->sentinel);
}


static void
test_replace(ngx_rbtree_t *tree, ngx_rbtree_node_t *old,
    ngx_rbtree_node_t *new)
{
    ngx_rbtree_node_t  *parent;

    parent = old->parent;

    if (old == tree->root) {
        tree->root = new;

    } else if (parent->left == old) {
        parent->left = new;

    } else {
        parent->right = new;
    }

    if (new != tree->sentinel) {
        new->parent = parent;
    }
}


void
ngx_rbtree_delete(ngx_rbtree_t *tree, ngx_rbtree_node_t *node)
{
    ngx_rbtree_node_t  *s, *succ;

    s = tree->sentinel;

    if (node->left == s || node->right == s) {
        test_replace(tree, node, node->left != s ? node->left : node->right);
        return;
    }

    succ = ngx_rbtree_min(node->right, s);
    test_replace(tree, succ, succ->right);

    succ->left = node->left;
    succ->right = node->right;

    if (succ->left != s) {
        succ->left->parent = succ;
    }

    if (succ->right != s) {
        succ->right->parent = succ;
    }

    test_replace(tree, node, succ);
}


ngx_rbtree_node_t *
ngx_rbtree_next(ngx_rbtree_t *tree, ngx_rbtree_node_t *node)
{
    ngx_rbtree_node_t  *parent;

    if (node->right != tree->sentinel) {
        return ngx_rbtree_min(node->right, tree->sentinel);
    }

    for ( ;; ) {
        if (node == tree->root) {
            return NULL;
        }

        parent = node->parent;

        if (node == parent->left) {
            return parent;
        }

        node = parent;
    }
}


/* the store: subscriptions are recorded, commands kept for a reply */

static ngx_str_t                    test_prefix = ngx_string("loom:");
static ngx_uint_t                   subscribes, unsubscribes, link_up;
static ngx_http_loom_store_call_t  *calls[8];
static ngx_uint_t                   ncalls, commands_fail, commands_refused;


ngx_str_t *
ngx_http_loom_store_prefix(ngx_http_loom_store_t *st)
{
    return &test_prefix;
}


ngx_uint_t
ngx_http_loom_store_clustered(ngx_http_loom_store_t *st)
{
    return 0;
}


ngx_int_t
ngx_http_loom_store_subscribe(ngx_http_loom_store_t *st, ngx_str_t *channel)
{
    if (!link_up) {
        return NGX_DECLINED;
    }

    subscribes++;
    return NGX_OK;
}


void
ngx_http_loom_store_unsubscribe(ngx_http_loom_store_t *st,
    ngx_str_t *channel)
{
    unsubscribes++;
}


ngx_int_t
ngx_http_loom_store_command(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, int argc, const char **argv,
    const size_t *argvlen, const char **reason)
{
    if (commands_fail) {
        commands_refused++;
        *reason = "not connected to redis";
        return NGX_DECLINED;
    }

    assert_true(ncalls < 8);
    calls[ncalls++] = call;
    return NGX_OK;
}


/* the gap repair reads no history in these tests: every message is rev 0 */

ngx_int_t
ngx_http_loom_store_script(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, ngx_uint_t script, int nkeys,
    int argc, const char **argv, const size_t *argvlen, const char **reason)
{
    fail();
    return NGX_ERROR;
}


/* the timers the gap repair would set on a failed read */
ngx_rbtree_t              ngx_event_timer_rbtree;
static ngx_rbtree_node_t  timer_sentinel;


/* the timers in a plain binary tree, as the topics above */

static void
test_timer_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t  **p;

    for ( ;; ) {
        p = (node->key < temp->key) ? &temp->left : &temp->right;

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
}
volatile ngx_msec_t       ngx_current_msec;


void
ngx_http_loom_shm_subscribers(ngx_http_loom_shm_t *shm, ngx_str_t *name,
    ngx_int_t n, ngx_log_t *log)
{
}


/* the workers here have no stats slot: nothing is observed */

void
ngx_http_loom_shm_observe(ngx_http_loom_hist_t *h, ngx_msec_int_t usec)
{
    fail();
}


/* frames and outs: an out counts what it is sent */

typedef struct {
    ngx_http_loom_out_t     out;
    ngx_uint_t              frames;
    char                    last[64];
    ngx_http_loom_frame_t  *frame;              /* the last, not held */
} test_out_t;


ngx_http_loom_frame_t *
ngx_http_loom_frame_alloc(ngx_uint_t opcode, size_t len, u_char **payload)
{
    ngx_http_loom_frame_t  *f;

    f = malloc(sizeof(ngx_http_loom_frame_t) + len);
    assert_non_null(f);
    f->refs = 1;
    f->len = len;
    f->data[len] = '\0';
    *payload = f->data;

    return f;
}


ngx_http_loom_frame_t *
ngx_http_loom_frame_bytes(size_t len, u_char **data)
{
    return ngx_http_loom_frame_alloc(0, len, data);
}


void
ngx_http_loom_frame_release(ngx_http_loom_frame_t *f)
{
    if (--f->refs == 0) {
        free(f);
    }
}


ngx_int_t
ngx_http_loom_out_send(ngx_http_loom_out_t *o, ngx_http_loom_frame_t *f)
{
    test_out_t  *t;

    t = (test_out_t *) o;
    t->frames++;
    t->frame = f;
    snprintf(t->last, sizeof(t->last), "%.*s", (int) f->len,
             (char *) f->data);

    return NGX_OK;
}


/* the worker */

static ngx_http_loom_main_conf_t  conf;
static ngx_http_loom_worker_t     w;


static int
setup(void **state)
{
    memset(&w, 0, sizeof(w));
    memset(&conf, 0, sizeof(conf));

    ngx_rbtree_init(&ngx_event_timer_rbtree, &timer_sentinel,
                    test_timer_insert);

    w.conf = &conf;
    w.log = &test_log;
    w.store = (ngx_http_loom_store_t *) &conf;   /* opaque, never read */
    conf.topic_cache = 2;

    ngx_http_loom_topic_init(&w);

    subscribes = 0;
    unsubscribes = 0;
    link_up = 1;
    ncalls = 0;

    return 0;
}


static int
teardown(void **state)
{
    ngx_http_loom_topic_exit(&w);
    return 0;
}


static ngx_str_t
name(const char *s)
{
    ngx_str_t  n;

    n.data = (u_char *) s;
    n.len = strlen(s);

    return n;
}


static ngx_http_loom_topic_t *
lookup(const char *s)
{
    ngx_str_t  n;

    n = name(s);
    return ngx_http_loom_topic_lookup(&w, &n);
}


/* a topic with a cached schema, used just now */

static ngx_http_loom_topic_t *
cached(const char *s)
{
    ngx_str_t               n, tag;
    json_t                 *schema;
    ngx_http_loom_topic_t  *t;

    n = name(s);
    tag = name("reg:0");

    t = ngx_http_loom_topic_get(&w, &n);
    assert_non_null(t);

    schema = json_object();
    assert_int_equal(ngx_http_loom_topic_set_schema(t, &tag, schema, NULL),
                     NGX_OK);
    json_decref(schema);

    return t;
}


static void
test_cache_evicts_least_recently_used(void **state)
{
    ngx_http_loom_topic_check(cached("a"));
    ngx_http_loom_topic_check(cached("b"));
    assert_int_equal(w.nidle, 2);

    /* a used again: b is the oldest now */
    ngx_http_loom_topic_check(lookup("a"));
    ngx_http_loom_topic_check(cached("c"));

    assert_int_equal(w.nidle, 2);
    assert_non_null(lookup("a"));
    assert_null(lookup("b"));
    assert_non_null(lookup("c"));
}


static void
test_topic_without_schema_goes(void **state)
{
    ngx_str_t               n;
    ngx_http_loom_topic_t  *t;

    n = name("plain");
    t = ngx_http_loom_topic_get(&w, &n);
    assert_non_null(t);

    ngx_http_loom_topic_check(t);
    assert_null(lookup("plain"));
    assert_int_equal(w.nidle, 0);
}


static void
test_zero_cache_keeps_nothing(void **state)
{
    conf.topic_cache = 0;

    ngx_http_loom_topic_check(cached("a"));
    assert_null(lookup("a"));
    assert_int_equal(w.nidle, 0);
}


static void
test_subscribed_topic_leaves_the_cache(void **state)
{
    ngx_str_t                    reg;
    test_out_t                   out;
    ngx_http_loom_waiter_t       wt;
    ngx_http_loom_subscriber_t   sr;

    memset(&out, 0, sizeof(out));
    memset(&wt, 0, sizeof(wt));
    ngx_http_loom_subscriber_init(&sr, &out.out, &test_log);
    reg = name("reg");

    ngx_http_loom_topic_check(cached("a"));
    assert_int_equal(w.nidle, 1);

    assert_int_equal(ngx_http_loom_topic_subscribe(lookup("a"), &sr, &wt,
                                                   &reg),
                     NGX_AGAIN);
    assert_int_equal(w.nidle, 0);
    assert_int_equal(subscribes, 1);

    ngx_http_loom_topic_unsubscribe_all(&sr);
    ngx_http_loom_topic_cancel(&wt);

    /* the channel is still waiting for its confirmation */
    assert_non_null(lookup("a"));
}


/*
 * The subscriber link goes down while c waits for the confirmation of a
 * channel nobody needs any more, with a full cache whose oldest entry is
 * d, c's successor in the tree.  Putting c into the cache evicts d: the
 * walk must not step on d afterwards.
 */

static void
test_subscriber_lost_walk_survives_eviction(void **state)
{
    ngx_http_loom_topic_t  *c;

    conf.topic_cache = 1;

    ngx_http_loom_topic_check(cached("d"));
    assert_int_equal(w.nidle, 1);

    c = cached("c");
    c->channel_state = NGX_HTTP_LOOM_CHANNEL_PENDING;
    ngx_http_loom_topic_check(c);
    assert_int_equal(w.nidle, 1);

    ngx_http_loom_topic_subscriber_lost(&w);

    /* one of them stays, as the cache's size says */
    assert_int_equal(w.nidle, 1);
    assert_true((lookup("c") == NULL) != (lookup("d") == NULL));
}


static void
test_subscriber_lost_with_many_topics(void **state)
{
    char                    buf[16];
    ngx_uint_t              i;
    ngx_http_loom_topic_t  *t;

    conf.topic_cache = 8;

    for (i = 0; i < 64; i++) {
        snprintf(buf, sizeof(buf), "t%02u", (unsigned) i);
        t = cached(buf);

        if (i % 2) {
            t->channel_state = NGX_HTTP_LOOM_CHANNEL_PENDING;
        }

        ngx_http_loom_topic_check(t);
    }

    ngx_http_loom_topic_subscriber_lost(&w);
    assert_int_equal(w.nidle, 8);
}


/* acks held behind their delivery */

static ngx_uint_t  released;


static void
test_release(ngx_http_loom_waiter_t *wt, ngx_int_t rc)
{
    assert_int_equal(rc, NGX_OK);
    released++;
}


static void
deliver(const char *topic, const char *payload)
{
    char       buf[128];
    ngx_str_t  channel, data;

    static char  msg[256];

    snprintf(buf, sizeof(buf), "loom:{t:%s}:msg", topic);
    channel = name(buf);

    /*
     * "<seq> <json>" as the tests write it becomes "<seq> 0 0 e <json>":
     * a message not stored, which the gap sequence passes on as it comes
     */

    if (payload[0] >= '0' && payload[0] <= '9') {
        snprintf(msg, sizeof(msg), "%.*s 0 0 e %s",
                 (int) strcspn(payload, " "), payload,
                 payload + strcspn(payload, " ") + 1);
        payload = msg;
    }

    data = name(payload);

    ngx_http_loom_topic_message(&w, &channel, &data);
}


static void
confirm(const char *topic)
{
    char       buf[128];
    ngx_str_t  channel;

    snprintf(buf, sizeof(buf), "loom:{t:%s}:msg", topic);
    channel = name(buf);

    ngx_http_loom_topic_subscribed(&w, &channel);
}


static ngx_uint_t  confirmed;


static void
test_confirmed(ngx_http_loom_waiter_t *wt, ngx_int_t rc)
{
    assert_int_equal(rc, NGX_OK);
    confirmed++;
}


static void
subscribe(const char *topic, ngx_http_loom_subscriber_t *sr,
    test_out_t *out, const char *registration)
{
    ngx_str_t               n, reg;
    ngx_http_loom_waiter_t  wt;

    memset(&wt, 0, sizeof(wt));
    wt.handler = test_confirmed;
    n = name(topic);
    reg = name(registration);

    if (sr->out == NULL) {
        ngx_http_loom_subscriber_init(sr, &out->out, &test_log);
    }

    confirmed = 0;

    if (ngx_http_loom_topic_subscribe(ngx_http_loom_topic_get(&w, &n), sr,
                                      &wt, &reg)
        == NGX_AGAIN)
    {
        confirm(topic);
        assert_int_equal(confirmed, 1);
    }
}


static void
test_ack_held_until_its_delivery(void **state)
{
    ngx_str_t                    reg;
    test_out_t                   out;
    ngx_http_loom_waiter_t       wt;
    ngx_http_loom_subscriber_t   sr;

    memset(&out, 0, sizeof(out));
    memset(&sr, 0, sizeof(sr));
    memset(&wt, 0, sizeof(wt));
    wt.handler = test_release;
    released = 0;
    reg = name("R1");

    subscribe("t", &sr, &out, "R1");

    deliver("t", "1 {\"a\":1}");
    assert_int_equal(out.frames, 1);
    assert_string_equal(out.last, "{\"a\":1}");

    /* seq 1 seen: an ack for it goes; one for 2 waits */
    assert_int_equal(ngx_http_loom_topic_hold(lookup("t"), &sr, &wt, 1, &reg),
                     0);
    assert_int_equal(ngx_http_loom_topic_hold(lookup("t"), &sr, &wt, 2, &reg),
                     1);

    deliver("t", "2 {\"a\":2}");
    assert_int_equal(released, 1);
    assert_int_equal(out.frames, 2);

    ngx_http_loom_topic_unsubscribe_all(&sr);
}


/* each kind of frame once per delivery, shared by its subscribers */

static void
test_one_frame_per_kind(void **state)
{
    ngx_str_t                    channel, data;
    ngx_uint_t                   i;
    test_out_t                   out[4];
    ngx_http_loom_subscriber_t   sr[4];

    memset(out, 0, sizeof(out));
    memset(sr, 0, sizeof(sr));

    for (i = 0; i < 4; i++) {
        subscribe("t", &sr[i], &out[i], "R1");
    }

    sr[1].v2 = 1;
    sr[2].sse = 1;
    sr[3].sse = 1;

    channel = name("loom:{t:t}:msg");
    data = name("1 1 100 E1 {\"a\":1}\n");
    ngx_http_loom_topic_message(&w, &channel, &data);

    for (i = 0; i < 4; i++) {
        assert_int_equal(out[i].frames, 1);
    }

    assert_string_equal(out[0].last, "{\"a\":1}\n");
    assert_string_equal(out[1].last, "{\"a\":1,\"rev\":1,\"ts\":100}\n");
    assert_string_equal(out[2].last,
                        "id: 1:E1\ndata: {\"a\":1,\"rev\":1,\"ts\":100}\n\n");
    assert_ptr_equal(out[2].frame, out[3].frame);
    assert_ptr_not_equal(out[1].frame, out[2].frame);
    assert_ptr_not_equal(out[0].frame, out[1].frame);

    /* not stored: v1 text for the WebSocket, an event without an id */
    data = name("2 0 0 E1 {\"b\":2}\n");
    ngx_http_loom_topic_message(&w, &channel, &data);

    assert_string_equal(out[1].last, "{\"b\":2}\n");
    assert_string_equal(out[3].last, "data: {\"b\":2}\n\n");

    for (i = 0; i < 4; i++) {
        ngx_http_loom_topic_unsubscribe_all(&sr[i]);
    }
}


static void
test_count_restarts_for_a_new_registration(void **state)
{
    ngx_str_t                    r1, r2;
    test_out_t                   out;
    ngx_http_loom_waiter_t       wt;
    ngx_http_loom_subscriber_t   sr;

    memset(&out, 0, sizeof(out));
    memset(&sr, 0, sizeof(sr));
    memset(&wt, 0, sizeof(wt));
    wt.handler = test_release;
    released = 0;
    r1 = name("R1");
    r2 = name("R2");

    subscribe("t", &sr, &out, "R1");
    deliver("t", "5 {}");

    /* Redis lost t, it was registered again: seq 1 of R2 is not seen */
    assert_int_equal(ngx_http_loom_topic_hold(lookup("t"), &sr, &wt, 1, &r2),
                     1);
    deliver("t", "1 {}");
    assert_int_equal(released, 1);

    /* and what comes next counts from there */
    assert_int_equal(ngx_http_loom_topic_hold(lookup("t"), &sr, &wt, 2, &r2),
                     1);
    deliver("t", "2 {}");
    assert_int_equal(released, 2);

    (void) r1;
    ngx_http_loom_topic_unsubscribe_all(&sr);
}


static void
test_backwards_delivery_releases_and_restarts(void **state)
{
    ngx_str_t                    r1, none;
    test_out_t                   out;
    ngx_http_loom_waiter_t       wt;
    ngx_http_loom_subscriber_t   sr;

    memset(&out, 0, sizeof(out));
    memset(&sr, 0, sizeof(sr));
    memset(&wt, 0, sizeof(wt));
    wt.handler = test_release;
    released = 0;
    r1 = name("R1");
    ngx_str_null(&none);

    subscribe("t", &sr, &out, "R1");
    deliver("t", "5 {}");

    /* an ack waiting for 7, then the count starts again elsewhere */
    assert_int_equal(ngx_http_loom_topic_hold(lookup("t"), &sr, &wt, 7, &r1),
                     1);
    deliver("t", "1 {}");
    assert_int_equal(released, 1);
    assert_int_equal(lookup("t")->seq, 1);

    ngx_http_loom_topic_unsubscribe_all(&sr);
}


static void
test_unregister_notice_ends_its_registration_only(void **state)
{
    test_out_t                   out1, out2;
    ngx_http_loom_subscriber_t   s1, s2;

    memset(&out1, 0, sizeof(out1));
    memset(&out2, 0, sizeof(out2));
    memset(&s1, 0, sizeof(s1));
    memset(&s2, 0, sizeof(s2));

    subscribe("t", &s1, &out1, "R1");
    subscribe("t", &s2, &out2, "R2");
    deliver("t", "3 {}");

    deliver("t", "U R1");
    assert_int_equal(s1.nsubscriptions, 0);
    assert_int_equal(s2.nsubscriptions, 1);
    assert_int_equal(lookup("t")->seq, 3);

    deliver("t", "1 {}");
    assert_int_equal(out1.frames, 1);
    assert_int_equal(out2.frames, 2);

    ngx_http_loom_topic_unsubscribe_all(&s2);
}


static void
reply_string(ngx_http_loom_store_call_t *call, char *str)
{
    redisReply  reply;

    memset(&reply, 0, sizeof(reply));

    if (str == NULL) {
        reply.type = REDIS_REPLY_NIL;

    } else {
        reply.type = REDIS_REPLY_STRING;
        reply.str = str;
        reply.len = strlen(str);
    }

    call->handler(call, &reply);
}


static void
test_recheck_after_the_link_came_back(void **state)
{
    test_out_t                   out1, out2, out3;
    ngx_http_loom_subscriber_t   s1, s2, s3;

    memset(&out1, 0, sizeof(out1));
    memset(&out2, 0, sizeof(out2));
    memset(&out3, 0, sizeof(out3));
    memset(&s1, 0, sizeof(s1));
    memset(&s2, 0, sizeof(s2));
    memset(&s3, 0, sizeof(s3));

    subscribe("t", &s1, &out1, "R1");
    subscribe("t", &s2, &out2, "R2");
    subscribe("u", &s3, &out3, "R9");
    deliver("t", "4 {}");

    ngx_http_loom_topic_subscriber_lost(&w);
    assert_int_equal(lookup("t")->channel_state,
                     NGX_HTTP_LOOM_CHANNEL_OFF);
    assert_int_equal(ncalls, 0);

    /* one question per topic, in tree order; no channel before its answer */
    subscribes = 0;
    ngx_http_loom_topic_resubscribe(&w);
    assert_int_equal(ncalls, 2);
    assert_int_equal(subscribes, 0);

    /* t's current registration is R2: its channel again, for s2 only */
    reply_string(calls[0], "R2:3");
    assert_int_equal(s1.nsubscriptions, 0);
    assert_int_equal(s2.nsubscriptions, 1);
    assert_int_equal(subscribes, 1);

    /* u was unregistered: nobody is left to subscribe for */
    reply_string(calls[1], NULL);
    assert_int_equal(s3.nsubscriptions, 0);
    assert_int_equal(subscribes, 1);

    /* deliveries of t reach the subscriber of R2 only */
    confirm("t");
    deliver("t", "5 {}");
    assert_int_equal(out1.frames, 1);
    assert_int_equal(out2.frames, 2);

    ngx_http_loom_topic_unsubscribe_all(&s2);
}


static void
test_recheck_of_a_topic_gone_meanwhile(void **state)
{
    test_out_t                   out;
    ngx_http_loom_subscriber_t   sr;

    memset(&out, 0, sizeof(out));
    memset(&sr, 0, sizeof(sr));

    subscribe("t", &sr, &out, "R1");
    ngx_http_loom_topic_subscriber_lost(&w);
    ngx_http_loom_topic_resubscribe(&w);
    assert_int_equal(ncalls, 1);

    /* the client left before the answer came */
    ngx_http_loom_topic_unsubscribe_all(&sr);
    assert_null(lookup("t"));

    subscribes = 0;
    reply_string(calls[0], "R1:0");
    assert_null(lookup("t"));
    assert_int_equal(subscribes, 0);
}


static void
test_resubscribe_without_the_command_link(void **state)
{
    test_out_t                   out;
    ngx_http_loom_topic_t       *t;
    ngx_http_loom_subscriber_t   sr;

    memset(&out, 0, sizeof(out));
    memset(&sr, 0, sizeof(sr));

    subscribe("t", &sr, &out, "R1");
    subscribe("u", &sr, &out, "R1");
    ngx_http_loom_topic_subscriber_lost(&w);

    /* no question can be asked: the channel waits, tried again later */
    commands_refused = 0;
    commands_fail = 1;
    subscribes = 0;
    ngx_http_loom_topic_resubscribe(&w);
    commands_fail = 0;

    t = lookup("t");
    assert_int_equal(ncalls, 0);
    assert_int_equal(subscribes, 0);
    assert_int_equal(t->channel_state, NGX_HTTP_LOOM_CHANNEL_OFF);
    assert_true(t->recheck);
    assert_true(w.resubscribe.timer_set);

    /* with one Redis, one refusal a round, however many topics wait */
    assert_int_equal(commands_refused, 1);
    assert_true(lookup("u")->recheck);

    /* the retry, once the command link is up: asked, then subscribed */
    ngx_http_loom_topic_resubscribe(&w);
    assert_int_equal(ncalls, 2);
    assert_int_equal(subscribes, 0);

    reply_string(calls[0], "R1:0");
    reply_string(calls[1], "R1:0");
    assert_int_equal(sr.nsubscriptions, 2);
    assert_int_equal(subscribes, 2);
    assert_int_equal(t->channel_state, NGX_HTTP_LOOM_CHANNEL_PENDING);

    ngx_http_loom_topic_unsubscribe_all(&sr);
}


static void
test_recheck_lost_with_the_command_link(void **state)
{
    test_out_t                   out;
    ngx_http_loom_topic_t       *t;
    ngx_http_loom_subscriber_t   sr;

    memset(&out, 0, sizeof(out));
    memset(&sr, 0, sizeof(sr));

    subscribe("t", &sr, &out, "R1");
    ngx_http_loom_topic_subscriber_lost(&w);
    ngx_http_loom_topic_resubscribe(&w);
    assert_int_equal(ncalls, 1);

    /* no answer: nothing ends, nothing is subscribed, asked again later */
    subscribes = 0;
    calls[0]->handler(calls[0], NULL);
    t = lookup("t");
    assert_int_equal(sr.nsubscriptions, 1);
    assert_int_equal(subscribes, 0);
    assert_int_equal(t->channel_state, NGX_HTTP_LOOM_CHANNEL_OFF);
    assert_true(t->recheck);
    assert_true(w.resubscribe.timer_set);

    /* the retry: the registration ended meanwhile */
    ngx_http_loom_topic_resubscribe(&w);
    assert_int_equal(ncalls, 2);
    reply_string(calls[1], "R2:0");
    assert_int_equal(sr.nsubscriptions, 0);
    assert_int_equal(subscribes, 0);
    assert_null(lookup("t"));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup_teardown(
            test_cache_evicts_least_recently_used, setup, teardown),
        cmocka_unit_test_setup_teardown(test_topic_without_schema_goes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_cache_keeps_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_subscribed_topic_leaves_the_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_subscriber_lost_walk_survives_eviction, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_subscriber_lost_with_many_topics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_held_until_its_delivery,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_frame_per_kind,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_count_restarts_for_a_new_registration, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_backwards_delivery_releases_and_restarts, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_unregister_notice_ends_its_registration_only,
            setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_recheck_after_the_link_came_back, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_recheck_of_a_topic_gone_meanwhile, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_resubscribe_without_the_command_link, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_recheck_lost_with_the_command_link, setup, teardown),
    };

    /* freed memory is overwritten: a use after free reads garbage */
    mallopt(M_PERTURB, 0xa5);

    return cmocka_run_group_tests(tests, NULL, NULL);
}
