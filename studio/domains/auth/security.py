"""Passwords (Argon2id), access tokens (JWT, one pinned algorithm) and opaque tokens."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from studio.errors import AppError

JWT_ALGORITHM = "HS256"
API_TOKEN_PREFIX = "stp_"


class Passwords:
    """Argon2id hashing; parameters from settings (OWASP minimum by default)."""

    def __init__(self, memory_kib: int, time_cost: int, parallelism: int):
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        # Verifying against this when the user does not exist keeps timing uniform.
        self._dummy = self._hasher.hash(secrets.token_hex(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._dummy, password) and bool(
                password_hash
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    organization_id: uuid.UUID
    session_id: uuid.UUID | None
    expires_at: dt.datetime


class AccessTokens:
    """Short-lived JWTs. Only HS256 is accepted: `alg: none` and others are refused."""

    LEEWAY_SECONDS = 5
    VERIFIED_CACHE_SIZE = 4096

    def __init__(
        self,
        key: str,
        *,
        audience: str,
        issuer: str,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ):
        self._key = key
        self.audience = audience
        self.issuer = issuer
        self.ttl = dt.timedelta(seconds=ttl_seconds)
        # Seconds since the epoch, for the expiry re-check of a cached token (tests inject
        # their own). PyJWT checks a token it decodes against the system clock.
        self._clock = clock
        # Exact token text -> its verified claims. A client sends the same token on every
        # request until it expires, and PyJWT's full decode (key checks, two JSON parses,
        # claim checks) is a tenth of a cheap request's time. Only byte-identical tokens
        # hit, so the signature check stands; expiry is checked again on every hit.
        self._verified: dict[str, AccessClaims] = {}

    def issue(
        self,
        user_id: uuid.UUID,
        organization_id: uuid.UUID,
        session_id: uuid.UUID | None = None,
        *,
        now: dt.datetime | None = None,
        ttl: dt.timedelta | None = None,
    ) -> tuple[str, dt.datetime]:
        now = now or dt.datetime.now(dt.UTC)
        expires = now + (ttl or self.ttl)
        claims = {
            "sub": str(user_id),
            "org": str(organization_id),
            "sid": str(session_id) if session_id else None,
            "aud": self.audience,
            "iss": self.issuer,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=JWT_ALGORITHM), expires

    def verify(self, token: str) -> AccessClaims:
        claims = self._verified.get(token)
        if claims is not None:
            if claims.expires_at.timestamp() <= self._clock() - self.LEEWAY_SECONDS:
                self._verified.pop(token, None)
                raise AppError("token_expired")
            return claims
        claims = self._decode(token)
        if len(self._verified) >= self.VERIFIED_CACHE_SIZE:
            # The oldest entry; another thread may change the dict meanwhile.
            with contextlib.suppress(RuntimeError, StopIteration):
                self._verified.pop(next(iter(self._verified)), None)
        self._verified[token] = claims
        return claims

    def _decode(self, token: str) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[JWT_ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "nbf", "aud", "iss", "sub"]},
                leeway=self.LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError as exc:
            raise AppError("token_expired") from exc
        except jwt.InvalidTokenError as exc:
            raise AppError("invalid_token", f"invalid access token: {exc}") from exc
        try:
            user_id = uuid.UUID(claims["sub"])
            org_id = uuid.UUID(claims["org"])
            session_id = uuid.UUID(claims["sid"]) if claims.get("sid") else None
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise AppError("invalid_token", "invalid access token claims") from exc
        return AccessClaims(
            user_id, org_id, session_id, dt.datetime.fromtimestamp(claims["exp"], dt.UTC)
        )


def new_opaque_token(prefix: str = "") -> str:
    """A 256-bit random token."""
    return prefix + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """SHA-256 of a high-entropy token: enough to store it (no password stretching needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@functools.lru_cache(maxsize=16)
def purpose_key(key: str, purpose: str) -> bytes:
    """A key for one purpose, derived from the signing key: a MAC made for one use (a CSRF
    token, a device cookie) never verifies as another, nor as a JWT signature."""
    return hmac.new(key.encode(), f"studio-platform/{purpose}".encode(), hashlib.sha256).digest()


def _csrf_mac(key: str, session_id: uuid.UUID | None, nonce: str) -> str:
    message = f"{session_id or 'anon'}.{nonce}".encode()
    return hmac.new(purpose_key(key, "csrf"), message, hashlib.sha256).hexdigest()[:32]


def csrf_token(key: str, session_id: uuid.UUID | None) -> str:
    """A CSRF token bound to one session ("anon" before login): a random nonce and the MAC
    of the session id with it. Only this server can make one, and only for that session, so
    a token planted by a sibling subdomain or copied from another session does not verify
    (the known weakness of a plain double-submit cookie)."""
    nonce = secrets.token_urlsafe(18)
    return f"{nonce}.{_csrf_mac(key, session_id, nonce)}"


def csrf_token_valid(key: str, session_id: uuid.UUID | None, token: str) -> bool:
    """Whether `token` was made by csrf_token for this session (compared in constant time)."""
    nonce, dot, mac = token.partition(".")
    return bool(nonce and dot) and constant_time_equal(mac, _csrf_mac(key, session_id, nonce))


def _device_mac(key: str, email: str, nonce: str) -> str:
    message = f"{email.lower()}\n{nonce}".encode()
    return hmac.new(purpose_key(key, "known-device"), message, hashlib.sha256).hexdigest()[:32]


def device_token(key: str, email: str) -> str:
    """A "known device" token, given to a browser or client when it logs in as `email`: a
    random device id and the MAC of it with the e-mail. It carries no e-mail and grants
    nothing by itself; it only lets the login throttle tell this device from strangers."""
    nonce = secrets.token_urlsafe(12)
    return f"{nonce}.{_device_mac(key, email, nonce)}"


def known_device(key: str, email: str, token: str | None) -> str | None:
    """The device id if `token` was given on a successful login as `email`, else None."""
    if not token:
        return None
    nonce, dot, mac = token.partition(".")
    if not (nonce and dot) or not constant_time_equal(mac, _device_mac(key, email, nonce)):
        return None
    return nonce
