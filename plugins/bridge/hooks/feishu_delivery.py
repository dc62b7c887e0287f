"""Feishu event deliveries on the wire: encryption, the signature headers and how the signature is computed.

With an Encrypt Key the body is ``{"encrypt": base64(iv16 + AES-256-CBC(key =
SHA-256(encrypt key), PKCS7(json)))}`` and carries ``X-Lark-Signature`` =
hex(SHA-256(timestamp + nonce + encrypt key + raw body)) with its timestamp and
nonce headers. (Kept apart from ``feishu_codec``: it needs ``cryptography``,
which the dictionary and the DAG files do not.) The receiver
(``bridge.events.feishu``) decides what to trust.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SIGNATURE_HEADER = "X-Lark-Signature"
TIMESTAMP_HEADER = "X-Lark-Request-Timestamp"
NONCE_HEADER = "X-Lark-Request-Nonce"
ENCRYPTED = "encrypt"  # the one key of an encrypted body


class CipherError(ValueError):
    """An ``encrypt`` value that does not decrypt (not base64, a wrong length, another key)."""


def encrypt(encrypt_key: str, plaintext: bytes, iv: bytes) -> str:
    """Feishu's encryption (the tests use it to build real deliveries)."""
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.AES(hashlib.sha256(encrypt_key.encode()).digest()), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + enc.update(data) + enc.finalize()).decode()


def decrypt(encrypt_key: str, token: str) -> bytes:
    try:
        raw = base64.b64decode(token, validate=True)
    except ValueError:
        raise CipherError(f"{ENCRYPTED} is not base64") from None
    if len(raw) < 32 or len(raw) % 16:
        raise CipherError(f"{ENCRYPTED} has a wrong length")
    key = hashlib.sha256(encrypt_key.encode()).digest()
    dec = Cipher(algorithms.AES(key), modes.CBC(raw[:16])).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(dec.update(raw[16:]) + dec.finalize()) + unpadder.finalize()
    except ValueError:
        raise CipherError(f"{ENCRYPTED} does not decrypt with the Encrypt Key") from None


def signature(encrypt_key: str, timestamp: str, nonce: str, body: bytes) -> str:
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()
