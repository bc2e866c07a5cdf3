"""Both blob store backends: content addressing, durability of what exists, and reading back.
S3 runs against a real S3-compatible server on loopback (moto in server mode)."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from services.common.blobs import BlobError, FilesystemBlobStore, S3BlobStore
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, S3Server, s3_server


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


@pytest.fixture(params=["filesystem", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[FilesystemBlobStore | S3BlobStore]:
    if request.param == "filesystem":
        yield FilesystemBlobStore(tmp_path / "blobs")
        return
    server: S3Server = request.getfixturevalue("s3")
    bucket = f"b-{uuid.uuid4().hex[:10]}"
    await server.create_bucket(bucket)
    s3_store = S3BlobStore(
        bucket=bucket,
        prefix="recordings",
        endpoint_url=server.endpoint_url,
        region=REGION,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        spool_dir=tmp_path / "spool",
    )
    await s3_store.start()
    yield s3_store
    await s3_store.close()


def spool(tmp_path: Path, content: bytes) -> tuple[Path, str]:
    path = tmp_path / f"incoming-{uuid.uuid4().hex}"
    path.write_bytes(content)
    return path, hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize("size", [0, 1000, 40 * 1024 * 1024 + 123])  # the last is a multipart upload
async def test_put_then_read_back(store, tmp_path: Path, size: int) -> None:  # type: ignore[no-untyped-def]
    content = os.urandom(size)
    path, digest = spool(tmp_path, content)
    assert not await store.exists(digest)
    stored = await store.put_file(path, digest, size)
    assert stored.sha256 == digest and stored.size == size
    assert stored.uri == store.uri_for(digest)
    assert digest in stored.uri
    assert not path.exists(), "the spool file is consumed"
    assert await store.exists(digest)
    async with store.open_local(stored.uri) as local:
        assert hashlib.sha256(local.read_bytes()).hexdigest() == digest


async def test_same_content_is_stored_once(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first, digest = spool(tmp_path, b"same recording")
    second, _ = spool(tmp_path, b"same recording")
    a = await store.put_file(first, digest, 14)
    b = await store.put_file(second, digest, 14)
    assert a.uri == b.uri
    assert not second.exists()


async def test_delete_removes_the_content_and_says_whether_it_was_there(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    kept, kept_digest = spool(tmp_path, b"another call's recording")
    gone, digest = spool(tmp_path, b"an erased call's recording")
    await store.put_file(kept, kept_digest, 24)
    stored = await store.put_file(gone, digest, 26)
    assert await store.delete(digest) is True
    assert not await store.exists(digest)
    with pytest.raises(BlobError):
        async with store.open_local(stored.uri):
            pass
    assert await store.delete(digest) is False  # idempotent: a purge run again finds nothing
    assert await store.exists(kept_digest)


async def test_rejects_foreign_uris_and_bad_digests(store) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BlobError):
        async with store.open_local("file:///etc/passwd"):
            pass
    with pytest.raises(BlobError):
        store.uri_for("../../etc/passwd")


def test_filesystem_layout(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    digest = hashlib.sha256(b"x").hexdigest()
    assert store.uri_for(digest) == (tmp_path.resolve() / "sha256" / digest[:2] / digest[2:4] / digest).as_uri()
