"""For the token store's tests: a small LLaVA-JSON data set of every shape the store must
keep apart (one image, two images, text only, several turns), and the request that stores it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image
from transformers import PreTrainedTokenizerBase

from llava_kit.data.formats.llava_json import LlavaJSONFormat, LlavaJSONOptions
from llava_kit.data.sample_tokens import Placement
from llava_kit.data.token_store import StoreRequest
from llava_kit.templates.base import ChatTemplate
from llava_kit.templates.vicuna import V1Template

COLOURS = ["red", "green", "blue", "white"]


def records(count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for index in range(count):
        colour = COLOURS[index % 4]
        turns = [{"from": "human", "value": "What colour is the square?"},
                 {"from": "gpt", "value": f"It is {colour}."}]
        record: dict[str, Any] = {"id": f"s{index}", "conversations": turns}
        if index % 4 == 1:
            record["image"] = [f"{index % 3}.png", f"{(index + 1) % 3}.png"]
            turns[0]["value"] = "<image>\n<image>\nAre they alike?"
        elif index % 4 == 2:
            turns += [{"from": "human", "value": "And the background?"},
                      {"from": "gpt", "value": "The background is dark."}]
        elif index % 4 != 3:  # every fourth sample is text only
            record["image"] = f"{index % 3}.png"
        out.append(record)
    return out


def write_data(folder: Path, count: int = 24) -> Path:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for index in range(3):
        Image.new("RGB", (20, 16), (90 * index, 80, 120)).save(folder / "images" / f"{index}.png")
    path = folder / "data.json"
    path.write_text(json.dumps(records(count)))
    return path


def request(path: Path, tokenizer: PreTrainedTokenizerBase,
            template: tuple[str, ChatTemplate] = ("v1", V1Template()),
            placement: Placement = Placement()) -> StoreRequest:
    options = LlavaJSONOptions(path=str(path), image_root=str(path.parent / "images"))
    return StoreRequest(("llava_json", options.model_dump(mode="json")), LlavaJSONFormat(options),
                        (template[0], {}), template[1], tokenizer, placement, "stages.test")


@pytest.fixture(scope="session")
def store_kit() -> SimpleNamespace:
    return SimpleNamespace(records=records, write_data=write_data, request=request)
