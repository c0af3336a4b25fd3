"""Images from a request's ``image_url`` parts, with bounded bytes and pixels.

- ``data:image/...;base64,...`` URLs always: the encoded size is checked before decoding;
- local files only inside a folder the operator allows (``--image-dir``), never outside it;
- remote ``http(s)://`` URLs only when the operator enables them (``--allow-remote-images``),
  read up to the byte limit with a timeout.

The pixel count comes from the image header and is checked before any pixel is decoded,
so a small file declaring a huge image (a decompression bomb) costs nothing. Only common
still-image formats are decoded.
"""

from __future__ import annotations

import base64
import binascii
import io
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from PIL import Image

from llava_kit.data.images import BadImagePath, locate_image
from llava_kit.serve.errors import ApiError, bad_request
from llava_kit.serve.limits import ServeLimits

FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
REMOTE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ImagePolicy:
    """Where images may come from besides data URLs."""

    image_dir: Path | None = None
    allow_remote: bool = False


def load_image_url(url: str, where: str, limits: ServeLimits, policy: ImagePolicy) -> Image.Image:
    """The RGB image ``url`` names; ``where`` is its place in the request (for messages)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "data":
        data = _data_url_bytes(url, where, limits)
    elif scheme in ("http", "https"):
        data = _remote_bytes(url, where, limits, policy)
    elif scheme in ("file", ""):
        data = _local_bytes(url, where, limits, policy)
    else:
        raise bad_request(f"{where}: unsupported image URL scheme {scheme!r}; send a "
                          "data:image/...;base64,... URL", param=where)
    return decode_image_bytes(data, where, limits)


def decode_image_bytes(data: bytes, where: str, limits: ServeLimits) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as image:
            width, height = image.size
            if width * height > limits.max_image_pixels:
                raise ApiError(
                    413, f"{where}: the image declares {width} x {height} pixels, more than the "
                    f"{limits.max_image_pixels:,} this server decodes", param=where,
                    code="image_too_large",
                )
            return image.convert("RGB")
    except Image.DecompressionBombError:  # PIL's own limit, far above ours
        raise ApiError(413, f"{where}: the image declares more than the "
                       f"{limits.max_image_pixels:,} pixels this server decodes", param=where,
                       code="image_too_large") from None
    # PIL reports a bad file as any of these (a broken PNG chunk is a SyntaxError).
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise bad_request(
            f"{where}: not a readable image ({', '.join(FORMATS)}): {exc}", param=where,
            code="invalid_image",
        ) from None


def _data_url_bytes(url: str, where: str, limits: ServeLimits) -> bytes:
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64") or not header[5:].startswith("image/"):
        raise bad_request(f"{where}: a data URL must look like data:image/png;base64,<data>",
                          param=where, code="invalid_image")
    # Base64 packs 3 bytes in 4 characters: the size is known before decoding.
    size = len(payload) * 3 // 4
    if size > limits.max_image_bytes:
        raise _too_many_bytes(where, size, limits)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"{where}: the data URL's base64 is broken", param=where,
                          code="invalid_image") from None


def _local_bytes(url: str, where: str, limits: ServeLimits, policy: ImagePolicy) -> bytes:
    if policy.image_dir is None:
        raise bad_request(
            f"{where}: this server reads no local image files; send the image as a "
            "data:image/...;base64,... URL (the operator can allow a folder with --image-dir)",
            param=where,
        )
    path = unquote(urlsplit(url).path) if url.startswith("file:") else url
    found = locate_image(policy.image_dir, path)
    if isinstance(found, BadImagePath):
        raise bad_request(f"{where}: {found.message}", param=where)
    return read_image_file(found, where, limits)


def read_image_file(path: Path, where: str, limits: ServeLimits) -> bytes:
    """A local image's bytes, its size checked first."""
    size = path.stat().st_size
    if size > limits.max_image_bytes:
        raise _too_many_bytes(where, size, limits)
    return path.read_bytes()


def _remote_bytes(url: str, where: str, limits: ServeLimits, policy: ImagePolicy) -> bytes:
    if not policy.allow_remote:
        raise bad_request(
            f"{where}: this server fetches no remote images; send the image as a "
            "data:image/...;base64,... URL (the operator can allow them with --allow-remote-images)",
            param=where,
        )
    try:
        with urllib.request.urlopen(url, timeout=REMOTE_TIMEOUT_S) as response:
            data = response.read(limits.max_image_bytes + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise bad_request(f"{where}: cannot fetch {url}: {getattr(exc, 'reason', exc)}",
                          param=where) from None
    if len(data) > limits.max_image_bytes:
        raise _too_many_bytes(where, len(data), limits)
    return data


def _too_many_bytes(where: str, size: int, limits: ServeLimits) -> ApiError:
    return ApiError(413, f"{where}: the image has about {size:,} bytes, more than the "
                    f"{limits.max_image_bytes:,} this server accepts", param=where,
                    code="image_too_large")
