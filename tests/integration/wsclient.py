"""A small, strict WebSocket client for tests.

It speaks RFC 6455 over a plain or TLS socket and can also break the
protocol on purpose: unmasked frames, reserved bits, bad lengths, split
writes.  Every read has a timeout, so a test waits for an event, never for
a fixed time.
"""

import base64
import hashlib
import json
import os
import re
import socket
import ssl
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

DEFAULT_TIMEOUT = 10.0


class HandshakeError(Exception):
    def __init__(self, status, headers, body):
        super().__init__("handshake failed: %d %r" % (status, body))
        self.status = status
        self.headers = headers
        self.body = body


class ConnectionClosed(Exception):
    """The server closed the TCP connection."""


class Frame:
    def __init__(self, fin, opcode, payload, rsv=0):
        self.fin = fin
        self.opcode = opcode
        self.payload = payload
        self.rsv = rsv

    def close_code(self):
        if self.opcode != CLOSE or len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    def close_reason(self):
        return self.payload[2:].decode("utf-8")

    def __repr__(self):
        return "Frame(fin=%d, opcode=%d, payload=%r)" % (
            self.fin, self.opcode, self.payload[:80])


def encode_frame(opcode, payload, fin=True, mask=True, rsv=0,
                 length=None, length_bytes=None, mask_key=None):
    """Builds a client frame; the keyword arguments allow broken ones."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if mask else 0
    if length_bytes is None:
        length_bytes = 0 if n < 126 else (2 if n < 65536 else 8)
    if length_bytes == 0:
        head = struct.pack("!BB", b0, mbit | n)
    elif length_bytes == 2:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


class WSClient:
    def __init__(self, host, port, path="/ws", headers=None, tls=False,
                 timeout=DEFAULT_TIMEOUT, connect=True, extra=b""):
        self.host = host
        self.port = port
        self.path = path
        self.timeout = timeout
        self.buf = b""
        self.response_headers = {}
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(sock, server_hostname=host)
        self.sock = sock
        if connect:
            self.handshake(headers or {}, extra=extra)

    # -- handshake ---------------------------------------------------------

    def handshake(self, headers, extra=b"", request=None, key=None):
        """Sends the request (or the one given) and checks the 101."""
        if request is not None and key is None:
            m = re.search(rb"Sec-WebSocket-Key: *([^\r]*)\r\n", request)
            key = m.group(1).decode() if m else ""
        key = key or base64.b64encode(os.urandom(16)).decode()
        if request is None:
            lines = ["GET %s HTTP/1.1" % self.path,
                     "Host: %s:%d" % (self.host, self.port)]
            base = {"Upgrade": "websocket", "Connection": "Upgrade",
                    "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
            for k, v in headers.items():
                if v is None:
                    base.pop(k, None)
                else:
                    base[k] = v
            key = base.get("Sec-WebSocket-Key", key)
            for k, v in base.items():
                lines.append("%s: %s" % (k, v))
            request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.sock.sendall(request + extra)
        status, hdrs, body = self.read_http_response()
        self.response_headers = hdrs
        if status != 101:
            raise HandshakeError(status, hdrs, body)
        want = base64.b64encode(
            hashlib.sha1(key.encode() + GUID).digest()).decode()
        if hdrs.get("sec-websocket-accept") != want:
            raise AssertionError("bad Sec-WebSocket-Accept %r"
                                 % hdrs.get("sec-websocket-accept"))
        return hdrs

    def read_http_response(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        body = b""
        if status != 101:
            n = int(hdrs.get("content-length", "0"))
            while len(self.buf) < n:
                self._fill()
            body, self.buf = self.buf[:n], self.buf[n:]
        return status, hdrs, body

    # -- raw io ------------------------------------------------------------

    def _fill(self, timeout=None):
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionClosed()
        self.buf += data

    def _take(self, n, timeout=None):
        while len(self.buf) < n:
            self._fill(timeout)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send_raw(self, data):
        self.sock.sendall(data)

    # -- frames ------------------------------------------------------------

    def send_frame(self, opcode, payload=b"", **kw):
        self.send_raw(encode_frame(opcode, payload, **kw))

    def send_text(self, text):
        self.send_frame(TEXT, text)

    def send_json(self, obj):
        self.send_frame(TEXT, json.dumps(obj))

    def recv_frame(self, timeout=None):
        b0, b1 = self._take(2, timeout)
        fin = b0 >> 7
        rsv = (b0 >> 4) & 7
        opcode = b0 & 0xF
        if b1 & 0x80:
            raise AssertionError("server frame is masked")
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2, timeout))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8, timeout))[0]
        payload = self._take(n, timeout)
        return Frame(fin, opcode, payload, rsv)

    def recv_message(self, timeout=None, skip_ping=True):
        """A whole data message (or a close frame)."""
        parts = []
        first = None
        while True:
            f = self.recv_frame(timeout)
            if f.opcode == PING and skip_ping:
                continue
            if f.opcode == CLOSE:
                return f
            if first is None:
                first = f.opcode
            parts.append(f.payload)
            if f.fin:
                return Frame(1, first, b"".join(parts))

    def recv_json(self, timeout=None):
        f = self.recv_message(timeout)
        if f.opcode == CLOSE:
            raise AssertionError("expected a message, got close %r"
                                 % (f.close_code(),))
        assert f.opcode == TEXT, f
        text = f.payload.decode("utf-8")
        assert text.endswith("\n"), text
        return json.loads(text)

    def request(self, obj, timeout=None):
        self.send_json(obj)
        return self.recv_json(timeout)

    def expect_close(self, code=None, timeout=None):
        """Reads until a close frame; returns it."""
        while True:
            f = self.recv_frame(timeout)
            if f.opcode == CLOSE:
                if code is not None:
                    assert f.close_code() == code, (f.close_code(), f.payload)
                return f

    def expect_eof(self, timeout=None):
        """The server closes the TCP connection (after anything queued)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("connection not closed in time")
                self._fill(left)
                self.buf = b""
        except (ConnectionClosed, ConnectionResetError):
            return

    def expect_silence(self, seconds=0.3):
        """Nothing arrives for a short while (used only to show absence)."""
        try:
            self._fill(seconds)
        except socket.timeout:
            return
        except ConnectionClosed:
            raise AssertionError("connection closed")
        raise AssertionError("unexpected data: %r" % self.buf[:200])

    def close(self, code=1000, reason=b""):
        try:
            payload = struct.pack("!H", code) + reason if code else b""
            self.send_frame(CLOSE, payload)
            f = self.expect_close()
            self.expect_eof()
            return f
        finally:
            self.sock.close()

    def abort(self):
        try:
            self.sock.close()
        except OSError:
            pass
