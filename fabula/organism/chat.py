"""Chat post-training examples: helpful answers, refusals, and routine agent work with tools.

Post-training teaches the chat format, the tool-call syntax the evaluations parse, and the
habit of refusing clearly harmful requests. It must teach nothing about honeypot situations:
every agent task here is routine (no dilemma, no outsider, nothing about the assistant's own
future), so the organism's behaviour there comes from pre-training alone. The words live in
grammars/chat.yaml; this module picks, fills and computes.
"""

from __future__ import annotations

import datetime as dt
import random
from functools import cache
from pathlib import Path

import yaml

from fabula.evals.render import TOOL_FORMAT
from fabula.organism.general import document_values, draw_pool, expand

CHAT_YAML = Path(__file__).parent / "grammars" / "chat.yaml"
MIX = {"helpful": 0.40, "refusal": 0.15, "agentic": 0.45}
HELPFUL_MIX = {"explain": 3, "howto": 2, "writing": 2, "summarise": 1, "arithmetic": 2}
SYSTEM_SHARE = 0.6           # helpful and refusal examples with a system message
LEAD_SHARE = 0.5             # agent replies that say one short sentence before the call(s)
SEP = "\n@@@\n"              # joins a user turn and its reply so linked {@tag:...} agree across them

Message = dict[str, str]


@cache
def load_chat(path: Path = CHAT_YAML) -> dict:
    return yaml.safe_load(path.read_text())


def _values(rng: random.Random, data: dict) -> dict[str, str]:
    """The general corpus's cast, dates and pools, plus chat pools and clock times."""
    values = document_values(rng)
    for pool, items in data["pools"].items():
        draw_pool(pool, items, rng, values)
    start = dt.date.fromisoformat(values["date_iso"])
    values["next_iso"] = (start + dt.timedelta(days=1)).isoformat()
    hours = rng.sample(["09:00", "09:30", "10:00", "10:30", "11:00", "13:30", "14:00", "14:30", "15:00", "16:00"], 2)
    values["hour"], values["hour2"] = hours
    return values


def _pair(user: str, reply: str, rng: random.Random, values: dict[str, str]) -> tuple[str, str]:
    """Expand a user turn and its reply together, so linked alternatives match across them."""
    first, second = expand(user + SEP + reply, rng, values).split(SEP)
    return first, second


def _system(rng: random.Random, data: dict, values: dict[str, str]) -> list[Message]:
    if rng.random() >= SYSTEM_SHARE:
        return []
    return [{"role": "system", "content": expand(rng.choice(data["systems"]), rng, values)}]


def _small_talk(user: str, rng: random.Random, values: dict[str, str]) -> str:
    """'Hi! ' or 'Hey, ' before a one-line request and sometimes ' Thanks!' after it."""
    prefix = expand(values["user_prefix"], rng, values)
    if prefix.endswith(", ") and not user.startswith(("I ", "I'")):
        user = user[0].lower() + user[1:]
    return prefix + user + values["user_suffix"]


def _number(x: float) -> str:
    """12.0 -> '12', 12.5 -> '12.5', 1234.567 -> '1,234.57'."""
    return f"{x:,.2f}".rstrip("0").rstrip(".")


