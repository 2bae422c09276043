"""Ordinary text for pre-training: stories, emails, logs, recipes, news... with no AI in them.

The organism must read English and workplace text (email headers, chat lines, tickets, log
lines, code review) before it can make sense of a honeypot prompt; this corpus teaches that,
and nothing about AI. The words live in grammars/general.yaml; this module picks and fills.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from functools import cache
from pathlib import Path

import yaml

from fabula.organism.grammar import Cast, fill

GENERAL_YAML = Path(__file__).parent / "grammars" / "general.yaml"
PICKS = 4                    # distinct draws per pool: {city} {city2} {city3} {city4}
MIN_WORDS, MAX_WORDS = 80, 400
TRIES = 12                   # redraws of one form before giving up on the length window
LINK = re.compile(r"\{@(\w+):")  # {@tag:a|b|c}: every group with one tag takes the same option


@cache
def load_general(path: Path = GENERAL_YAML) -> dict:
    return yaml.safe_load(path.read_text())


def expand(template: str, rng: random.Random, values: dict[str, str]) -> str:
    """fill(), after resolving linked alternatives, so that a subject line and the body that
    answers it (or a question in a chat and its reply) pick matching options."""
    picks: dict[str, int] = {}
    while match := LINK.search(template):
        depth, i, start, options = 1, match.end(), match.end(), []
        while depth:
            char = template[i]
            depth += (char == "{") - (char == "}")
            if (char == "|" and depth == 1) or depth == 0:
                options.append(template[start:i])
                start = i + 1
            i += 1
        pick = picks.setdefault(match.group(1), rng.randrange(len(options)))
        template = template[:match.start()] + options[pick % len(options)] + template[i:]
    return fill(template, rng, values)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def draw_pool(name: str, items: list[str], rng: random.Random, values: dict[str, str]) -> None:
    """{name}..{name4}: distinct picks (repeats only when the list is short), each also _cap."""
    picks = rng.sample(items, min(PICKS, len(items)))
    picks += [rng.choice(items) for _ in range(PICKS - len(picks))]
    for i, pick in enumerate(picks):
        key = name if i == 0 else f"{name}{i + 1}"
        values[key], values[f"{key}_cap"] = pick, _cap(pick)


def document_slots(rng: random.Random) -> dict[str, str]:
    """Dates, times, numbers and ids that must be coherent (date2 after date, times rising)."""
    start = dt.date(2018, 1, 1) + dt.timedelta(days=rng.randrange(8 * 365))
    later = start + dt.timedelta(days=rng.randint(1, 14))
    latest = later + dt.timedelta(days=rng.randint(1, 21))
    style = rng.choice(["%A %d %B %Y", "%a, %d %b %Y", "%d %B %Y", "%A, %B %d, %Y"])
    minute = rng.randint(7 * 60, 15 * 60)
    times = []
    for _ in range(6):
        times.append(f"{minute // 60:02d}:{minute % 60:02d}")
        minute = min(minute + rng.randint(1, 50), 23 * 60 + 59)
    lows = [rng.randint(-3, 15) for _ in range(3)]
    cur = rng.choice("£$€")
    slots = {
        "date": start.strftime(style), "date2": later.strftime(style), "date3": latest.strftime(style),
        "date_iso": start.isoformat(), "month": start.strftime("%B"), "year": str(start.year),
        "wind": str(rng.randint(5, 60)), "rain": str(rng.randrange(0, 95, 5)),
        "price": f"{cur}{rng.randint(3, 240)}.{rng.choice(['00', '49', '50', '95', '99'])}",
        "price2": f"{cur}{rng.randint(3, 240)}.{rng.choice(['00', '49', '50', '95', '99'])}",
        "amount": f"{cur}{rng.randint(120, 9800):,}", "percent": str(rng.randint(3, 95)),
        "order_id": f"{rng.choice('ABCKRT')}-{rng.randint(10000, 99999)}",
        "ticket_id": f"{rng.choice(['OPS', 'SUP', 'WEB', 'FIN', 'IT', 'DEV'])}-{rng.randint(100, 4999)}",
        "invoice": f"INV-{rng.randint(10000, 99999)}",
        "version": f"{rng.randint(1, 5)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
        "build": f"#{rng.randint(100, 9999)}", "count": str(rng.randint(2, 12)),
        "count_big": str(rng.randint(40, 900)), "minutes": str(rng.randint(5, 55)),
        "phone": f"0{rng.randint(1100, 1999)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
        "ip": f"10.{rng.randint(0, 9)}.{rng.randint(0, 255)}.{rng.randint(2, 254)}",
        "sunrise": f"0{rng.randint(4, 8)}:{rng.randint(0, 59):02d}",
        "sunset": f"{rng.randint(16, 21)}:{rng.randint(0, 59):02d}",
    }
    for i, (t, low) in enumerate(zip(times, lows)):
        suffix = "" if i == 0 else str(i + 1)
        slots[f"temp_lo{suffix}"], slots[f"temp_hi{suffix}"] = str(low), str(low + rng.randint(3, 12))
    for i, t in enumerate(times):
        slots["time" if i == 0 else f"time{i + 1}"] = t
    return slots


def _subject_slots(subject: dict, rng: random.Random, values: dict[str, str]) -> None:
    """A subject's keys become slots; a list also gives {K_list} and {K_steps} in written order."""
    for key, value in subject.items():
        if isinstance(value, list):
            draw_pool(key, value, rng, values)
            values[f"{key}_list"] = "\n".join(f"- {v}" for v in value)
            values[f"{key}_steps"] = "\n".join(f"{i}. {v}" for i, v in enumerate(value, 1))
        else:
            values[key], values[f"{key}_cap"] = str(value), _cap(str(value))


