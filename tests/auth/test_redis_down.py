"""Sign-in while Redis, which counts the attempts, does not answer: a clear 503 on the API
and the sign-in page, never a 500; staff already signed in keep working."""

from __future__ import annotations

import pytest

from qure.extensions import redis_store
from tests.helpers import PASSWORD, bearer, dead_redis, error, form_post, page_text


@pytest.fixture
def redis_down():
    saved = redis_store.client
    redis_store.client = dead_redis()
    yield
    redis_store.client = saved


def test_signing_in_with_redis_down_is_a_clear_503(client, reception, redis_down):
    answer = client.post(
        "/api/v1/auth/login", json={"username": reception.username, "password": PASSWORD}
    )
    body = error(answer, 503, "sign_in_unavailable")
    assert "try again shortly" in body["message"]
    page = form_post(client, "/login", {"username": reception.username, "password": PASSWORD})
    assert page.status_code == 503
    assert "Sign-in is unavailable for a moment" in page_text(page)


def test_a_token_issued_before_redis_went_down_still_works(client, reception):
    headers = bearer(client, reception)
    saved = redis_store.client
    redis_store.client = dead_redis()
    try:
        assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
    finally:
        redis_store.client = saved
