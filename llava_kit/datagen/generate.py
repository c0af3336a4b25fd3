"""Generate LLaVA conversation records from image contexts through a chat endpoint.

Output is JSONL (one LLaVA record per line, loadable with the ``llava_json`` format),
appended as replies arrive. A rerun skips every id already in the output or the rejects
file, and the client's request cache answers requests that finished but were not yet
written, so an interrupted job never pays for a request twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, TextIO

from llava_kit.constants import IMAGE_PLACEHOLDER
from llava_kit.data.instructions import DETAILED_INSTRUCTIONS, pick_instruction
from llava_kit.datagen.contexts import ImageContext
from llava_kit.datagen.parse import RejectedReply, parse_reply
from llava_kit.datagen.prompts import FEW_SHOT, SYSTEM_MESSAGES, DataType
from llava_kit.endpoints.client import ChatClient, ChatRequest, ChatResult, chat_messages
from llava_kit.errors import DataError
from llava_kit.json_io import read_text


@dataclass
class GenerationSummary:
    total: int
    skipped: int = 0
    written: int = 0
    rejected: int = 0
    failed: int = 0
    from_cache: int = 0

    def rows(self) -> list[tuple[str, str]]:
        return [(name, str(value)) for name, value in vars(self).items()]


def rejects_path(out: Path) -> Path:
    return out.with_name(out.stem + ".rejects.jsonl")


def cache_path(out: Path) -> Path:
    return out.with_name(out.stem + ".cache.jsonl")


def build_request(
    context: ImageContext, data_type: DataType, params: dict[str, Any]
) -> ChatRequest:
    """System message, the type's few-shot pairs, then this image's context."""
    turns: list[tuple[str, str]] = []
    for example_context, example_answer in FEW_SHOT[data_type]:
        turns += [("user", example_context), ("assistant", example_answer)]
    turns.append(("user", context.render()))
    return ChatRequest(
        id=context.id, messages=chat_messages(SYSTEM_MESSAGES[data_type], turns), params=params
    )


def to_record(context: ImageContext, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """A LLaVA record; the image marker opens the first question, as in LLaVA-Instruct."""
    conversations: list[dict[str, str]] = []
    for index, (question, answer) in enumerate(pairs):
        human = f"{IMAGE_PLACEHOLDER}\n{question}" if index == 0 else question
        conversations += [{"from": "human", "value": human}, {"from": "gpt", "value": answer}]
    return {"id": context.id, "image": context.image, "conversations": conversations}


def generate_data(
    contexts: Sequence[ImageContext],
    data_type: DataType,
    client: ChatClient,
    out: Path,
    *,
    seed: int = 0,
    params: dict[str, Any] | None = None,
) -> GenerationSummary:
    """Generate one record per context not yet done; returns what happened to each."""
    out = Path(out)
    if out.suffix != ".jsonl":
        raise DataError(
            f"--out {out}: the output must be a .jsonl file",
            hint="records are appended one per line so an interrupted job can resume",
        )
    rejects = rejects_path(out)
    done = read_done_ids(out) | read_done_ids(rejects)
    todo = [c for c in contexts if c.id not in done]
    summary = GenerationSummary(total=len(contexts), skipped=len(contexts) - len(todo))
    by_id = {c.id: c for c in todo}
    requests = [build_request(c, data_type, dict(params or {})) for c in todo]
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        out.open("a", encoding="utf-8") as records,
        rejects.open("a", encoding="utf-8") as rejected,
    ):

        def on_result(result: ChatResult) -> None:
            summary.from_cache += result.cached
            if result.text is None:
                summary.failed += 1  # not written: a rerun tries it again
                return
            context = by_id[result.id]
            instruction = pick_instruction(DETAILED_INSTRUCTIONS, context.id, seed)
            try:
                pairs = parse_reply(data_type, result.text, instruction)
            except RejectedReply as exc:
                summary.rejected += 1
                _append(rejected, {"id": context.id, "reason": str(exc), "reply": result.text})
                return
            summary.written += 1
            _append(records, to_record(context, pairs))

        client.complete_many(requests, on_result=on_result)
    return summary


def _append(handle: TextIO, record: dict[str, Any]) -> None:
    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    handle.flush()


def read_done_ids(path: Path) -> set[str]:
    """Ids of the complete lines of a JSONL file; a line cut short by a crash is removed."""
    if not path.is_file():
        return set()
    lines = read_text(path, hint="the file must hold records written by 'llava-kit data generate'"
                      ).split("\n")
    complete, tail = lines[:-1], lines[-1]
    ids: set[str] = set()
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            ids.add(str(json.loads(line)["id"]))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(
                f"{path}:{number}: not a generated record ({exc})",
                hint="the file must hold records written by 'llava-kit data generate'",
            ) from exc
    if tail.strip():
        path.write_text("".join(line + "\n" for line in complete), encoding="utf-8")
    return ids
