"""Resolving the image paths of a data file's records inside the configured image root."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from llava_kit.data.formats.problems import Problems
from llava_kit.data.images import BadImagePath, locate_image
from llava_kit.errors import DataError


def image_root_dir(image_root: str) -> Path:
    """The image root as a Path, checked to be an existing folder."""
    root = Path(image_root)
    if not root.is_dir():
        raise DataError(
            f"image folder not found: {root} (recipe field stages.<stage>.data.image_root)",
            hint="set image_root to the folder the records' image paths are relative to",
        )
    return root


@dataclass
class ImageResolver:
    """Resolves image paths inside one root, each distinct path once.

    Conversation files often point several records at the same image (LLaVA-Instruct-158K
    has about two per image), and checking a path on disk costs far more than a lookup.
    """

    root: Path
    _resolved: dict[str, Path] = field(default_factory=dict)

    def resolve(self, relative: list[str], where: str, problems: Problems) -> list[Path]:
        """Resolved paths; each one outside the root or missing becomes a problem."""
        resolved: list[Path] = []
        for path in relative:
            found = self._resolved.get(path)
            if found is None:
                located = locate_image(self.root, path)
                if isinstance(located, BadImagePath):
                    absent = (located.path,) if located.kind == "missing_image" else ()
                    problems.add(where, located.message, located.kind, absent=absent)
                    continue
                found = self._resolved[path] = located
            resolved.append(found)
        return resolved
