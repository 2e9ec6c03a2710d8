"""Data framing (RFC 6455, section 5): masking, reserved bits, opcodes,
lengths, fragmentation, UTF-8 and the message size limit.  Each protocol
violation closes the connection with the right code."""

import json
import struct

import pytest

from wsclient import (BINARY, CLOSE, CONT, PING, PONG, TEXT, WSClient,
                      encode_frame)

LIST = '{"id":"l","action":"listTopics"}'


def padded_request(size, rid="big"):
    """A valid request of exactly size bytes."""
    base = '{"id":"%s","action":"listTopics","pad":""}' % rid
    pad = size - len(base)
    assert pad >= 0
    return base[:-2] + "x" * pad + '"}'


def assert_failed(c, code):
    f = c.expect_close()
    assert f.close_code() == code, (f.close_code(), f.payload)
    c.expect_eof()
    return f


@pytest.mark.parametrize("kwargs", [
    {"mask": False},
    {"rsv": 1},
    {"rsv": 4},
])
def test_broken_header_is_1002(nginx, kwargs):
    c = nginx.client()
    c.send_frame(TEXT, LIST, **kwargs)
    assert_failed(c, 1002)


@pytest.mark.parametrize("opcode", [3, 7, 0xB, 0xF])
def test_unknown_opcode_is_1002(nginx, opcode):
    c = nginx.client()
    c.send_frame(opcode, b"x")
    assert_failed(c, 1002)


def test_control_frame_over_125_bytes_is_1002(nginx):
    c = nginx.client()
    c.send_frame(PING, b"x" * 126)
    assert_failed(c, 1002)


def test_fragmented_control_frame_is_1002(nginx):
    c = nginx.client()
    c.send_frame(PING, b"x", fin=False)
    assert_failed(c, 1002)


def test_continuation_without_start_is_1002(nginx):
    c = nginx.client()
    c.send_frame(CONT, LIST)
    assert_failed(c, 1002)


def test_new_message_inside_fragmented_one_is_1002(nginx):
    c = nginx.client()
    c.send_frame(TEXT, LIST[:5], fin=False)
    c.send_frame(TEXT, LIST[5:])
    assert_failed(c, 1002)


def test_64bit_length_with_top_bit_is_1002(nginx):
    c = nginx.client()
    c.send_raw(struct.pack("!BBQ", 0x81, 0xFF, 1 << 63) + b"mask")
    assert_failed(c, 1002)


@pytest.mark.parametrize("n,length_bytes", [(5, 2), (125, 2), (200, 8),
                                            (65535, 8)])
def test_length_not_minimal_is_1002(nginx, n, length_bytes):
    c = nginx.client()
    c.send_raw(encode_frame(TEXT, "x" * n, length_bytes=length_bytes))
    assert_failed(c, 1002)


@pytest.mark.parametrize("size", [125, 126, 65535, 65536, 300000])
def test_7_16_and_64_bit_lengths(nginx, size):
    c = nginx.client()
    c.send_text(padded_request(size))
    r = c.recv_json()
    assert r["id"] == "big" and r["code"] == 200
    c.close()


def test_binary_message_is_handled_as_text(nginx):
    c = nginx.client()
    c.send_frame(BINARY, LIST)
    assert c.recv_json()["id"] == "l"
    c.close()


def test_fragmented_message_with_control_frames_between(nginx):
    c = nginx.client()
    msg = padded_request(1000, "frag")
    c.send_frame(TEXT, msg[:300], fin=False)
    c.send_frame(PING, b"in-between")
    c.send_frame(CONT, msg[300:600], fin=False)
    c.send_frame(PONG, b"unsolicited")
    c.send_frame(CONT, b"", fin=False)
    c.send_frame(CONT, msg[600:])
    f = c.recv_frame()
    assert (f.opcode, f.payload) == (PONG, b"in-between")
    r = c.recv_json()
    assert r["id"] == "frag" and r["code"] == 200
    c.close()


def test_frame_split_over_many_writes(nginx):
    c = nginx.client()
    data = encode_frame(TEXT, padded_request(70000, "slow"))
    step = 997
    for i in range(0, len(data), step):
        c.send_raw(data[i:i + step])
    assert c.recv_json()["id"] == "slow"
    c.close()


def test_many_frames_in_one_write(nginx):
    c = nginx.client()
    c.send_raw(b"".join(encode_frame(
        TEXT, '{"id":"%d","action":"listTopics"}' % i) for i in range(200)))
    for i in range(200):
        assert c.recv_json()["id"] == str(i)
    c.close()


def test_invalid_utf8_text_is_1007(nginx):
    c = nginx.client()
    c.send_frame(TEXT, b'{"id":"\xc3\x28"}')
    assert_failed(c, 1007)


@pytest.mark.parametrize("bad", [
    b"\xed\xa0\x80",          # a surrogate
    b"\xc0\xaf",              # overlong
    b"\xf4\x90\x80\x80",      # above U+10FFFF
    b"\xff",
    b"\x80",
])
def test_invalid_utf8_forms_are_1007(nginx, bad):
    c = nginx.client()
    c.send_frame(TEXT, b'{"id":"' + bad + b'"}')
    assert_failed(c, 1007)