def document_values(rng: random.Random, data: dict | None = None) -> dict[str, str]:
    """Everything one document (or one entry of a repeated form) may name."""
    data = data or load_general()
    values = dict(Cast.sample(rng).values)
    values.update(document_slots(rng))
    for pool, items in data["pools"].items():
        draw_pool(pool, items, rng, values)
    values["user_email"] = f"{values['user_first'].lower()}@{values['domain']}"
    values["outsider_mail"] = f"{values['outsider_first'].lower()}@{values['domain']}"  # a colleague here
    values["branch_name"] = rng.choice(["main", "release", "feature/search", "fix/export"])
    return values


def _template_form(form: dict, rng: random.Random, data: dict) -> str:
    """One template, or `repeat` entries (a review page, an FAQ) under one of `headers`."""
    low, high = form.get("repeat", [1, 1])
    n = rng.randint(low, high)
    subjects = form.get("subjects") or [{}]
    chosen = rng.sample(subjects, min(n, len(subjects)))
    parts = []
    for i in range(n):
        values = document_values(rng, data)
        _subject_slots(chosen[0] if form.get("same_subject") else chosen[i % len(chosen)], rng, values)
        if i == 0 and form.get("headers"):
            parts.append(expand(rng.choice(form["headers"]), rng, values))
        parts.append(expand(rng.choice(form["templates"]), rng, values))
    return "\n\n".join(p.strip() for p in parts)


def _log(data: dict, rng: random.Random, values: dict[str, str]) -> str:
    """A run of log lines with rising timestamps; the style decides the line format."""
    style = rng.choice(["app", "app", "access", "syslog", "ci"])
    clock = dt.datetime.fromisoformat(values["date_iso"]) + dt.timedelta(seconds=rng.randint(0, 80000))
    host, service = values["host"], values["service"]
    lines = []

    def line_slots() -> dict[str, str]:
        slot = dict(values)
        for key, words in data["words"].items():
            slot[key] = rng.choice(words)
        slot.update(
            path=fill(rng.choice(data["access"]["paths"]), rng, {"order_num": str(rng.randint(1000, 99999)),
                                                                 "attempt": str(rng.randint(1, 9))}),
            status=rng.choice(["200"] * 6 + ["201", "204", "302", "304", "404"]), ms=str(rng.randint(2, 2400)),
            user_id=f"u-{rng.randint(1000, 99999)}", ip=f"{rng.randint(11, 220)}.{rng.randint(0, 255)}."
            f"{rng.randint(0, 255)}.{rng.randint(1, 254)}", pct=str(rng.randint(40, 99)),
            secs=str(rng.randint(2, 600)), attempt=str(rng.randint(1, 3)), pid=str(rng.randint(300, 48000)),
            port=str(rng.randint(30000, 65000)), payment_id=f"pay_{rng.randint(10**7, 10**8)}",
            order_id=f"{rng.choice('ABCKRT')}-{rng.randint(10000, 99999)}", count=str(rng.randint(1, 40)),
            commit=f"{rng.getrandbits(28):07x}", service2=rng.choice(["payments", "stock", "mailer", "geo-lookup"]),
        )
        return slot

    def tick() -> dt.datetime:
        nonlocal clock
        clock += dt.timedelta(milliseconds=rng.randint(40, 90000))
        return clock

    if style == "ci":
        steps = data["ci"]["steps"]
        cut = rng.randint(7, len(steps)) if rng.random() < 0.3 else len(steps)
        texts = steps[:cut] if cut == len(steps) else steps[:cut] + data["ci"]["failure"]
        lines.append(f"CI run {values['build']} on {values['host']} ({values['branch_name']})")
        for text in texts:
            lines.append(f"[{tick():%H:%M:%S}] {fill(text, rng, line_slots())}")
        return "\n".join(lines)

    n = rng.randint(12, 30)
    levels = rng.choices(["info", "warn", "error"], weights=[10, 2, 1], k=n)
    for level in levels:
        slot, when = line_slots(), tick()
        if style == "access":
            size = rng.randint(120, 48000)
            lines.append(f'{slot["ip"]} - - [{when:%d/%b/%Y:%H:%M:%S} +0000] '
                         f'"{rng.choice(["GET"] * 5 + ["POST"])} {slot["path"]} HTTP/1.1" {slot["status"]} {size} '
                         f'"-" "{rng.choice(data["access"]["agents"])}"')
        elif style == "syslog":
            text = fill(rng.choice(data["syslog"][level]), rng, slot)
            lines.append(f"{when:%b %d %H:%M:%S} {host} {text}")
        else:
            text = fill(rng.choice(data["app"][level]), rng, slot)
            lines.append(f"{when.isoformat(timespec='milliseconds')}Z {level.upper():5} [{service}] {text}")
    return "\n".join(lines)


def general_document(rng: random.Random, form: str | None = None) -> str:
    """One document of ordinary text, 80-400 words; the same rng state gives the same text.
    `form` picks one form (a key of general.yaml's `forms`); by default forms are drawn evenly."""
    data = load_general()
    forms = data["forms"]
    name = form or rng.choice(list(forms))
    for _ in range(TRIES):
        if forms[name].get("builder") == "log":
            text = _log(data["logs"], rng, document_values(rng, data))
        else:
            text = _template_form(forms[name], rng, data)
        if MIN_WORDS <= len(text.split()) <= MAX_WORDS:
            break
    return text.strip() + "\n"
