"""Registrations seen by a worker whose subscriber link was down.

An unregister notice ("U <registration>" on the topic's channel) reaches
only the links subscribed at that moment.  A worker whose subscriber link
was down checks, once it is back, which registration each of its topics
has now, and ends the subscriptions to the ones that are gone.
"""

from conftest import answer, register, subscribe, wait_for


def subscriber_up(n):
    return all(w["redis_subscriber"] == "up"
               for w in n.status()["redis"]["workers"])


def numsub(rc, topic):
    return rc.pubsub_numsub("loom:{t:%s}:msg" % topic)[0][1]


def test_unregister_while_the_subscriber_link_is_down(redis_server,
                                                      make_nginx):
    n1 = make_nginx()
    n2 = make_nginx()
    old = n1.client()
    admin = n2.client()
    register(admin, "t", {"n": None})
    subscribe(old, "t")

    rc = redis_server.client()
    assert numsub(rc, "t") == 1
    clients = rc.info("clients")["connected_clients"]

    # the subscriber links go, and cannot come back for now
    pipe = rc.pipeline(transaction=True)
    pipe.config_set("maxclients", clients - 2)
    pipe.client_kill_filter(_type="pubsub")
    pipe.execute()
    try:
        wait_for(lambda: not subscriber_up(n1), what="n1's link down")

        r = admin.request({"id": "u", "action": "unregisterTopic",
                           "topic": "t", "requireAck": True})
        assert r == answer("u", "unregisterTopic")
        register(admin, "t", {"n": None})

        # nobody heard the notice
        assert numsub(rc, "t") == 0
    finally:
        rc.config_set("maxclients", 10000)

    # once the link is up, the re-check is on the command link ahead of
    # anything sent later
    wait_for(lambda: subscriber_up(n1), timeout=20, what="n1's link back")

    # a subscriber of the new registration on the same worker gets its
    # messages, the one of the old registration does not
    new = n1.client()
    subscribe(new, "t")
    r = admin.request({"id": "p", "action": "publish", "topic": "t",
                       "data": {"n": 1}, "requireAck": True})
    assert r == answer("p", "publish")
    assert new.recv_json()["data"] == {"n": 1}
    old.expect_silence(0.5)

    # the old subscription is gone, not merely silent
    r = old.request({"id": "x", "action": "unsubscribe", "topic": "t",
                     "requireAck": True})
    assert r["code"] == 500 and "not subscribed" in r["message"], r


def test_subscriptions_of_a_live_registration_stay(redis_server,
                                                   make_nginx):
    n = make_nginx()
    s = n.client()
    admin = n.client()
    register(admin, "t", {"n": None})
    subscribe(s, "t")

    rc = redis_server.client()
    rc.client_kill_filter(_type="pubsub")
    wait_for(lambda: numsub(rc, "t") >= 1 or None, timeout=20,
             what="a resubscribe")
    wait_for(lambda: subscriber_up(n), what="the link back")

    r = admin.request({"id": "p", "action": "publish", "topic": "t",
                       "data": {"n": 2}, "requireAck": True})
    assert r == answer("p", "publish")
    assert s.recv_json()["data"] == {"n": 2}
