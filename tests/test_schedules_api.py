"""Schedules through the API: CRUD, timezone validation, roles, tenants."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conftest_api import Api

pytest_plugins = ("conftest_api",)


def night(stream_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "stream_id": stream_id,
        "name": "weekend nights",
        "timezone": "Europe/Amsterdam",
        "days": ["fri", "sat"],
        "start": "23:00",
        "end": "03:00",
        **extra,
    }


def test_schedule_crud(api: Api) -> None:
    c, h = api.client, api.auth("operator")
    sid = c.post("/v1/streams", json={"name": "night"}, headers=h).json()["id"]
    r = c.post("/v1/schedules", json=night(sid), headers=h)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["days"] == ["fri", "sat"] and made["enabled"] is True
    window = made["next_window"]
    assert window["starts_at"] < window["ends_at"]
    assert c.get(f"/v1/schedules/{made['id']}", headers=h).json() == made
    r = c.patch(f"/v1/schedules/{made['id']}", json={"days": ["sun"], "enabled": False}, headers=h)
    assert r.status_code == 200 and r.json()["days"] == ["sun"] and not r.json()["enabled"]
    assert [s["id"] for s in c.get("/v1/schedules", headers=h).json()] == [made["id"]]
    assert c.delete(f"/v1/schedules/{made['id']}", headers=h).status_code == 204
    api.problem(c.get(f"/v1/schedules/{made['id']}", headers=h), 404)


def test_schedule_validation_roles_and_tenants(api: Api) -> None:
    c, h = api.client, api.auth("operator")
    sid = c.post("/v1/streams", json={"name": "night"}, headers=h).json()["id"]
    bad = api.problem(
        c.post("/v1/schedules", json=night(sid, timezone="Mars/Base"), headers=h), 422
    )
    assert bad["errors"][0]["field"] == "body.timezone"
    api.problem(c.post("/v1/schedules", json=night(sid, start="25:00"), headers=h), 422)
    api.problem(c.post("/v1/schedules", json=night(sid, end="23:00"), headers=h), 422)
    api.problem(c.post("/v1/schedules", json=night(sid, days=["someday"]), headers=h), 422)
    api.problem(c.post("/v1/schedules", json=night("nope"), headers=h), 404)
    api.problem(c.post("/v1/schedules", json=night(sid), headers=api.auth("supervisor")), 403)
    api.problem(c.get("/v1/schedules", headers=api.auth("backend")), 403)
    api.problem(c.post("/v1/schedules", json=night(sid), headers=api.other), 404)
    made = c.post("/v1/schedules", json=night(sid), headers=h).json()
    api.problem(c.get(f"/v1/schedules/{made['id']}", headers=api.other), 404)
    api.problem(c.patch(f"/v1/schedules/{made['id']}", json={"end": "23:00"}, headers=h), 422)
    # deleting the stream deletes its schedules
    assert c.delete(f"/v1/streams/{sid}", headers=h).status_code == 204
    assert c.get("/v1/schedules", headers=h).json() == []
