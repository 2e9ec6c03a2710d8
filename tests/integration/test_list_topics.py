"""listTopics over a long index comes in pages.

An index of up to about 1,000 topics is answered whole, sorted by name,
exactly as before; a longer one in pages of about 1,000, each sorted, with
a "cursor" member naming the next page ({"data":{"cursor":...}} asks for
it).  The answer without "cursor" is the last page.
"""

import json

from conftest import answer, register


def schema_entry(i):
    return json.dumps({"version": 0, "schema": {"n%d" % i: None}},
                      separators=(",", ":"))


def test_small_index_answered_whole_as_before(nginx):
    c = nginx.client()
    register(c, "b", {"x": None})
    register(c, "a", {"y": 1})
    c.send_json({"id": "l", "action": "listTopics"})
    f = c.recv_message()
    assert f.payload == (
        b'{"id":"l","action":"listTopics","code":200,"data":['
        b'{"name":"a","schema":{"version":0,"schema":{"y": 1}}},'
        b'{"name":"b","schema":{"version":0,"schema":{"x": null}}}],'
        b'"type":"response"}\n')

    # an old client may send data with listTopics: it is still ignored
    r = c.request({"id": "l2", "action": "listTopics", "data": {"x": 1}})
    assert [t["name"] for t in r["data"]] == ["a", "b"]
    assert "cursor" not in r


def test_long_index_comes_in_pages(redis_server, nginx):
    rc = redis_server.client()
    count = 2500
    pipe = rc.pipeline(transaction=False)
    for i in range(count):
        pipe.hset("loom:topics", "t%05d" % i, schema_entry(i))
    pipe.execute()

    c = nginx.client()
    names = []
    pages = 0
    request = {"id": "l", "action": "listTopics"}
    while True:
        r = c.request(request, timeout=20)
        assert (r["id"], r["code"]) == ("l", 200), r
        page = [t["name"] for t in r["data"]]
        assert page == sorted(page)
        assert len(page) <= 1200, len(page)
        for t in r["data"]:
            i = int(t["name"][1:])
            assert t["schema"] == {"version": 0,
                                   "schema": {"n%d" % i: None}}
        names += page
        pages += 1
        if "cursor" not in r:
            break
        assert r["cursor"].isdigit() and r["cursor"] != "0", r
        request = {"id": "l", "action": "listTopics",
                   "data": {"cursor": r["cursor"]}}
        assert pages < 20

    assert pages >= 3
    assert sorted(set(names)) == ["t%05d" % i for i in range(count)]


def test_bad_cursor(nginx):
    c = nginx.client()
    for bad in (5, "", "12a", "-1", None, "1" * 30):
        r = c.request({"id": "l", "action": "listTopics",
                       "data": {"cursor": bad}})
        assert r == answer("l", "listTopics", 400,
                           "cursor must be a string of digits"), bad
