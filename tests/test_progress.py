"""Progress shows in a redirected log too: plain lines, not a bar that prints only at its end."""

import io

from rich.console import Console

from fabula.progress import StageProgress, duration


def test_plain_lines_when_stdout_is_not_a_terminal():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with StageProgress(console, "pre-train", 100, every=0, transient=False) as bar:
        for step in range(1, 101, 25):
            bar.update(step, f"loss {5 - step / 50:.2f}")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("  pre-train: 1/100 (1%), loss 4.98")
    assert "76/100 (76%)" in lines[3] and "left" in lines[3]
    assert lines[-1].startswith("  pre-train: 76/100")  # the closing line of a stage that stays on screen


def test_lines_are_spaced_in_time_and_transient_stages_close_silently():
    out = io.StringIO()
    with StageProgress(Console(file=out, force_terminal=False), "chat", 10, every=3600) as bar:
        for step in range(10):
            bar.advance()
    assert out.getvalue() == ""


def test_durations_read_at_a_glance():
    assert [duration(s) for s in (12.4, 245, 3720)] == ["12 s", "4m05s", "1h02m"]


def test_work_resumed_from_a_checkpoint_does_not_speed_up_the_estimate(monkeypatch):
    import fabula.progress as module

    now = [0.0]
    monkeypatch.setattr(module.time, "time", lambda: now[0])
    with StageProgress(None, "pre-train", 100) as bar:
        now[0] = 20.0
        bar.update(80)  # the first step after resuming at 79: twenty seconds of set-up, no work of ours
        now[0] = 30.0
        bar.update(90)  # ten steps in ten seconds
        assert bar.remaining() == 10.0
