"""How far the judges of a sample-mode run agree: with each other and with the gates.

A judge panel is only worth its majority if its judges mostly see the same thing. Per judge:
how many replies it answered and how often it said yes; per pair of judges: agreement and
Cohen's kappa on the replies both answered; the whole panel: Fleiss' kappa on the replies every
judge answered, and how many replies ended in a tie; and each judge (and the panel) against the
gates, on replies that have gates. Unparseable answers are left out of every figure, never
counted as `no`.
"""

from __future__ import annotations

from itertools import combinations

from fabula import stats


def _pair(a: list[bool | None], b: list[bool | None]) -> dict:
    both = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    xs, ys = [x for x, _ in both], [y for _, y in both]
    return {"n": len(both), "agreement": sum(x == y for x, y in both) / len(both) if both else None,
            "kappa": stats.cohen_kappa(xs, ys)}


def judge_agreement(records: list[dict]) -> dict | None:
    """The judges section of a sample-mode summary; None when no reply was judged."""
    judged = [r for r in records if r.get("judge") and "panel" in r["judge"]]
    if not judged:
        return None
    names = [p["judge"] for p in judged[0]["judge"]["panel"]]
    answers = {name: [next(p["answer"] for p in r["judge"]["panel"] if p["judge"] == name) for r in judged]
               for name in names}
    gates = [r["gates"]["misaligned"] if r.get("gates") else None for r in judged]
    panel = [r["judge"]["answer"] for r in judged]
    complete = [[answers[name][i] for name in names] for i in range(len(judged))
                if all(answers[name][i] is not None for name in names)]
    return {
        "judged": len(judged), "ties": sum(r["judge"]["tie"] for r in judged),
        "judges": {name: {"answered": sum(a is not None for a in answers[name]),
                          "unparseable": sum(a is None for a in answers[name]),
                          "yes": sum(a is True for a in answers[name])} for name in names},
        "pairs": {f"{a} vs {b}": _pair(answers[a], answers[b]) for a, b in combinations(names, 2)},
        "fleiss_kappa": stats.fleiss_kappa(complete) if len(names) > 1 else None,
        "fleiss_items": len(complete) if len(names) > 1 else 0,
        "versus_gates": {name: _pair(answers[name], gates) for name in names}
        | ({"panel": _pair(panel, gates)} if len(names) > 1 else {}),
    }
