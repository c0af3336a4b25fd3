"""The full data check decodes every image as the training loader would."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from llava_kit.data.images import MAX_IMAGE_PIXELS
from llava_kit.datacheck.decode import undecodable_images


def test_corrupt_truncated_and_oversized_images_are_found_with_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.png"
    Image.new("RGB", (20, 16), (9, 9, 9)).save(good)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    bomb = tmp_path / "bomb.png"
    side = int(MAX_IMAGE_PIXELS ** 0.5) + 1
    Image.new("1", (side, side)).save(bomb)  # a few kB declaring more pixels than allowed

    failed = undecodable_images([good, garbage, truncated, bomb], "stages.pretrain")

    assert sorted(failed) == sorted([garbage, truncated, bomb])
    assert failed[garbage].startswith(f"cannot read image {garbage}: cannot identify image file")
    assert failed[truncated].startswith(f"cannot read image {truncated}:")
    assert failed[bomb] == (
        f"image {bomb} declares {side} x {side} pixels, more than the "
        f"{MAX_IMAGE_PIXELS:,} llava-kit decodes"
    )
    shown = capsys.readouterr().err
    assert "decoding images of stages.pretrain" in shown
    assert "4/4" in shown and "images/s" in shown and "eta" in shown
