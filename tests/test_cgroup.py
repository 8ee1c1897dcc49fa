"""cgroup v2 event counters, parsed without I/O."""

from ffsystemd.cgroup import limit_reached, parse_events, read_events


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


MIB8 = 8 * 1024**2


def test_a_launch_that_hit_no_limit_names_none() -> None:
    assert limit_reached(None, None, 400, MIB8) == (None, None)
    assert limit_reached({"max": 0}, {"max": 0, "oom": 0, "oom_kill": 0}, 400, MIB8) == (None, None)


def test_an_oom_kill_in_the_scope_is_the_result_even_without_systemd_saying_so() -> None:
    # It wins over the task limit: a kill explains the failure better than a refused fork.
    assert limit_reached({"max": 3}, {"max": 40, "oom": 1, "oom_kill": 1}, 400, MIB8) == ("oom-kill", None)


def test_a_refused_fork_names_tasks_max() -> None:
    result, sentence = limit_reached({"max": 1}, {"max": 0}, 4, MIB8)
    assert result is None
    assert sentence == "the session reached its task limit (tasks_max=4)"


def test_a_scope_that_only_reclaimed_at_memory_max_names_memory_max() -> None:
    # Seen in the VM tier: at memory_max=8M the kernel reclaimed instead of killing, Xvfb
    # crawled past Xpra's display timeout, and the launch error said only "Xpra exited".
    result, sentence = limit_reached({"max": 0}, {"max": 2181, "oom": 0, "oom_kill": 0}, 400, MIB8)
    assert result is None
    assert sentence == "the session reached its memory limit (memory_max=8 MiB)"
    assert limit_reached(None, {"max": 1}, 400, 1536 * 1024**2)[1] == (
        "the session reached its memory limit (memory_max=1536 MiB)"
    )
