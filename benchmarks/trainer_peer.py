"""The stack a user might pick instead: transformers' ``Trainer`` on HF Llava, one short epoch.

Equal work on both sides: the demo model (with LLaVA-1.5's ``mlp2x_gelu`` connector, which
HF Llava's projector is) exported to the HF Llava format (logit parity is tested), the same
samples tokenized and collated by the same code, micro batch 16 in random order, AdamW
with warmup + cosine, gradient clipping, frozen encoder, one epoch from data to saved
weights, in CPU seconds. Ours is the stage runner (``demo_epochs.EpochJob``); the peer is ``Trainer``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from demo_epochs import Changes, demo_recipe, run_context  # noqa: E402
from interleave import cpu_seconds  # noqa: E402
from worker import Job  # noqa: E402

STAGE = "finetune"
MODEL: Changes = {"connector": "mlp2x_gelu"}


def stage_changes(limit: int) -> Changes:
    """The short epoch both sides train: ``limit`` samples, random batches of 16."""
    return {"data": {"limit": limit},
            "batch": {"global_size": 16, "micro_size": 16, "group_by_length": False}}


class HFBatches:
    """Our collator's batches with HF Llava's image token at the visual positions."""

    def __init__(self, collator: Any, image_token_id: int) -> None:
        self.collator, self.image_token_id = collator, image_token_id

    def __call__(self, examples: list[Any]) -> dict[str, torch.Tensor]:
        from llava_kit.constants import IMAGE_TOKEN_ID

        batch = self.collator(examples)
        if "visual_keep" in batch:
            raise ValueError("a sample cut through its image: HF Llava needs whole images")
        ids = batch["input_ids"]
        out = {"input_ids": ids.masked_fill(ids == IMAGE_TOKEN_ID, self.image_token_id),
               "attention_mask": batch["attention_mask"], "labels": batch["labels"]}
        if batch["pixel_values"] is not None:
            out["pixel_values"] = batch["pixel_values"]
        return out


class TrainerEpochJob(Job):
    """One epoch under ``Trainer`` per round, from the same exported weights each time."""

    def __init__(self, data: str, limit: int) -> None:
        from llava_kit.export.hf_llava import export_hf_llava
        from llava_kit.model.build import build_model

        self.recipe = demo_recipe(data, STAGE, stage_changes(limit), model=MODEL)
        torch.manual_seed(self.recipe.runtime.seed)
        self.model = build_model(self.recipe.model)  # its tokenizer and preprocessing
        self.folder = Path(tempfile.mkdtemp(prefix="llava_kit_trainer_peer_"))
        export_hf_llava(self.model, self.recipe, self.folder / "hf")
        self.steps = 0
        self.run()  # a process's first epoch pays one-off costs

    def run(self) -> float:
        from transformers import LlavaForConditionalGeneration, Trainer, TrainingArguments

        from llava_kit.data.collate import Collator
        from llava_kit.train.stage_setup import stage_dataset

        recipe, spec = self.recipe, self.recipe.stages[STAGE]
        hf = LlavaForConditionalGeneration.from_pretrained(self.folder / "hf")
        hf.model.vision_tower.requires_grad_(False)
        with tempfile.TemporaryDirectory() as tmp:
            start = cpu_seconds()
            dataset = stage_dataset(run_context(recipe, Path(tmp)), self.model, STAGE, spec)
            collator = Collator(self.model.num_visual_tokens, self.model.tokenizer.pad_token_id,
                                recipe.model.max_length, "right")
            args = TrainingArguments(
                output_dir=tmp, per_device_train_batch_size=spec.batch.micro_size,
                num_train_epochs=1, learning_rate=spec.optimizer.lr,
                warmup_steps=spec.optimizer.warmup_ratio, lr_scheduler_type="cosine",
                weight_decay=spec.optimizer.weight_decay, use_cpu=True, report_to="none",
                save_strategy="no", logging_strategy="no", disable_tqdm=True,
                dataloader_num_workers=0, remove_unused_columns=False, seed=recipe.runtime.seed,
            )
            trainer = Trainer(model=hf, args=args, train_dataset=dataset,
                              data_collator=HFBatches(collator, hf.config.image_token_id))
            self.steps = trainer.train().global_step
            trainer.save_model(str(Path(tmp) / "final"))
            return cpu_seconds() - start

    def info(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
