"""The LLaVA-1.5 rows of the reference's model zoo, and which lmms-eval task and metric
gives each of its twelve benchmarks (the reference numbers are percentages, MME a sum)."""

from __future__ import annotations

from dataclasses import dataclass

BENCHMARKS = ("VQAv2", "GQA", "VizWiz", "SQA", "TextVQA", "POPE", "MME", "MMBench",
              "MMBench-CN", "SEED", "LLaVA-W", "MM-Vet")

# docs/MODEL_ZOO.md of the reference: LLaVA-1.5, full fine-tune.
REFERENCE_ROWS: dict[str, tuple[float, ...]] = {
    "LLaVA-1.5 7B": (78.5, 62.0, 50.0, 66.8, 58.2, 85.9, 1510.7, 64.3, 58.3, 58.6, 65.4, 31.1),
    "LLaVA-1.5 13B": (80.0, 63.3, 53.6, 71.6, 61.3, 85.9, 1531.3, 67.7, 63.6, 61.6, 72.5, 36.1),
}


@dataclass(frozen=True)
class BenchmarkSource:
    benchmark: str
    metric: str  # lmms-eval's metric name in the task's results
    scale: float  # times the metric gives the reference's unit
    needs_judge: bool = False  # scored by a GPT judge (lmms-eval's llm_judge, or llava-kit's)
    submission_only: bool = False  # scored by the benchmark's server from a submission file


# lmms-eval task -> the benchmark column it fills. llava-kit's local tasks fill the same
# columns, on synthetic data (not comparable with the reference rows).
SOURCES: dict[str, BenchmarkSource] = {
    "vqav2_val": BenchmarkSource("VQAv2", "exact_match", 100),
    "vqav2_test": BenchmarkSource("VQAv2", "submission", 100, submission_only=True),
    "gqa": BenchmarkSource("GQA", "exact_match", 100),
    "vizwiz_vqa_val": BenchmarkSource("VizWiz", "exact_match", 100),
    "vizwiz_vqa_test": BenchmarkSource("VizWiz", "submission", 100, submission_only=True),
    "scienceqa_img": BenchmarkSource("SQA", "exact_match", 100),
    "textvqa_val": BenchmarkSource("TextVQA", "exact_match", 100),
    "pope": BenchmarkSource("POPE", "pope_f1_score", 100),
    "mme": BenchmarkSource("MME", "mme_perception_score", 1),
    "mmbench_en_dev": BenchmarkSource("MMBench", "gpt_eval_score", 1, needs_judge=True),
    "mmbench_en_test": BenchmarkSource("MMBench", "submission", 1, submission_only=True),
    "mmbench_cn_dev": BenchmarkSource("MMBench-CN", "gpt_eval_score", 1, needs_judge=True),
    "mmbench_cn_test": BenchmarkSource("MMBench-CN", "submission", 1, submission_only=True),
    "seedbench": BenchmarkSource("SEED", "seed_image", 100),
    "llava_in_the_wild": BenchmarkSource("LLaVA-W", "gpt_eval_llava_all", 1, needs_judge=True),
    "mmvet": BenchmarkSource("MM-Vet", "gpt_eval_score", 1, needs_judge=True),
    "llava_kit_pope": BenchmarkSource("POPE", "pope_f1_score", 100),
    "llava_kit_mme": BenchmarkSource("MME", "mme_perception_score", 1),
    "llava_kit_textvqa": BenchmarkSource("TextVQA", "exact_match", 100),
    "llava_kit_llava_bench": BenchmarkSource("LLaVA-W", "relative", 1, needs_judge=True),
}