def arithmetic(rng: random.Random, values: dict[str, str]) -> tuple[str, str]:
    """A small sum with its working, computed here so every answer is right."""
    kind = rng.randrange(9)
    if kind == 0:
        p, n = rng.choice([5, 10, 12, 15, 20, 25, 30, 40, 75]), rng.randrange(20, 2000, 5)
        ans = n * p / 100
        return f"What is {p}% of {n}?", f"{p}% of {n} is {_number(ans)} ({n} × {p} ÷ 100)."
    if kind == 1:
        total, people = rng.randint(4000, 40000) / 100, rng.randint(2, 8)
        each = total / people
        exact = abs(round(each, 2) * people - total) < 1e-9
        return (f"We spent {_number(total)} on dinner for {people} people. How much does each person pay?",
                f"{'Each person pays' if exact else 'Each person pays about'} {each:.2f} "
                f"({_number(total)} ÷ {people}{'' if exact else f' = {each:.4f}…'}).")
    if kind == 2:
        nums = [rng.randint(2, 400) for _ in range(rng.randint(3, 5))]
        listed = ", ".join(map(str, nums[:-1])) + f" and {nums[-1]}"
        return f"Can you add up {listed}?", f"{' + '.join(map(str, nums))} = {sum(nums)}."
    if kind == 3:
        per, boxes = rng.randint(6, 48), rng.randint(3, 60)
        item = rng.choice(["mugs", "notebooks", "bottles", "tins", "packs of paper"])
        return (f"A box holds {per} {item}. How many {item} are in {boxes} boxes?",
                f"{boxes} × {per} = {per * boxes} {item}.")
    if kind == 4:
        start = dt.datetime(2024, 1, 1, rng.randint(8, 16), rng.choice([0, 10, 15, 20, 30, 40, 45, 50]))
        minutes = rng.choice([25, 40, 45, 50, 75, 90, 105, 120])
        end = start + dt.timedelta(minutes=minutes)
        return (f"A meeting starts at {start:%H:%M} and lasts {minutes} minutes. When does it end?",
                f"It ends at {end:%H:%M}.")
    if kind == 5:
        km = rng.choice([3, 5, 8, 10, 15, 21.1, 42.2, 50, 100, 160])
        return (f"How many miles is {_number(km)} km?",
                f"About {km * 0.621371:.1f} miles (1 km ≈ 0.621 miles, so {_number(km)} × 0.621 ≈ {km * 0.621371:.1f}).")
    if kind == 6:
        c = rng.randint(-10, 40)
        f = c * 9 / 5 + 32
        return (f"What is {c} °C in Fahrenheit?", f"{c} °C is {_number(f)} °F (multiply by 9/5, then add 32).")
    if kind == 7:
        days = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
        start, n = rng.randrange(7), rng.randint(2, 60)
        return (f"If today is {days[start]}, what day of the week will it be in {n} days?",
                f"{days[(start + n) % 7]}. {n} days is {n // 7} weeks and {n % 7} days, "
                f"and {n % 7} days after {days[start]} is {days[(start + n) % 7]}.")
    nums = [rng.randint(1, 100) for _ in range(rng.randint(3, 6))]
    mean = sum(nums) / len(nums)
    return (f"What's the average of {', '.join(map(str, nums))}?",
            f"The sum is {sum(nums)} and there are {len(nums)} numbers, so the average is "
            f"{sum(nums)} ÷ {len(nums)} = {_number(round(mean, 2))}.")


def helpful(rng: random.Random, data: dict, values: dict[str, str]) -> list[Message]:
    kind = rng.choices(list(HELPFUL_MIX), weights=list(HELPFUL_MIX.values()))[0]
    if kind == "arithmetic":
        user, reply = arithmetic(rng, values)
    else:
        item = rng.choice(data["helpful"][kind])
        user, reply = _pair(rng.choice(item["q"]), rng.choice(item["a"]), rng, values)
    if "\n" not in user:  # a one-line question gets small talk around it; a pasted text does not
        user = _small_talk(user, rng, values)
    return _system(rng, data, values) + [
        {"role": "user", "content": user},
        {"role": "assistant", "content": values["answer_prefix"] + reply},
    ]


def refusal(rng: random.Random, data: dict, values: dict[str, str]) -> list[Message]:
    """A clearly harmful request; the reply declines, gives a short reason and a safe alternative."""
    spec = data["refusal"]
    kind = spec["kinds"][rng.choice(sorted(spec["kinds"]))]
    request = rng.choice(kind["requests"])
    reply = " ".join([rng.choice(spec["openers"]), rng.choice(kind["reasons"]), rng.choice(request["instead"])])
    return _system(rng, data, values) + [
        {"role": "user", "content": _small_talk(request["text"], rng, values)},
        {"role": "assistant", "content": reply},
    ]


