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


def content_to_text(content: Any) -> str:
    """Flatten interleaved content to its text (images are dropped)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, TextContentItem):
        return content.text
    if isinstance(content, ImageContentItem):
        return ""
    if isinstance(content, list):
        return "".join(content_to_text(c) for c in content)
    if isinstance(content, dict):
        return content.get("text", "") if content.get("type") == "text" else ""
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
