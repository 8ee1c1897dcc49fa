"""cgroup v2 event counters, parsed without I/O."""

from ffsystemd.cgroup import parse_events, read_events


def test_flat_keyed_files_are_read_as_counters() -> None:
    assert parse_events("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n") == {
        "low": 0,
        "high": 0,
        "max": 12,
        "oom": 1,
        "oom_kill": 1,
        "oom_group_kill": 0,
    }
    assert parse_events("max 3\ngarbage\nkey value\n\n") == {"max": 3}


def test_an_unreadable_group_gives_none() -> None:
    assert read_events("/no/such/group", "pids.events") is None
    assert read_events("", "pids.events") is None
