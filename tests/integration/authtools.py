"""Keys, key files and tokens for the credential tests.

HS256 tokens are made with hmac/hashlib, RS256 and ES256 ones with
python3-cryptography (Debian's), so that the broker's verification is
checked against an independent signer.
"""

import base64
import hashlib
import hmac
import json
import os
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import \
    decode_dss_signature

SECRET = b"0123456789abcdef0123456789abcdef-loom-tests"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sha256_hex(key):
    return hashlib.sha256(key.encode()).hexdigest()


def write_keyfile(path, entries):
    """entries: [(name, key, {"publish": [...], ...}), ...]."""
    keys = []
    for name, key, perms in entries:
        e = {"name": name, "sha256": sha256_hex(key)}
        e.update(perms)
        keys.append(e)
    with open(path, "w") as f:
        json.dump({"keys": keys}, f)
    return path


def claims(sub="alice", ttl=300, perms=None, **extra):
    now = int(time.time())
    c = {"exp": now + ttl, "iat": now}
    if sub is not None:
        c["sub"] = sub
    if perms is not None:
        c["dataloom"] = perms
    c.update(extra)
    return {k: v for k, v in c.items() if v is not None}


def signing_input(header, payload):
    return (b64(json.dumps(header).encode()) + "."
            + b64(json.dumps(payload).encode()))


def hs256(payload, secret=SECRET, header=None):
    h = header or {"alg": "HS256", "typ": "JWT"}
    si = signing_input(h, payload)
    sig = hmac.new(secret, si.encode(), hashlib.sha256).digest()
    return si + "." + b64(sig)


def unsigned(payload):
    return signing_input({"alg": "none", "typ": "JWT"}, payload) + "."


class RSAKey:
    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537,
                                            key_size=2048)
        self.public_pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, payload, header=None):
        h = header or {"alg": "RS256", "typ": "JWT"}
        si = signing_input(h, payload)
        sig = self.key.sign(si.encode(), padding.PKCS1v15(),
                            hashes.SHA256())
        return si + "." + b64(sig)


class ECKey:
    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.public_pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, payload, header=None):
        h = header or {"alg": "ES256", "typ": "JWT"}
        si = signing_input(h, payload)
        der = self.key.sign(si.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return si + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def write(path, data):
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    return path


def bearer(cred):
    return {"Authorization": "Bearer " + cred}


def workpath(workdir, name):
    os.makedirs(workdir, exist_ok=True)
    return os.path.join(workdir, name)
