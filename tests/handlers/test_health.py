"""GET /firefox-launcher/api/health, and authentication/authorization/XSRF on every route."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from fakes.dbus_world import FakeSystemd
from jupyter_server.base.handlers import JupyterHandler

from ffsystemd.handlers import CleanupHandler, FirefoxHandler, HealthHandler

from .conftest import (
    CLEANUP_ROUTE,
    FIREFOX_ROUTE,
    HEALTH_ROUTE,
    Api,
    RecordingAuthorizer,
    process_alive,
    session_dirs,
)
from .test_firefox import assert_error, launched

CHECK_NAMES = ["user_bus", "user_manager", "delegated_controllers", "xpra", "xpra_html5", "firefox"]
VERDICTS = {"ok", "warning", "error"}


def checks_of(reply: Any) -> dict[str, dict[str, Any]]:
    assert reply.code == 200, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    report = reply.json
    checks = report["checks"]
    assert [c["name"] for c in checks] == CHECK_NAMES
    for check in checks:
        assert check["verdict"] in VERDICTS, check
        assert isinstance(check["detail"], str) and check["detail"], check
        assert isinstance(check["hint"], str), check
    verdicts = {c["verdict"] for c in checks}
    expected = "error" if "error" in verdicts else "warning" if "warning" in verdicts else "ok"
    assert report["verdict"] == expected
    return {c["name"]: c for c in checks}


# --- health ----------------------------------------------------------------------------------------------
async def test_health_reports_every_check(api: Api, fake_systemd: FakeSystemd) -> None:
    checks = checks_of(await api.health())
    assert checks["user_bus"]["verdict"] == "ok"
    assert fake_systemd.address in checks["user_bus"]["detail"]
    assert checks["user_manager"]["verdict"] == "ok"
    assert "252-fake" in checks["user_manager"]["detail"]
    # Read from this host's cgroup tree at the fake's ControlGroup: the verdict depends on the host.
    controllers = checks["delegated_controllers"]
    if controllers["verdict"] != "ok":
        assert controllers["hint"] or "cannot read" in controllers["detail"], controllers
    assert checks["xpra"] == {"name": "xpra", "verdict": "ok", "detail": sys.executable, "hint": ""}
    assert checks["firefox"] == {"name": "firefox", "verdict": "ok", "detail": "/bin/true", "hint": ""}
    for check in checks.values():
        if check["verdict"] == "error" and check["name"] != "delegated_controllers":
            assert check["hint"], check


@pytest.mark.launcher(bus_address="unix:path=/nonexistent/bus")
async def test_health_without_a_user_bus(api: Api) -> None:
    checks = checks_of(await api.health())
    bus = checks["user_bus"]
    assert bus["verdict"] == "error"
    assert "/nonexistent/bus" in bus["detail"]
    assert "DBUS_SESSION_BUS_ADDRESS" in bus["hint"]
    assert checks["user_manager"]["verdict"] == "error"
    assert checks["delegated_controllers"]["verdict"] == "error"
    assert checks["firefox"]["verdict"] == "ok"
    assert (await api.health()).json["verdict"] == "error"


async def test_health_without_a_user_manager_is_an_error(api: Api, fake_systemd: FakeSystemd) -> None:
    fake_systemd.kill_manager()
    checks = checks_of(await api.health())
    assert checks["user_manager"]["verdict"] == "error"
    assert checks["delegated_controllers"]["verdict"] == "error"
    assert (await api.health()).json["verdict"] == "error"


async def test_health_blames_the_user_manager_when_only_the_manager_is_missing(
    api: Api, fake_systemd: FakeSystemd
) -> None:
    fake_systemd.kill_manager()  # the bus answers, nobody owns org.freedesktop.systemd1
    checks = checks_of(await api.health())
    assert checks["user_bus"]["verdict"] == "ok", checks["user_bus"]
    manager = checks["user_manager"]
    assert manager["verdict"] == "error"
    assert "systemctl" in manager["hint"]


# --- authentication --------------------------------------------------------------------------------------
ROUTES = [
    ("POST", FIREFOX_ROUTE, "{}"),
    ("GET", FIREFOX_ROUTE, None),
    ("HEAD", FIREFOX_ROUTE, None),
    ("POST", CLEANUP_ROUTE, json.dumps({"all": True})),
    ("GET", HEALTH_ROUTE, None),
]
ROUTE_IDS = [f"{method}-{route[-1]}" for method, route, _ in ROUTES]


def route_url(base_url: str, route: tuple[str, ...]) -> str:
    return base_url + "/".join(route)


@pytest.mark.parametrize(("method", "route", "body"), ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("auth", ["none", "wrong-token"])
async def test_every_route_needs_authentication(
    api: Api,
    http_server_client: Any,
    jp_base_url: str,
    fake_systemd: FakeSystemd,
    session_root: Any,
    method: str,
    route: tuple[str, ...],
    body: str | None,
    auth: str,
) -> None:
    session = await launched(api)
    headers = {"Authorization": "token not-the-token"} if auth == "wrong-token" else {}
    response = await http_server_client.fetch(
        route_url(jp_base_url, route), method=method, body=body, headers=headers, raise_error=False
    )
    assert response.code == 403, response.body
    assert "Set-Cookie" not in response.headers or "username-" not in response.headers["Set-Cookie"]
    assert fake_systemd.call_count("StartTransientUnit") == 1
    assert fake_systemd.call_count("StopUnit") == 0
    assert process_alive(session["main_pid"])
    assert session_dirs(session_root) == [f"session-{session['id']}"]
    assert (await api.cleanup(id=session["id"])).code == 200


async def _login_cookie(api: Api) -> str:
    """The login cookie the server sets on a token-authenticated request."""
    reply = await api.call("GET", FIREFOX_ROUTE)
    cookies = [c.split(";", 1)[0] for c in reply.headers.get_list("Set-Cookie") if c.startswith("username-")]
    assert len(cookies) == 1, reply.headers
    return cookies[0]


async def test_cookie_authenticated_post_needs_the_xsrf_token(
    api: Api, http_server_client: Any, jp_base_url: str, fake_systemd: FakeSystemd, session_root: Any
) -> None:
    cookie = await _login_cookie(api)
    url = route_url(jp_base_url, FIREFOX_ROUTE)
    # The cookie authenticates: a GET with it alone is fine.
    response = await http_server_client.fetch(url, headers={"Cookie": cookie}, raise_error=False)
    assert response.code == 200 and json.loads(response.body) == {"sessions": []}
    # A state-changing request with the cookie but without the XSRF token is refused.
    for route, body in ((FIREFOX_ROUTE, "{}"), (CLEANUP_ROUTE, json.dumps({"all": True}))):
        response = await http_server_client.fetch(
            route_url(jp_base_url, route),
            method="POST",
            body=body,
            headers={"Cookie": cookie},
            raise_error=False,
        )
        assert response.code == 403, response.body
        assert "_xsrf" in json.loads(response.body)["message"]
    # A wrong XSRF token is refused too.
    response = await http_server_client.fetch(
        url,
        method="POST",
        body="{}",
        headers={"Cookie": f"{cookie}; _xsrf=0123abcd", "X-XSRFToken": "4567ef01"},
        raise_error=False,
    )
    assert response.code == 403, response.body
    assert fake_systemd.call_count("StartTransientUnit") == 0
    assert session_dirs(session_root) == []
    # With the matching XSRF cookie and header the same request starts a session.
    response = await http_server_client.fetch(
        url,
        method="POST",
        body="{}",
        headers={"Cookie": f"{cookie}; _xsrf=0123abcd", "X-XSRFToken": "0123abcd"},
        raise_error=False,
    )
    assert response.code == 201, response.body
    session = json.loads(response.body)
    # ...and a cleanup without the token cannot stop it.
    response = await http_server_client.fetch(
        route_url(jp_base_url, CLEANUP_ROUTE),
        method="POST",
        body=json.dumps({"id": session["id"]}),
        headers={"Cookie": cookie},
        raise_error=False,
    )
    assert response.code == 403
    assert process_alive(session["main_pid"])
    assert fake_systemd.call_count("StopUnit") == 0
    assert (await api.cleanup(id=session["id"])).code == 200


def test_handlers_keep_jupyters_xsrf_check() -> None:
    for handler in (FirefoxHandler, CleanupHandler, HealthHandler):
        assert handler.check_xsrf_cookie is JupyterHandler.check_xsrf_cookie, handler


# --- authorization ---------------------------------------------------------------------------------------
@pytest.mark.serverapp(authorizer_class=RecordingAuthorizer)
async def test_authorizer_is_asked_for_resource_ffsystemd(
    api: Api, recording_authorizer: type[RecordingAuthorizer], fake_systemd: FakeSystemd, session_root: Any
) -> None:
    recording_authorizer.allowed = {"read"}
    assert (await api.call("GET", FIREFOX_ROUTE)).code == 200
    assert (await api.head()).code == 200
    assert (await api.health()).code == 200
    assert_error(await api.launch(), 403)
    assert_error(await api.cleanup(all=True), 403)
    assert fake_systemd.call_count("StartTransientUnit") == 0
    assert session_dirs(session_root) == []
    ours = [seen for seen in recording_authorizer.seen if seen[1] == "ffsystemd"]
    assert ours == [("read", "ffsystemd")] * 3 + [("write", "ffsystemd")] * 2
    recording_authorizer.allowed = {"read", "write"}
    session = await launched(api)
    assert (await api.cleanup(id=session["id"])).code == 200


async def test_health_says_the_pool_is_empty_without_one(api: Api) -> None:
    assert (await api.health()).json["pool"] == {"size": 0, "ready": 0, "starting": 0}


async def test_health_reports_the_pools_counts(
    api: Api, manager: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the pool counts (tests/test_pool.py) is what health says, with the configured size."""
    monkeypatch.setattr(manager.pool, "counts", lambda: {"ready": 1, "starting": 2})
    assert (await api.health()).json["pool"] == {"size": 0, "ready": 1, "starting": 2}
