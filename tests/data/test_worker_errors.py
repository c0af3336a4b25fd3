"""A bad image met while a batch is loaded is one DataError naming the sample and the file,
in a DataLoader worker process as in the training process."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from llava_kit.data.dataset import ConversationDataset, TokenizedSample
from llava_kit.data.images import decode_image
from llava_kit.data.worker_errors import SampleLoadError
from llava_kit.errors import DataError


def _pixels(image: Image.Image) -> torch.Tensor:
    return torch.zeros(3, 2, 2)


def _first(items: list[dict]) -> dict:
    return items[0]


def _dataset(image: Path) -> ConversationDataset:
    sample = TokenizedSample("s7", [1, -200, 2], [-100, -100, 2], (image,))
    return ConversationDataset([sample], _pixels)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_corrupt_image_names_the_sample_and_the_file_with_its_hint(
    tmp_path: Path, workers: int
) -> None:
    image = tmp_path / "3.png"
    image.write_bytes(b"garbage")
    loader = DataLoader(_dataset(image), batch_size=1, num_workers=workers, collate_fn=_first)
    with pytest.raises(DataError) as caught:
        next(iter(loader))
    assert isinstance(caught.value, SampleLoadError)
    assert caught.value.message == (
        f"sample 's7': cannot read image {image}: cannot identify image file '{image}'"
    )
    assert caught.value.hint == (
        "re-download or remove the file; `llava-kit data check` lists every bad image"
    )
    assert "Traceback" not in str(caught.value)


def test_a_sample_load_error_made_directly_keeps_its_text() -> None:
    error = SampleLoadError("sample 'x': bad\nsecond line", hint="do this")
    assert (error.message, error.hint) == ("sample 'x': bad\nsecond line", "do this")


def test_a_broken_png_chunk_is_a_data_error_not_a_syntax_error(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (1, 2, 3)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[36] = 0  # the low byte of the IDAT chunk's length: PIL then reads a broken chunk
    image = tmp_path / "broken.png"
    image.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"cannot read image .*broken\.png: broken PNG file"):
        decode_image(image)
