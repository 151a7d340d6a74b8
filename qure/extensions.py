"""Extension objects, created once and bound to the app in `create_app`."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import flask_sqlalchemy.session
import mongomock
import redis
from flask import Flask, current_app
from flask_jwt_extended import JWTManager
from flask_jwt_extended.config import config as jwt_config
from flask_jwt_extended.exceptions import JWTDecodeError
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_pymongo import PyMongo
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


class QureSession(flask_sqlalchemy.session.Session):
    """Flask-SQLAlchemy's session, but an explicit `bind` wins.

    The test suite binds the session to a connection holding an outer transaction that
    is rolled back after each test; Flask-SQLAlchemy would otherwise pick the engine.
    """

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        if bind is None and self.bind is not None:
            return self.bind
        return super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)


# Sessions live for one request or job: after the commit, the objects just written are
# what the answer shows, so reloading them (expire_on_commit) would only cost a query.
db = SQLAlchemy(
    model_class=Base, session_options={"class_": QureSession, "expire_on_commit": False}
)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()


class QureJWTManager(JWTManager):
    """Flask-JWT-Extended, remembering the tokens it has verified.

    Flask-JWT-Extended decodes a token three times per request (twice unverified, once
    with the HMAC: a few per cent of a request's CPU), and a client sends the same token
    with every request. A verified
    token's claims are kept, per signing key, for as long as the token is valid: a hit
    past its `exp` is dropped and decoded again, so an expired token is refused exactly
    as before. Revocation is not decided here: the user lookup checks `ver` and
    `is_active` on every request.
    """

    CACHE_SIZE = 4096

    def __init__(self, app: Flask | None = None, add_context_processor: bool = False) -> None:
        self._verified: dict[tuple, dict] = {}
        self._lock = threading.Lock()
        super().__init__(app, add_context_processor)

    def _decode_jwt_from_config(
        self, encoded_token: str, csrf_value=None, allow_expired: bool = False
    ) -> dict:
        key = (current_app.config["JWT_SECRET_KEY"], encoded_token, csrf_value)
        claims = self._verified.get(key)
        if claims is not None:
            # PyJWT's own rule: expired once `exp` is at or before now minus the leeway.
            leeway = jwt_config.leeway
            if isinstance(leeway, timedelta):
                leeway = leeway.total_seconds()
            if allow_expired or time.time() - leeway < claims["exp"]:
                return dict(claims)
            self._verified.pop(key, None)
        claims = super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
        if "exp" not in claims:
            # Correctly signed but never expiring: it would grant access for ever.
            raise JWTDecodeError("Missing claim: exp")
        if not allow_expired:
            with self._lock:
                if len(self._verified) >= self.CACHE_SIZE:
                    self._verified.clear()
                self._verified[key] = dict(claims)
        return claims


jwt = QureJWTManager()


class MongoStore:
    """The document store: Flask-PyMongo on a real MongoDB, mongomock without MONGO_URL.

    Only the outbox relay, the read models and `/health` talk to it; no request that
    changes state waits on MongoDB.
    """

    def __init__(self) -> None:
        self.embedded = False
        self._pymongo = PyMongo()
        self.client = None
        self.db = None

    def init_app(self, app: Flask) -> None:
        url = app.config.get("MONGO_URL")
        name = app.config["MONGO_DB_NAME"]
        timeout = app.config["MONGO_TIMEOUT_MS"]
        if url:
            self._pymongo.init_app(
                app,
                uri=url,
                serverSelectionTimeoutMS=timeout,
                connectTimeoutMS=timeout,
                socketTimeoutMS=timeout * 3,
                tz_aware=True,
            )
            self.client = self._pymongo.cx
            self.db = self.client[name]
            self.embedded = False
        else:
            self.use_client(mongomock.MongoClient(tz_aware=True), name, embedded=True)

    def use_client(self, client, name: str, embedded: bool) -> None:
        """Point the store at another client (embedded mode, and the outage tests)."""
        self.client = client
        self.db = client[name]
        self.embedded = embedded


mongo = MongoStore()


class RedisHolder:
    """A lazily bound Redis client shared by the queue, throttling and RQ."""

    client: redis.Redis | None = None

    def init_app(self, app: Flask) -> None:
        self.client = redis.Redis.from_url(
            app.config["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2
        )


redis_store = RedisHolder()
