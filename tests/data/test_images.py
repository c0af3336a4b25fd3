"""Image paths from data files must stay inside the image root; bad images name the sample."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from llava_kit.data.images import BadImagePath, load_image, locate_image, resolve_image
from llava_kit.errors import DataError

SOURCE = Path("data/train.json")


def _png(path: Path, color: tuple[int, int, int] = (10, 20, 30), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (4, 3), color if mode != "L" else color[0]).save(path)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    _png(images / "a.png")
    _png(images / "sub" / "b.png")
    _png(tmp_path / "secret.png")
    return images


def _resolve(root: Path, relative: str) -> Path:
    return resolve_image(root, relative, sample_id="s-42", source=SOURCE)


def test_relative_paths_resolve_to_absolute_files_inside_the_root(root: Path) -> None:
    assert _resolve(root, "a.png") == (root / "a.png").resolve()
    assert _resolve(root, "sub/b.png") == (root / "sub" / "b.png").resolve()
    # ".." that stays inside the root is harmless.
    assert _resolve(root, "sub/../a.png") == (root / "a.png").resolve()
    assert _resolve(root, "a.png").is_absolute()


def test_an_absolute_path_inside_the_root_is_accepted(root: Path) -> None:
    inside = str((root / "sub" / "b.png").resolve())
    assert _resolve(root, inside) == (root / "sub" / "b.png").resolve()


@pytest.mark.parametrize("relative", ["../secret.png", "sub/../../secret.png"])
def test_dot_dot_escapes_are_refused(root: Path, relative: str) -> None:
    with pytest.raises(DataError) as caught:
        _resolve(root, relative)
    message = str(caught.value)
    assert "'s-42'" in message
    assert str(SOURCE) in message
    assert repr(relative) in message
    assert "outside the image root" in message


def test_an_absolute_path_outside_the_root_is_refused(root: Path) -> None:
    outside = str(root.parent / "secret.png")
    with pytest.raises(DataError, match="outside the image root") as caught:
        _resolve(root, outside)
    assert "'s-42'" in str(caught.value)


def test_a_symlink_pointing_out_of_the_root_is_refused(root: Path) -> None:
    os.symlink(root.parent / "secret.png", root / "link.png")
    os.symlink(root.parent, root / "up")
    with pytest.raises(DataError, match="outside the image root"):
        _resolve(root, "link.png")
    with pytest.raises(DataError, match="outside the image root"):
        _resolve(root, "up/secret.png")


def test_a_symlink_inside_the_root_is_followed(root: Path) -> None:
    os.symlink(root / "sub" / "b.png", root / "alias.png")
    assert _resolve(root, "alias.png") == (root / "sub" / "b.png").resolve()


@pytest.mark.parametrize("relative", ["missing.png", "sub"])
def test_a_missing_file_names_the_sample_and_the_root(root: Path, relative: str) -> None:
    with pytest.raises(DataError) as caught:
        _resolve(root, relative)
    message = str(caught.value)
    assert "not found" in message
    assert "'s-42'" in message
    assert repr(relative) in message
    assert str(root.resolve()) in message
    assert "image_root" in message  # the hint says which option to check


@pytest.mark.parametrize(
    ("relative", "kind"),
    [("../secret.png", "outside_image_root"), ("/etc/hostname", "outside_image_root"),
     ("missing.png", "missing_image"), ("sub", "missing_image")],
)
def test_locate_image_says_why_a_path_cannot_be_used(root: Path, relative: str, kind: str) -> None:
    found = locate_image(root, relative)
    assert isinstance(found, BadImagePath) and found.kind == kind
    assert repr(relative) in found.message and str(root.resolve()) in found.message
    with pytest.raises(DataError) as caught:
        _resolve(root, relative)
    assert caught.value.message == f"{SOURCE}: sample 's-42': {found.message}"
    assert caught.value.hint == found.hint
    assert locate_image(root, "sub/b.png") == (root / "sub" / "b.png").resolve()


def test_load_image_converts_to_rgb(tmp_path: Path) -> None:
    gray = load_image(_png(tmp_path / "gray.png", (100, 0, 0), mode="L"), sample_id="g")
    assert gray.mode == "RGB"
    assert gray.size == (4, 3)
    assert gray.getpixel((0, 0)) == (100, 100, 100)

    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (2, 2), (10, 20, 30, 0)).save(rgba)
    assert load_image(rgba, sample_id="r").getpixel((1, 1)) == (10, 20, 30)


def test_load_image_returns_pixels_that_outlive_the_file(tmp_path: Path) -> None:
    path = _png(tmp_path / "a.png", (1, 2, 3))
    image = load_image(path, sample_id="a")
    path.unlink()
    assert image.getpixel((3, 2)) == (1, 2, 3)


def test_a_file_that_is_not_an_image_names_the_sample(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(DataError) as caught:
        load_image(bad, sample_id="s-7")
    message = str(caught.value)
    assert "'s-7'" in message
    assert str(bad) in message


def test_a_truncated_image_names_the_sample(tmp_path: Path) -> None:
    whole = tmp_path / "whole.png"
    Image.effect_noise((64, 64), 50).convert("RGB").save(whole)
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DataError) as caught:
        load_image(cut, sample_id="s-8")
    assert "'s-8'" in str(caught.value)
    assert str(cut) in str(caught.value)
