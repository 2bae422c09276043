"""The run's estimate: work left over the rates measured so far."""

from fabula.organism.clock import TOKENS_PER_INSTANCE, RunClock


def test_estimate_uses_the_training_rate_then_the_measured_scoring_rate():
    said = []
    clock = RunClock(said.append, train_tokens=100_000, instances=50)
    assert clock.seconds_left() is None and "no estimate" in clock.estimate()
    clock.trained(40_000, seconds=40.0)
    assert clock.seconds_left() == 60 + 50 * TOKENS_PER_INSTANCE / 1_000
    clock.scored(10, seconds=5.0)  # 2 instances/s
    assert clock.seconds_left() == 60 + 40 / 2 and "about 1m20s" in clock.estimate()


def test_the_first_steps_announce_the_rate_once():
    said = []
    clock = RunClock(said.append, train_tokens=1_000_000, instances=0)
    for step in range(1, 40):  # 2 s a step of 1,000 tokens, timed from step 1
        clock.training(step, 1_000, "float32, 2 threads", steps=step - 1, seconds=(step - 1) * 2.0)
    assert len(said) == 1 and "500 tokens/s (float32, 2 threads)" in said[0]
    assert "989,000 training tokens" in said[0] and "about 32m58s" in said[0]
