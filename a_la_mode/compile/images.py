"""Container images as part of what a task is: written into each spec before it is hashed.

The image a task runs in must be part of its output ID, or swapping it would rerun nothing.
So a default image is filled in at compile time (``alamode encode --default-image``), never
chosen at run time, and ``--pin`` replaces each tag with the digest it names now: a tag
(``collage``, ``x:latest``) can move, a digest cannot. Pinned references read
``NAME@sha256:HEX``; resolving a tag is the docker engine's job (its ``pin`` method).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

SpecRewrite = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]
"""Given a task's name and spec, the spec to compile instead."""


def is_pinned(image: str) -> bool:
    """Whether ``image`` names one image for good (a digest, not a tag)."""
    return "@sha256:" in image or image.startswith("sha256:")


def split_pinned(image: str) -> tuple[str, str] | None:
    """``"collage@sha256:ab…"`` -> ("collage", "sha256:ab…"); None for a reference that is
    not pinned."""
    name, at, digest = image.partition("@")
    if at and digest.startswith("sha256:"):
        return name, digest
    return None


def image_rewrite(
    default_image: str | None = None, pin: Callable[[str], str] | None = None
) -> SpecRewrite:
    """A rewrite that gives ``default_image`` to every task with a command and no image, then
    pins each image with ``pin``, once per distinct reference."""
    pinned: dict[str, str] = {}

    def rewrite(name: str, spec: Mapping[str, Any]) -> Mapping[str, Any]:
        image = spec.get("image")
        if image is None and default_image is not None and spec.get("command") is not None:
            image = default_image
        if pin is not None and isinstance(image, str) and not is_pinned(image):
            if image not in pinned:
                pinned[image] = pin(image)
            image = pinned[image]
        if image is None or image == spec.get("image"):
            return spec
        return {**spec, "image": image}

    return rewrite
