"""The assembled model: splicing under truncation, autograd rules, batched generation."""

from __future__ import annotations

import pytest
import torch

from llava_kit.constants import IGNORE_INDEX, IMAGE_TOKEN_ID
from llava_kit.data.collate import Collator
from llava_kit.errors import ModelError
from llava_kit.model.vlm import LlavaModel


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def example(ids: list[int], pixel_values: torch.Tensor | None = None) -> dict:
    labels = [IGNORE_INDEX if t == IMAGE_TOKEN_ID else t for t in ids]
    out = {"input_ids": ids, "labels": labels}
    if pixel_values is not None:
        out["pixel_values"] = pixel_values
    return out


def test_truncation_through_an_image_keeps_the_prefix_exact(tiny_model: LlavaModel) -> None:
    """A causal LM's logits on a prefix cannot depend on what was cut after it."""
    tiny_model.eval()
    n = tiny_model.num_visual_tokens
    sample = example([1, 8, IMAGE_TOKEN_ID, 9, 10], images(1))
    full = Collator(n, 0, max_length=1000)([sample])
    cut_at = 2 + n // 2  # in the middle of the visual tokens
    cut = Collator(n, 0, max_length=cut_at)([sample])
    assert cut["input_ids"].shape[1] == cut_at and "visual_keep" in cut
    with torch.no_grad():
        full_logits = tiny_model(**{k: v for k, v in full.items() if k != "ids"}).logits
        cut_logits = tiny_model(**{k: v for k, v in cut.items() if k != "ids"}).logits
    torch.testing.assert_close(cut_logits[0], full_logits[0, :cut_at])


def test_text_only_batch_keeps_the_connector_in_the_graph(tiny_model: LlavaModel) -> None:
    tiny_model.train()
    tiny_model.encoder.requires_grad_(False)
    batch = Collator(tiny_model.num_visual_tokens, 0, 64)([example([1, 8, 9, 10])])
    batch.pop("ids")
    tiny_model(**batch).loss.backward()
    grads = [p.grad for p in tiny_model.connector.parameters()]
    assert all(g is not None for g in grads), "every connector parameter must get a gradient"
    assert all(float(g.abs().sum()) == 0.0 for g in grads), "and it must be exactly zero"


def test_frozen_encoder_runs_without_autograd(tiny_model: LlavaModel) -> None:
    tiny_model.train()
    tiny_model.encoder.requires_grad_(False)
    batch = Collator(tiny_model.num_visual_tokens, 0, 256)(
        [example([1, IMAGE_TOKEN_ID, 9, 10, 11], images(1))]
    )
    batch.pop("ids")
    tiny_model(**batch).loss.backward()
    assert all(p.grad is None for p in tiny_model.encoder.parameters())
    assert any(float(p.grad.abs().sum()) > 0 for p in tiny_model.connector.parameters())


def test_freezing_casts_and_moves_after_assembly_are_followed(tiny_model: LlavaModel) -> None:
    # The vision side's parameters are gathered when the model is assembled, not per step.
    pixels = images(1)
    tiny_model.encoder.requires_grad_(True)
    assert tiny_model.encoder_is_trainable() and tiny_model.encode(pixels).requires_grad
    tiny_model.to(torch.float64)
    assert tiny_model.project_features(tiny_model.encode(pixels.double())).dtype == torch.float64
    state = {k: v.float() for k, v in tiny_model.state_dict().items()}
    tiny_model.load_state_dict(state, assign=True)  # new parameter objects
    tiny_model.encoder.requires_grad_(False)
    assert not tiny_model.encoder_is_trainable() and not tiny_model.encode(pixels).requires_grad
    assert tiny_model.project_features(tiny_model.encode(pixels)).dtype == torch.float32
    tiny_model.to("meta")  # new parameter objects again
    tiny_model.encoder.requires_grad_(True)
    assert tiny_model.encoder_is_trainable()


def test_image_positions_without_pixels_are_an_error(tiny_model: LlavaModel) -> None:
    tiny_model.train()
    batch = Collator(tiny_model.num_visual_tokens, 0, 256)([example([1, IMAGE_TOKEN_ID, 9])])
    batch.pop("ids")
    with pytest.raises(ModelError, match="no pixel_values"):
        tiny_model(**batch)


def test_left_padded_batched_generation_equals_one_at_a_time(tiny_model: LlavaModel) -> None:
    tiny_model.eval()
    pad = tiny_model.tokenizer.pad_token_id
    collate = Collator(tiny_model.num_visual_tokens, pad, 512, padding_side="left")
    prompts = [
        example([1, IMAGE_TOKEN_ID, 9, 10, 11, 12, 13], images(1, seed=1)),
        example([1, 20, 21]),
        example([1, 30, IMAGE_TOKEN_ID, 31], images(1, seed=2)),
    ]
    # Random weights give near-uniform logits; sharpen them so greedy picks are stable.
    with torch.no_grad():
        tiny_model.llm.lm_head.weight.mul_(20)

    def run(batch_examples: list[dict]) -> list[list[int]]:
        batch = collate(batch_examples)
        out = tiny_model.generate(
            batch["input_ids"], batch["attention_mask"], batch["pixel_values"],
            max_new_tokens=6, min_new_tokens=6,
        )
        return out.tolist()

    together = run(prompts)
    alone = [run([p])[0] for p in prompts]
    assert together == alone
