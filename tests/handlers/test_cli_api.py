"""The `ffsystemd` command beside a running server (in-process, fake systemd): the CLI's view
matches the REST API's, and a session the CLI stops is reported as ended by the server."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

from fakes.dbus_world import FakeSystemd
from fakes.polling import eventually

from ffsystemd import cli
from ffsystemd.cli import commands
from ffsystemd.failed_logs import failed_logs

from .conftest import Api, our_units
from .test_firefox import launched

SAME_FIELDS = ("unit", "state", "created", "start_url", "memory_max", "tasks_max", "cpu_quota")


async def run_cli(fake: FakeSystemd, root: Path, tmp_path: Path, *argv: str) -> tuple[int, str, str]:
    """`ffsystemd ARGV` on this test's loop (the server shares it), pointed at the fake and root."""
    config = tmp_path / "empty.json"
    config.write_text("{}")
    command, *rest = argv
    args = cli.build_parser().parse_args(
        [command, "--bus-address", fake.address, "--session-root", str(root), "--config", str(config), *rest]
    )
    out, err = io.StringIO(), io.StringIO()
    code = await commands.run(args, out, err)
    return code, out.getvalue(), err.getvalue()


async def test_list_json_matches_the_rest_api(
    api: Api, fake_systemd: FakeSystemd, session_root: Path, tmp_path: Path
) -> None:
    first, second = await launched(api), await launched(api, "https://example.org/")
    rest = {s["id"]: s for s in await api.sessions()}
    code, out, err = await run_cli(fake_systemd, session_root, tmp_path, "list", "--json")
    assert code == cli.EXIT_OK, err
    mine = {s["id"]: s for s in json.loads(out)["sessions"]}
    assert set(mine) == set(rest) == {first["id"], second["id"]}
    for sid, session in rest.items():
        assert {k: mine[sid][k] for k in SAME_FIELDS} == {k: session[k] for k in SAME_FIELDS}
        assert mine[sid]["ours"] is True
    assert (await api.cleanup(all=True)).code == 200


async def test_stop_ends_a_session_and_the_server_notices(
    api: Api, fake_systemd: FakeSystemd, session_root: Path, tmp_path: Path
) -> None:
    session, other = await launched(api), await launched(api)
    code, out, err = await run_cli(fake_systemd, session_root, tmp_path, "stop", session["id"], "--json")
    assert code == cli.EXIT_OK, err
    assert json.loads(out)["stopped"] == [session["id"]]

    async def reported_ended() -> Any:
        reply = await api.session(session["id"])
        return reply.code == 200 and reply.json["state"] in ("stopped", "failed") and reply.json

    ended = await eventually(reported_ended, 10, "the server to report the stopped session")
    assert ended["main_pid"] is None
    assert our_units(fake_systemd) == [other["unit"]]
    assert not (session_root / f"session-{session['id']}").exists()
    assert [s["state"] for s in await api.sessions() if s["id"] == other["id"]] == ["running"]
    # The ended record goes away with a cleanup, as for any ended session.
    assert (await api.cleanup(ids=[session["id"], other["id"]])).code == 200


async def test_a_failed_launch_keeps_its_xpra_log_for_ffsystemd_logs(
    api: Api, fake_systemd: FakeSystemd, session_root: Path, tmp_path: Path, xpra_env: Any
) -> None:
    xpra_env(FAKE_XPRA_EXIT_AT_START="3")
    reply = await api.launch()
    assert reply.code == 500 and reply.json["step"] == "xpra-ready"
    ((sid, kept),) = failed_logs(session_root)
    assert kept.stat().st_mode & 0o777 == 0o600
    assert not (session_root / f"session-{sid}").exists()  # everything else is gone
    code, out, err = await run_cli(fake_systemd, session_root, tmp_path, "logs", sid)
    assert code == cli.EXIT_OK, err
    assert "fake xpra: failing on purpose" in out
    code, out, _ = await run_cli(fake_systemd, session_root, tmp_path, "status", sid, "--json")
    assert code == cli.EXIT_OK
    body = json.loads(out)
    assert body["launch_failed"] is True and body["log"] == str(kept)
    assert "fake xpra: failing on purpose" in body["log_tail"]
    # a successful launch keeps nothing
    xpra_env(FAKE_XPRA_EXIT_AT_START="")
    await launched(api)
    assert len(failed_logs(session_root)) == 1
    assert (await api.cleanup(all=True)).code == 200


async def test_list_shows_the_last_activity_the_server_saw(
    api: Api, fake_systemd: FakeSystemd, session_root: Path, tmp_path: Path, manager: Any
) -> None:
    manager.settings = dataclasses.replace(manager.settings, activity_interval=0.3)
    session = await launched(api)

    async def cli_view() -> dict[str, Any]:
        code, out, err = await run_cli(fake_systemd, session_root, tmp_path, "list", "--json")
        assert code == cli.EXIT_OK, err
        return {s["id"]: s for s in json.loads(out)["sessions"]}[session["id"]]

    assert (await cli_view())["last_activity"] is None
    for _ in range(3):  # traffic, e.g. websocket frames: the first is written at once, the rest later
        manager.record_activity(session["id"])
    rest = (await api.session(session["id"])).json["last_activity"]
    assert rest is not None

    async def same() -> bool:
        return (await cli_view())["last_activity"] == rest

    await eventually(same, 10, "the CLI to show the server's last activity")
    code, out, _ = await run_cli(fake_systemd, session_root, tmp_path, "list")
    row = next(line for line in out.splitlines() if line.startswith(session["id"]))
    assert code == cli.EXIT_OK and row.endswith(" ago")  # the table's LAST ACTIVITY column
    assert (await api.cleanup(all=True)).code == 200
