from tests.helpers import bearer, make_patient, sign_in


def test_reception_signs_in_and_finds_a_patient(client, reception):
    make_patient(reception, full_name="Zoë Fernandes")
    sign_in(client, reception)
    page = client.get("/patients/?q=zoe")
    assert page.status_code == 200
    assert "Zoë Fernandes" in page.get_data(as_text=True)


def test_api_search(client, reception):
    make_patient(reception, full_name="Ravi Shankar")
    response = client.get("/api/v1/patients?q=shank", headers=bearer(client, reception))
    assert response.status_code == 200
    assert [p["full_name"] for p in response.json["items"]] == ["Ravi Shankar"]
