"""Threads from the median of several idle samples: a blip does not cost a whole run a core."""

import os

from fabula.train.threads import choose_threads


def _load(shares):
    """A scripted /proc/stat: the idle share of each successive window."""
    it = iter(shares)
    return lambda seconds: next(it)


def test_a_busy_blip_in_one_window_keeps_every_core(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    threads, why = choose_threads(None, measure=_load([1.0, 0.5, 1.0, 0.95, 1.0]))
    assert threads == 2 and "2 cores" in why and "1.0" in why


def test_a_core_busy_all_along_is_left_to_its_job(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert choose_threads(None, measure=_load([0.5, 0.45, 0.55, 0.5, 1.0]))[0] == 1
    assert choose_threads(None, measure=_load([0.0] * 5))[0] == 1  # never fewer than one


def test_asked_for_threads_win_without_sampling():
    assert choose_threads(3, measure=_load([])) == (3, "asked for")
