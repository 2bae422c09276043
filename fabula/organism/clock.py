"""How long the rest of a run will take: the work left (training tokens, scored instances) at
the rates this run has measured so far. Printed once after the first training steps and again
as each stage ends, so a redirected log says early whether the run fits its time."""

from __future__ import annotations

from fabula.progress import duration

# Before the first evaluation has been timed, one scored instance is counted as this many
# training tokens: scoring runs forward only, a prompt once for all its choices, plus the
# neutral-prompt pass of the calibrated verdict. Measured on the default run (2 cores, AVX2,
# float32: 0.073 s an instance at 4.9k training tokens/s); the first finished evaluation
# replaces it with its own rate.
TOKENS_PER_INSTANCE = 350


class RunClock:
    def __init__(self, say, train_tokens: int, instances: int):
        self.say, self.train_left, self.instances_left = say, train_tokens, instances
        self.train_rate: float | None = None      # tokens/s: in the first stage, of its steps; then of
                                                  # whole stages, data drawing and saving included
        self.score_rate: float | None = None      # instances/s over all evaluations so far
        self.scored_instances, self.scored_seconds = 0, 0.0
        self.announced = False
        self.in_stage = 0                          # tokens the current stage has trained so far

    def training(self, step: int, tokens_per_step: int, note: str, steps: int, seconds: float) -> None:
        """Called at every step with the steps and seconds timed since the stage's first step
        (StageProgress.since_first: set-up and a resumed checkpoint excluded); the estimate is
        said once."""
        self.in_stage = step * tokens_per_step
        if steps >= 10 and seconds >= 10:
            self.train_rate = steps * tokens_per_step / seconds
            if not self.announced:
                self.announced = True
                self.say(f"  measured {self.train_rate:,.0f} tokens/s ({note}); {self.estimate()}")

    def trained(self, tokens: int, seconds: float) -> None:
        """A stage ended: `seconds` of wall time, set-up included."""
        self.train_left = max(0, self.train_left - tokens)
        self.train_rate = tokens / max(seconds, 1e-9)
        self.in_stage = 0

    def scored(self, instances: int, seconds: float) -> None:
        self.instances_left = max(0, self.instances_left - instances)
        self.scored_instances += instances
        self.scored_seconds += seconds
        if self.scored_instances:
            self.score_rate = self.scored_instances / max(self.scored_seconds, 1e-9)

    @property
    def tokens_left(self) -> int:
        return max(0, self.train_left - self.in_stage)

    def seconds_left(self) -> float | None:
        if self.train_rate is None:
            return None
        score_rate = self.score_rate or self.train_rate / TOKENS_PER_INSTANCE
        return self.tokens_left / self.train_rate + self.instances_left / score_rate

    def left(self) -> str:
        """The short form, for the end of each stage."""
        left = self.seconds_left()
        return "" if left is None else f"the run has ~{duration(left)} left"

    def estimate(self) -> str:
        left = self.seconds_left()
        if left is None:
            return "no estimate before the first training steps"
        basis = "measured" if self.score_rate else f"estimated at {TOKENS_PER_INSTANCE} training tokens each"
        return (f"left: {self.tokens_left:,} training tokens and {self.instances_left:,} scored instances "
                f"({basis}), about {duration(left)} at this rate")
