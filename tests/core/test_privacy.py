"""Patient data never reaches the application logs, and client-supplied ids are bounded."""

from __future__ import annotations

import logging

from flask import request
from sqlalchemy import select

from qure import create_app
from qure.core.models import OutboxEvent
from qure.extensions import db, mongo, redis_store
from tests.helpers import bearer

PATIENT = {
    "full_name": "Rukmini Ramaswamy",
    "date_of_birth": "1971-02-03",
    "sex": "F",
    "phone": "+919845012345",
    "allergies": ["Penicillin"],
}


def test_registering_and_finding_a_patient_logs_nothing_about_them(client, reception, caplog):
    headers = bearer(client, reception)
    with caplog.at_level(logging.DEBUG):
        created = client.post("/api/v1/patients", json=PATIENT, headers=headers)
        found = client.get("/api/v1/patients?q=rukmini", headers=headers)
        bad = client.post("/api/v1/patients", json={**PATIENT, "phone": "98450"}, headers=headers)

    assert created.status_code == 201
    assert found.json["total"] == 1
    assert bad.status_code == 422
    logged = caplog.text
    for secret in ("Rukmini", "Ramaswamy", "9845012345", "98450", "Penicillin", "1971-02-03"):
        assert secret not in logged


def test_an_unexpected_error_is_logged_without_its_message(app, caplog):
    """A database error's message carries the row's values; only type and frames are logged."""
    clients = (redis_store.client, mongo.client, mongo.db)
    other = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": app.config["DATABASE_URL"],
            "REDIS_URL": app.config["REDIS_URL"],
            "MONGO_URL": None,
            "SECRET_KEY": app.config["SECRET_KEY"],
        }
    )

    def explode():
        phone = request.args["phone"]  # data arrives in variables, as from a database row
        raise RuntimeError(f"Key (phone)=({phone}) already exists")

    other.add_url_rule("/api/v1/explode", "explode", explode)
    try:
        with caplog.at_level(logging.ERROR):
            response = other.test_client().get("/api/v1/explode?phone=%2B919845012345")
    finally:
        redis_store.client, mongo.client, mongo.db = clients

    assert response.status_code == 500
    assert response.json["error"]["code"] == "server_error"
    assert "9845012345" not in response.get_data(as_text=True)
    assert "unhandled RuntimeError on GET /api/v1/explode" in caplog.text
    assert "explode" in caplog.text  # the frame names where it happened
    assert "9845012345" not in caplog.text


def test_a_client_request_id_is_kept_only_when_it_looks_like_an_id(client, reception):
    headers = bearer(client, reception)
    client.post(
        "/api/v1/patients",
        json=PATIENT,
        headers={**headers, "X-Request-ID": "desk-7:42"},
    )
    client.post(
        "/api/v1/patients",
        json={**PATIENT, "phone": "+919845099999"},
        headers={**headers, "X-Request-ID": "<script>" + "x" * 300},
    )

    rows = db.session.scalars(
        select(OutboxEvent)
        .where(OutboxEvent.payload["action"].astext == "PATIENT_CREATED")
        .order_by(OutboxEvent.id)
    ).all()
    assert rows[0].payload["request_id"] == "desk-7:42"
    assert len(rows[1].payload["request_id"]) == 32  # a fresh id replaced the junk
    assert "script" not in rows[1].payload["request_id"]