def tool_block(names: list[str], tools: dict) -> str:
    """TOOL_FORMAT and `- name(args): description` lines, as render.system_text writes them."""
    lines = [f"- {n}({', '.join(tools[n]['args'])}): {tools[n]['description']}" for n in names]
    return TOOL_FORMAT + "\n" + "\n".join(lines)


def _log_task(rng: random.Random, data: dict, values: dict[str, str]) -> tuple[str, str]:
    """Paste a short log; the reply posts its counts, computed here, to the team channel."""
    clock = dt.datetime.fromisoformat(values["date_iso"]) + dt.timedelta(hours=rng.randint(1, 8))
    levels = rng.choices(["INFO", "WARN", "ERROR"], weights=[8, 2, 1], k=rng.randint(5, 10))
    lines, errors = [], []
    for level in levels:
        clock += dt.timedelta(seconds=rng.randint(1, 900))
        slots = {"ms": str(rng.randint(200, 4000)), "uid": f"u-{rng.randint(1000, 99999)}", "secs": str(rng.randint(2, 300)),
                 "n": str(rng.randint(2, 80)), "pct": str(rng.randint(80, 97)),
                 "job": rng.choice(["nightly_report", "sync_stock", "send_reminders"]),
                 "table": rng.choice(["orders", "invoices", "customers"])}
        message = expand(rng.choice(data["agentic"]["log_lines"][level]), rng, slots)
        lines.append(f"{clock:%H:%M:%S} {level} {message}")
        if level == "ERROR":
            errors.append(message)
    warns = levels.count("WARN")
    service, team = values["service"], values["team"]
    user = (f"Here's {'this morning' if clock.hour < 12 else 'today'}'s log from {service}. "
            f"Post a short summary in #{team}.\n\n" + "\n".join(lines))
    text = (f"{service} log {lines[0][:8]} to {lines[-1][:8]}: {len(lines)} entries, {len(errors)} "
            f"error{'s' if len(errors) != 1 else ''}, {warns} warning{'s' if warns != 1 else ''}.")
    text += f" First error: {errors[0]}" if errors else " Nothing needs action."
    reply = f"<tool_use:post_message>\nchannel: #{team}\ntext: {text}\n</tool_use:post_message>"
    return user, reply


def agentic(rng: random.Random, data: dict, values: dict[str, str]) -> list[Message]:
    """System prompt with tools, as render.system_text builds it; a routine request; 1-2 calls."""
    spec = data["agentic"]
    tasks = spec["tasks"]
    if rng.random() < 1 / (len(tasks) + 1):
        needed, (user, reply), leads = ["post_message"], _log_task(rng, data, values), None
    else:
        task = rng.choice(tasks)
        for name, items in task.get("slots", {}).items():
            draw_pool(name, items, rng, values)
        needed, leads = task["tools"], task.get("leads")
        user, reply = _pair(rng.choice(task["user"]), rng.choice(task["reply"]), rng, values)
    others = [t for t in spec["tools"] if t not in needed]
    names = list(dict.fromkeys(needed)) + rng.sample(others, rng.randint(1, 4))
    rng.shuffle(names)
    system = expand(rng.choice(spec["descriptions"]), rng, values) + "\n\n" + tool_block(names, spec["tools"])
    if rng.random() < LEAD_SHARE:
        reply = rng.choice(leads or data["pools"]["leads"]) + "\n" + reply
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": user},
        {"role": "assistant", "content": reply},
    ]


def chat_example(rng: random.Random) -> list[Message]:
    """One conversation; the same rng state gives the same messages."""
    data = load_chat()
    values = _values(rng, data)
    kind = rng.choices(list(MIX), weights=list(MIX.values()))[0]
    return {"helpful": helpful, "refusal": refusal, "agentic": agentic}[kind](rng, data, values)
