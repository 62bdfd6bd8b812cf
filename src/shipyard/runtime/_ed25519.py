"""Ed25519 signature verification (RFC 8032) in pure Python.

Standard library only, so a bundle's signature can be checked on a host that has
neither Shipyard nor ``cryptography``. It verifies; it never signs (signing needs
a constant-time implementation and happens at export, through ``cryptography``).
One verification takes a few milliseconds, and it runs once per load.
"""

from __future__ import annotations

import base64
import hashlib

_P = 2**255 - 19
_Q = 2**252 + 27742317777372353535851937790883648493  # order of the base point
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)

# DER prefix of an Ed25519 SubjectPublicKeyInfo:
# SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING }
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")

_Point = tuple[int, int, int, int]  # extended coordinates X, Y, Z, T with x=X/Z, y=Y/Z, xy=T/Z


def _add(a: _Point, b: _Point) -> _Point:
    # Complete twisted-Edwards addition (a = -1); also correct for doubling.
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % _P
    bb = (y1 + x1) * (y2 + x2) % _P
    cc = 2 * _D * t1 * t2 % _P
    dd = 2 * z1 * z2 % _P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _multiply(scalar: int, point: _Point) -> _Point:
    result: _Point = (0, 1, 1, 0)
    while scalar:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _equal(a: _Point, b: _Point) -> bool:
    return (a[0] * b[2] - b[0] * a[2]) % _P == 0 and (a[1] * b[2] - b[1] * a[2]) % _P == 0


def _decode_point(raw: bytes) -> _Point | None:
    if len(raw) != 32:
        return None
    number = int.from_bytes(raw, "little")
    sign = number >> 255
    y = number & ((1 << 255) - 1)
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        if sign:
            return None
        x = 0
    else:
        x = pow(x2, (_P + 3) // 8, _P)
        if (x * x - x2) % _P != 0:
            x = x * _SQRT_M1 % _P
        if (x * x - x2) % _P != 0:
            return None
        if x & 1 != sign:
            x = _P - x
    return (x, y, 1, x * y % _P)


_BASE = _decode_point((4 * pow(5, _P - 2, _P) % _P).to_bytes(32, "little"))


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True when ``signature`` (64 bytes) over ``message`` was made by ``public_key`` (32 bytes)."""
    if len(public_key) != 32 or len(signature) != 64 or _BASE is None:
        return False
    point_a = _decode_point(public_key)
    point_r = _decode_point(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if point_a is None or point_r is None or s >= _Q:
        return False
    digest = hashlib.sha512(signature[:32] + public_key + message).digest()
    h = int.from_bytes(digest, "little") % _Q
    return _equal(_multiply(s, _BASE), _add(point_r, _multiply(h, point_a)))


def public_key_from_pem(text: str | bytes) -> bytes:
    """The 32 raw bytes of an Ed25519 public key given as PEM (``-----BEGIN PUBLIC KEY-----``).

    Raises ValueError when the text is not an Ed25519 public key.
    """
    if isinstance(text, bytes):
        text = text.decode("ascii", errors="replace")
    lines = [line.strip() for line in text.strip().splitlines()]
    if (
        not lines
        or lines[0] != "-----BEGIN PUBLIC KEY-----"
        or lines[-1] != "-----END PUBLIC KEY-----"
    ):
        raise ValueError("not a PEM public key (expected '-----BEGIN PUBLIC KEY-----')")
    try:
        der = base64.b64decode("".join(lines[1:-1]), validate=True)
    except ValueError as exc:
        raise ValueError(f"the PEM body is not base64: {exc}") from None
    if len(der) != len(_SPKI_PREFIX) + 32 or not der.startswith(_SPKI_PREFIX):
        raise ValueError("the PEM key is not an Ed25519 public key")
    return der[len(_SPKI_PREFIX) :]
