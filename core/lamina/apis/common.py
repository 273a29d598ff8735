"""Shapes shared by several APIs: content, resources, list envelopes."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class URL(BaseModel):
    uri: str


class ImageSource(BaseModel):
    url: URL | None = None
    data: str | None = Field(default=None, description="base64-encoded image bytes")


class ImageContentItem(BaseModel):
    type: Literal["image"] = "image"
    image: ImageSource


class TextContentItem(BaseModel):
    type: Literal["text"] = "text"
    text: str


InterleavedContentItem = Annotated[ImageContentItem | TextContentItem, Field(discriminator="type")]
InterleavedContent = str | InterleavedContentItem | list[InterleavedContentItem]


def content_to_text(content: Any, *, separator: str = "", image: str = "") -> str:
    """Flatten interleaved content to its text: list items joined by ``separator``, each image
    replaced by ``image`` (dropped by default; empty parts are skipped when a separator is given)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, TextContentItem):
        return content.text
    if isinstance(content, ImageContentItem):
        return image
    if isinstance(content, list):
        parts = (content_to_text(c, separator=separator, image=image) for c in content)
        return separator.join(p for p in parts if p or not separator)
    if isinstance(content, dict):
        if content.get("type") == "text":
            return content.get("text", "")
        return image if content.get("type") == "image" else ""
    return str(content)


class Resource(BaseModel):
    """Fields every registered resource has on the wire."""

    model_config = ConfigDict(extra="allow")

    identifier: str
    provider_resource_id: str | None = None
    provider_id: str
    type: str
    created: int = Field(default_factory=lambda: int(time.time()))


class Empty(BaseModel):
    """A request without parameters."""
