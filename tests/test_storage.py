"""One contract suite for every Storage backend: local directory and S3 (moto's server).

The S3 suite runs against moto's S3-compatible server (`moto[server]`, pinned in
pyproject.toml), started here on a free 127.0.0.1 port: no MinIO can be installed on
the development and CI machines, and moto speaks the same HTTP API boto3 uses for both.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from studio.documents.storage import (
    LocalStorage,
    ObjectNotFound,
    ObjectTooLarge,
    S3Storage,
    Storage,
)
from tests.documents_support import moto_endpoint  # noqa: F401  (fixture)

MiB = 1024 * 1024


def chunks_of(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def achunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for chunk in chunks_of(data, size):
        yield chunk


class StorageContract:
    """Behaviour every backend must have. Subclasses provide `storage` and `leftovers`."""

    @pytest.fixture
    def storage(self) -> Storage:
        raise NotImplementedError

    def leftovers(self, storage: Storage) -> list[str]:
        """Everything the backend holds besides complete objects (temp files, open uploads)."""
        raise NotImplementedError

    def all_keys(self, storage: Storage) -> list[str]:
        raise NotImplementedError

    def test_put_computes_hash_and_size_and_reads_back(self, storage: Storage) -> None:
        data = os.urandom(300_000)
        stored = storage.put(chunks_of(data))
        assert stored.sha256 == hashlib.sha256(data).hexdigest()
        assert stored.size == len(data)
        assert storage.exists(stored.key)
        assert storage.size(stored.key) == len(data)
        assert storage.get(stored.key) == data
        assert self.leftovers(storage) == []

    def test_async_put_streams_the_same_way(self, storage: Storage) -> None:
        data = os.urandom(200_000)
        stored = asyncio.run(storage.aput(achunks_of(data)))
        assert storage.get(stored.key) == data
        assert stored.sha256 == hashlib.sha256(data).hexdigest()

    def test_async_put_of_many_batches_of_tiny_and_large_chunks(self, storage: Storage) -> None:
        # Several batches (hashed and written in parallel), one of them more chunks than
        # one writev takes: the stored bytes and hash are still the stream's, in order.
        data = os.urandom(3 * MiB + 12_345)

        async def uneven() -> AsyncIterator[bytes]:
            yield data[:1000]
            for i in range(1000, 2000):
                yield data[i : i + 1]
            async for chunk in achunks_of(data[2000:], 256 * 1024):
                yield chunk

        stored = asyncio.run(storage.aput(uneven()))
        assert stored.size == len(data)
        assert stored.sha256 == hashlib.sha256(data).hexdigest()
        assert storage.get(stored.key) == data
        assert self.leftovers(storage) == []

    def test_byte_ranges(self, storage: Storage) -> None:
        data = bytes(range(256)) * 4000
        key = storage.put(chunks_of(data)).key
        assert b"".join(storage.open(key, 10, 19)) == data[10:20]
        assert b"".join(storage.open(key, len(data) - 5)) == data[-5:]
        assert b"".join(storage.open(key, 0, 0)) == data[:1]

    def test_over_the_limit_leaves_nothing(self, storage: Storage) -> None:
        before = self.all_keys(storage)
        with pytest.raises(ObjectTooLarge):
            storage.put(chunks_of(os.urandom(300_000)), max_bytes=100_000)
        assert self.all_keys(storage) == before
        assert self.leftovers(storage) == []

    def test_exactly_the_limit_is_accepted(self, storage: Storage) -> None:
        stored = storage.put(chunks_of(os.urandom(100_000)), max_bytes=100_000)
        assert stored.size == 100_000

    def test_failing_source_leaves_nothing(self, storage: Storage) -> None:
        before = self.all_keys(storage)

        def broken() -> Iterator[bytes]:
            yield os.urandom(100_000)
            raise ConnectionResetError("client went away")

        with pytest.raises(ConnectionResetError):
            storage.put(broken())
        assert self.all_keys(storage) == before
        assert self.leftovers(storage) == []

    def test_aborted_writer_is_invisible(self, storage: Storage) -> None:
        writer = storage.writer()
        writer.write(b"half a file")
        assert self.all_keys(storage) == []
        writer.abort()
        assert self.all_keys(storage) == []
        assert self.leftovers(storage) == []

    def test_delete_and_missing_objects(self, storage: Storage) -> None:
        key = storage.put([b"to be removed"]).key
        storage.delete(key)
        assert not storage.exists(key)
        storage.delete(key)  # removing twice is fine
        with pytest.raises(ObjectNotFound):
            b"".join(storage.open(key))
        with pytest.raises(ObjectNotFound):
            storage.size(key)

    def test_keys_from_outside_cannot_escape(self, storage: Storage) -> None:
        for evil in ("../../etc/passwd", "/etc/passwd", "objects/../x", ""):
            assert not storage.exists(evil)
            with pytest.raises(ObjectNotFound):
                b"".join(storage.open(evil))


class TestLocalStorage(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Storage:
        return LocalStorage(tmp_path / "objects")

    def leftovers(self, storage: Storage) -> list[str]:
        assert isinstance(storage, LocalStorage)
        return [p.name for p in storage.temporary_files()]

    def all_keys(self, storage: Storage) -> list[str]:
        assert isinstance(storage, LocalStorage)
        return sorted(
            p.name for p in storage.root.rglob("*") if p.is_file() and ".tmp" not in p.parts
        )

    def test_content_addressed_identical_content_is_stored_once(self, storage: Storage) -> None:
        first = storage.put([b"same bytes"])
        second = storage.put([b"same bytes"])
        assert first.key == second.key == hashlib.sha256(b"same bytes").hexdigest()
        assert (first.created, second.created) == (True, False)
        assert self.all_keys(storage) == [first.key]


def make_s3_storage(endpoint: str, part_size: int = 5 * MiB) -> S3Storage:
    storage = S3Storage(
        bucket=f"studio-test-{uuid.uuid4().hex[:12]}",
        endpoint=endpoint,
        access_key="test",
        secret_key="test",
        region="us-east-1",
        part_size=part_size,
    )
    storage.ensure_bucket()
    return storage


class TestS3Storage(StorageContract):
    @pytest.fixture
    def storage(self, moto_endpoint: str) -> Storage:  # noqa: F811
        return make_s3_storage(moto_endpoint)

    def leftovers(self, storage: Storage) -> list[str]:
        assert isinstance(storage, S3Storage)
        return storage.pending_uploads()

    def all_keys(self, storage: Storage) -> list[str]:
        assert isinstance(storage, S3Storage)
        return sorted(storage.keys())

    def test_large_stream_goes_up_in_parts(self, storage: Storage) -> None:
        assert isinstance(storage, S3Storage)
        data = os.urandom(12 * MiB)
        stored = storage.put(chunks_of(data, MiB))
        assert storage.size(stored.key) == len(data)
        assert hashlib.sha256(storage.get(stored.key)).hexdigest() == stored.sha256
        head = storage.client.head_object(Bucket=storage.bucket, Key=stored.key)
        assert head["ETag"].strip('"').endswith("-3")  # 5 + 5 + 2 MiB parts

    def test_multipart_over_the_limit_aborts_the_upload(self, storage: Storage) -> None:
        with pytest.raises(ObjectTooLarge):
            storage.put(chunks_of(os.urandom(11 * MiB), MiB), max_bytes=10 * MiB)
        assert self.all_keys(storage) == []
        assert self.leftovers(storage) == []

    def test_presigned_url_downloads_as_attachment(self, storage: Storage) -> None:
        import urllib.request

        key = storage.put([b"signed content"]).key
        url = storage.presigned_url(key, filename="report é.pdf", content_type="application/pdf")
        assert url is not None
        with urllib.request.urlopen(url) as answer:  # noqa: S310 - local moto server
            assert answer.read() == b"signed content"
            assert answer.headers["Content-Disposition"].startswith("attachment;")
