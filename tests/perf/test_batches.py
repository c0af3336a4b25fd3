"""Length-grouped batch order: deterministic, resumable, modality-pure, less padding, and
the same micro batches for one process and for two."""

from __future__ import annotations

import random

import pytest

from llava_kit.train.batches import BatchPlan, PaddingMeter, sample_lengths
from llava_kit.data.dataset import TokenizedList, TokenizedSample


def mixed_dataset(n: int = 600, seed: int = 0) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """Image samples (64 visual tokens + 10..200 text) and text-only ones (5..300)."""
    rng = random.Random(seed)
    has_image = tuple(rng.random() < 0.6 for _ in range(n))
    lengths = tuple(64 + rng.randint(10, 200) if image else rng.randint(5, 300) for image in has_image)
    return lengths, has_image


def grouped(world: int = 1, seed: int = 3, **kwargs: int) -> BatchPlan:
    lengths, has_image = mixed_dataset()
    sizes = {"global_size": 16, "micro_size": 4, **kwargs}
    return BatchPlan(len(lengths), world_size=world, seed=seed, lengths=lengths,
                     has_image=has_image, **sizes)


def test_order_is_a_permutation_and_a_pure_function_of_seed_and_epoch() -> None:
    plan = grouped()
    assert sorted(plan.order(0)) == list(range(plan.num_samples))
    # A fresh plan (a resumed process) asked for epoch 1 first sees the same order.
    assert grouped().order(1) == plan.order(1)
    assert plan.order(0) != plan.order(1)
    assert grouped(seed=4).order(0) != plan.order(0)


def test_resuming_at_any_step_yields_the_same_micro_batches() -> None:
    steps = range(2 * grouped().steps_per_epoch + 3)
    straight = grouped()
    expected = [straight.micro_batches(step, 0) for step in steps]
    for resume_at in (0, 7, straight.steps_per_epoch, straight.steps_per_epoch + 5):
        resumed = grouped()
        assert [resumed.micro_batches(s, 0) for s in steps[resume_at:]] == expected[resume_at:]


def test_micro_batches_hold_one_modality_except_the_final_remainder() -> None:
    plan = grouped()
    _, has_image = mixed_dataset()
    order = plan.order(0)
    micros = [order[i : i + plan.micro_size] for i in range(0, len(order), plan.micro_size)]
    # Each modality leaves at most micro_size - 1 samples over: at most 2 mixed micro batches.
    mixed = [k for k, micro in enumerate(micros) if len({has_image[i] for i in micro}) > 1]
    assert all(k >= len(micros) - 2 for k in mixed)
    assert sum(len({has_image[i] for i in m}) == 1 for m in micros) >= len(micros) - 2


def test_grouping_cuts_padding_on_mixed_lengths() -> None:
    lengths, _ = mixed_dataset()
    plain = BatchPlan(len(lengths), global_size=16, micro_size=4, world_size=1, seed=3)
    plain_pad = PaddingMeter(plain, lengths).epoch(0)
    grouped_pad = PaddingMeter(grouped(), lengths).epoch(0)
    assert plain_pad > 0.25
    assert grouped_pad < 0.05
    # The meter counts exactly: one hand-checked micro batch.
    meter = PaddingMeter(BatchPlan(4, 4, 4, 1, 0), [3, 5, 5, 7])
    assert meter.step(0) == pytest.approx((4 + 2 + 2 + 0) / 28)


@pytest.mark.parametrize("world", [2, 4])
def test_n_ranks_see_the_single_process_micro_batches(world: int) -> None:
    one = grouped(world=1)
    many = [grouped(world=world) for _ in range(world)]
    for step in range(one.steps_per_epoch + 2):
        single = one.micro_batches(step, 0)
        dealt = [plan.micro_batches(step, rank) for rank, plan in enumerate(many)]
        # micro batch k of the global batch goes to rank k % world
        assert [dealt[k % world][k // world] for k in range(len(single))] == single


def test_sample_lengths_expand_images_and_truncate() -> None:
    samples = [
        TokenizedSample("a", [1, -200, 5, 6], [-100] * 4, ("img.png",)),  # type: ignore[arg-type]
        TokenizedSample("b", [1, 2, 3], [-100] * 3, ()),
        TokenizedSample("c", [1, -200] + [7] * 50, [-100] * 52, ("x.png",)),  # type: ignore[arg-type]
    ]
    lengths, has_image = sample_lengths(TokenizedList(samples), num_visual_tokens=16, max_length=40)
    assert lengths == (19, 3, 40)
    assert has_image == (True, False, True)


def test_lengths_must_match_the_samples() -> None:
    with pytest.raises(ValueError, match="lengths has 3 entries for 20 samples"):
        BatchPlan(20, 4, 2, 1, 0, lengths=(1, 2, 3), has_image=(True, False, True))
