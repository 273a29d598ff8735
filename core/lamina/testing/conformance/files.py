"""The Files conformance kit.

Subclass ``FilesConformance`` in a test module (its name must start with ``Test``) and give it a
server whose run config has your provider under ``files``: ``run_config`` (a run config dict) or a
class-scoped ``conformance_lamina`` fixture yielding a started ``lamina run``. Every test must
pass::

    from lamina.testing.conformance import FilesConformance

    class TestAcmeFiles(FilesConformance):
        run_config = {"version": 2, "providers": {"files": [
            {"provider_id": "acme", "provider_type": "remote::acme-files", "config": {...}}]}}

The kit uploads files of its own through the OpenAI SDK (at ``/v1`` and ``/v1/openai/v1``) and
llama-stack-client, and checks the contract of ``lamina.apis.files.FilesProvider``: the objects
OpenAI returns, the content byte for byte (a few MiB, streamed), keyset paging in both orders with
``after`` and ``has_more``, 404s for unknown and deleted ids, 400s naming the field, and files
surviving a restart (``restart_lamina``: by default ``ServerProcess.restart()``). It never deletes
files it did not upload, so a provider may hold others.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, ClassVar

import httpx
import openai
import pytest
from llama_stack_client import LlamaStackClient
from openai import OpenAI

from lamina.testing.conformance.base import ConformanceKit
from lamina.testing.processes import ServerProcess

MiB = 1024 * 1024


@pytest.mark.e2e
class FilesConformance(ConformanceKit):
    large_file_bytes: ClassVar[int] = 3 * MiB  # the streamed round trip; keep under your size limit

    @pytest.fixture(params=["/v1", "/v1/openai/v1"])
    def oa(self, request: pytest.FixtureRequest, conformance_lamina: ServerProcess) -> OpenAI:
        return OpenAI(
            base_url=conformance_lamina.url + request.param,
            api_key="none",
            max_retries=0,
            timeout=self.client_timeout,
        )

    @staticmethod
    def upload(client: OpenAI, data: bytes, *, name: str = "", purpose: str = "assistants") -> Any:
        filename = name or f"conformance-{uuid.uuid4().hex[:8]}.txt"
        return client.files.create(file=(filename, data), purpose=purpose)  # type: ignore[arg-type]

    # -- upload, retrieve, content, delete -----------------------------------------------------

    def test_upload_returns_openais_file_object(self, oa: OpenAI) -> None:
        created = self.upload(oa, b"hello files\n", name="notes.txt", purpose="assistants")
        assert created.id.startswith("file-") and created.object == "file"
        assert (created.filename, created.bytes, created.purpose) == ("notes.txt", 12, "assistants")
        assert isinstance(created.created_at, int) and created.created_at > 0
        assert oa.files.retrieve(created.id) == created
        content = oa.files.content(created.id)
        assert content.content == b"hello files\n"
        assert content.response.headers["content-disposition"] == 'attachment; filename="notes.txt"'

    def test_a_large_file_round_trips_byte_for_byte(self, oa: OpenAI) -> None:
        block = hashlib.sha256(b"conformance").digest() * 32  # 1 KiB, not compressible to nothing
        data = (block * (self.large_file_bytes // len(block) + 1))[: self.large_file_bytes]
        created = self.upload(oa, data, name="big.bin")
        assert created.bytes == len(data)
        assert hashlib.sha256(oa.files.content(created.id).content).digest() == hashlib.sha256(data).digest()

    def test_deleted_files_are_gone(self, oa: OpenAI) -> None:
        created = self.upload(oa, b"short-lived")
        deleted = oa.files.delete(created.id)
        assert (deleted.id, deleted.deleted) == (created.id, True)
        for call in (oa.files.retrieve, oa.files.content, oa.files.delete):
            with pytest.raises(openai.NotFoundError, match=created.id):
                call(created.id)
        assert created.id not in [f.id for f in oa.files.list(limit=10000)]

    def test_unknown_ids_are_404s_naming_the_id(self, oa: OpenAI) -> None:
        missing = "file-" + "0" * 32
        for call in (oa.files.retrieve, oa.files.content, oa.files.delete):
            with pytest.raises(openai.NotFoundError, match=missing):
                call(missing)

    # -- listing -------------------------------------------------------------------------------

    def test_listing_pages_in_both_orders(self, oa: OpenAI) -> None:
        purpose = "batch"
        mine = [self.upload(oa, f"{i}\n".encode(), purpose=purpose).id for i in range(5)]
        newest_first = [f.id for f in oa.files.list(limit=10000, order="desc").data]
        ours = [i for i in newest_first if i in mine]
        assert sorted(ours) == sorted(mine)
        assert [f.id for f in oa.files.list(limit=10000, order="asc").data if f.id in mine] == ours[::-1]
        # Keyset paging: pages of two, each starting after the previous page's last id, skip nothing.
        page = oa.files.list(limit=2, order="desc")
        assert len(page.data) == 2 and page.has_more
        paged = [f.id for f in oa.files.list(limit=2, order="desc")]  # the SDK follows `after`
        assert paged == newest_first
        second = oa.files.list(limit=2, order="desc", after=page.data[-1].id)
        assert [f.id for f in second.data] == newest_first[2:4]
        listed = [f for f in oa.files.list(purpose=purpose, limit=10000).data]
        assert set(mine) <= {f.id for f in listed} and all(f.purpose == purpose for f in listed)

    def test_an_unknown_after_is_a_400_naming_after(self, conformance_lamina: ServerProcess) -> None:
        response = httpx.get(
            f"{conformance_lamina.url}/v1/files", params={"after": "file-" + "f" * 32}, timeout=60
        )
        assert response.status_code == 400, response.text
        assert "after" in response.json()["detail"]

    # -- bad input -----------------------------------------------------------------------------

    def test_a_bad_purpose_is_a_400_naming_purpose(self, oa: OpenAI) -> None:
        with pytest.raises(openai.BadRequestError) as err:
            self.upload(oa, b"x", purpose="homework")
        assert "purpose" in str(err.value)

    # -- llama-stack-client --------------------------------------------------------------------

    def test_llama_stack_client_round_trip(self, ls: LlamaStackClient) -> None:
        created = ls.files.create(file=("doc.md", b"# title\n"), purpose="assistants")
        assert (created.filename, created.bytes, created.purpose) == ("doc.md", 8, "assistants")
        assert ls.files.retrieve(created.id).id == created.id
        assert created.id in [f.id for f in ls.files.list(limit=10000).data]
        assert ls.files.with_raw_response.content(created.id).http_response.content == b"# title\n"
        assert ls.files.delete(created.id).deleted is True

    # -- persistence ---------------------------------------------------------------------------

    def test_restart_keeps_files(self, conformance_lamina: ServerProcess) -> None:
        client = OpenAI(base_url=f"{conformance_lamina.url}/v1", api_key="none", max_retries=0)
        created = self.upload(client, b"persisted", name="keep.txt", purpose="vision")
        self.restart_lamina(conformance_lamina)
        assert client.files.retrieve(created.id) == created
        assert client.files.content(created.id).content == b"persisted"