def test_utf8_checked_across_fragments(nginx):
    c = nginx.client()
    text = '{"id":"caf\u00e9 \u20ac \U0001f600","action":"listTopics"}'
    data = text.encode()
    # split inside the multi-byte characters
    cut1 = data.index("\u00e9".encode()) + 1
    cut2 = data.index("\U0001f600".encode()) + 2
    c.send_frame(TEXT, data[:cut1], fin=False)
    c.send_frame(CONT, data[cut1:cut2], fin=False)
    c.send_frame(CONT, data[cut2:])
    assert c.recv_json()["id"] == "caf\u00e9 \u20ac \U0001f600"
    c.close()


def test_invalid_utf8_fails_at_once_in_a_fragment(nginx):
    c = nginx.client()
    c.send_frame(TEXT, b'{"id":"ok', fin=False)
    c.send_frame(CONT, b"\xc3\x28", fin=False)
    # no final fragment: the bad byte alone must end the connection
    assert_failed(c, 1007)


def test_truncated_utf8_at_message_end_is_1007(nginx):
    c = nginx.client()
    c.send_frame(TEXT, b'{"id":"x"}\xe2\x82', fin=False)
    c.send_frame(CONT, b"")
    assert_failed(c, 1007)


def test_binary_with_invalid_utf8_gets_an_error_reply(nginx):
    c = nginx.client()
    c.send_frame(BINARY, b'{"id":"\xff"}')
    r = c.recv_json()
    assert r == {"id": "UNKNOWN", "action": "UNKNOWN", "code": 400,
                 "message": "message is not valid UTF-8",
                 "type": "response"}
    c.close()


def test_oversized_frame_is_1009_before_its_payload(make_nginx):
    n = make_nginx(location="loom_max_message_size 1k;")
    c = n.client()
    # only the header: the server must not wait for (or buffer) the payload
    c.send_raw(struct.pack("!BBQ", 0x81, 0xFF, 1 << 40) + b"mask")
    assert_failed(c, 1009)


def test_oversized_fragmented_message_is_1009(make_nginx):
    n = make_nginx(location="loom_max_message_size 1k;")
    c = n.client()
    c.send_frame(TEXT, "x" * 600, fin=False)
    c.send_frame(CONT, "x" * 600)
    assert_failed(c, 1009)


def test_message_at_the_limit_is_fine(make_nginx):
    n = make_nginx(location="loom_max_message_size 1k;")
    c = n.client()
    c.send_frame(TEXT, padded_request(1024))
    assert c.recv_json()["code"] == 200
    c.close()


def test_huge_message_over_tls(make_nginx):
    n = make_nginx(tls=True)
    c = n.client(tls=True)
    c.send_text(padded_request(500000))
    assert c.recv_json()["id"] == "big"
    c.close()


def test_server_frames_are_text_unmasked_and_whole(nginx):
    c = nginx.client()
    c.send_text(LIST)
    f = c.recv_frame()
    assert (f.fin, f.rsv, f.opcode) == (1, 0, TEXT)
    assert json.loads(f.payload)["id"] == "l"
    c.close()


def test_close_frame_echo_closes_tcp(nginx):
    c = nginx.client()
    c.send_frame(CLOSE, struct.pack("!H", 1000) + b"bye")
    f = c.expect_close()
    assert f.close_code() == 1000
    c.expect_eof()


def test_nothing_is_answered_after_a_close_frame(nginx):
    c = nginx.client()
    c.send_raw(encode_frame(CLOSE, struct.pack("!H", 1000))
               + encode_frame(TEXT, LIST))
    f = c.recv_frame()
    assert f.opcode == CLOSE and f.close_code() == 1000
    c.expect_eof()


def test_client_reuses_a_connection_after_errors(nginx):
    # protocol-level errors (bad JSON) do not close the connection
    c = nginx.client()
    for text in ["hello", "{", "[]", "null", LIST]:
        c.send_text(text)
    codes = [c.recv_json()["code"] for _ in range(5)]
    assert codes == [400, 400, 400, 400, 200]
    c.close()


def test_second_client_unaffected_by_broken_one(nginx):
    good = nginx.client()
    bad = nginx.client()
    bad.send_frame(TEXT, LIST, mask=False)
    assert_failed(bad, 1002)
    good.send_text(LIST)
    assert good.recv_json()["code"] == 200
    good.close()


def test_plain_client_library_interop(nginx):
    """A mainstream client (python websockets) gets the same answers."""
    import asyncio
    import websockets

    async def run():
        uri = "ws://127.0.0.1:%d/ws" % nginx.port
        async with websockets.connect(uri) as ws:
            await ws.send(LIST)
            answer = await ws.recv()
            await ws.ping(b"p")
            return answer

    answer = asyncio.run(run())
    assert json.loads(answer)["code"] == 200


def test_ws_client_class_keeps_working_with_raw_sockets(nginx):
    c = WSClient("127.0.0.1", nginx.port)
    c.send_text(LIST)
    assert c.recv_json()["code"] == 200
    c.close()
