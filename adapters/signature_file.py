"""The development signature pad: the signature is an image file a tablet (or a demo) leaves behind.

Each captured signature is copied to ``store_dir/<reference>.png``, the ``image_ref`` the agent
records next to the image's SHA-256.
"""

from __future__ import annotations

import shutil
from pathlib import Path


class FileSignaturePad:
    """Implements ``domain.hardware.SignaturePad``; no image file means no signature (waived)."""

    def __init__(self, image: Path | None, store_dir: Path) -> None:
        self.image, self.store_dir = image, store_dir

    def capture(self, reference: str) -> bytes | None:
        if self.image is None or not self.image.is_file():
            return None
        self.store_dir.mkdir(parents=True, exist_ok=True)
        target = self.store_dir / f"{reference}.png"
        shutil.copyfile(self.image, target)
        return target.read_bytes()
