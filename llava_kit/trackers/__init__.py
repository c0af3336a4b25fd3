"""Experiment trackers: metrics.jsonl (always), TensorBoard, Weights & Biases, MLflow, and
any a plugin registers, each fed the run's metrics on one step axis."""

from llava_kit.trackers.base import Point, Tracker, TrackerRun

__all__ = ["Point", "Tracker", "TrackerRun"]
