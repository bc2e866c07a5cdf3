"""Blob store for recordings: content-addressed by SHA-256, behind one small interface.

- ``FilesystemBlobStore`` (the embedded default): ``<root>/sha256/ab/cd/<digest>``; a finished
  download is renamed into place and fsynced, so a blob that exists is complete.
- ``S3BlobStore``: any S3-compatible service (AWS S3, MinIO, Ceph, ...), through aiobotocore;
  large files go up as multipart uploads read from disk chunk by chunk.

Callers download into a local spool file first (hashing as they go), then ``put_file`` it: the
digest is only known at the end, and the file must be probed before it is accepted anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiobotocore.session import get_session
from botocore.exceptions import ClientError
from pydantic import SecretStr

from services.common.errors import CommonError
from services.common.settings import BlobStoreSettings

_PART_SIZE = 16 * 1024 * 1024
_READ_SIZE = 1024 * 1024


class BlobError(CommonError):
    code = "blob_error"


@dataclass(frozen=True)
class StoredBlob:
    uri: str
    sha256: str
    size: int


class BlobStore(Protocol):
    async def exists(self, sha256: str) -> bool: ...

    async def put_file(self, path: Path, sha256: str, size: int) -> StoredBlob:
        """Store the file's content under its digest; the file is consumed (moved or deleted)."""
        ...

    def open_local(self, uri: str) -> contextlib.AbstractAsyncContextManager[Path]:
        """A local path with the blob's content for the duration of the context."""
        ...

    def uri_for(self, sha256: str) -> str: ...

    async def delete(self, sha256: str) -> bool:
        """Remove the blob (retention, erasure); False if it was not there. Blobs are content
        addressed: the caller checks that no other call still holds the same content."""
        ...

    async def close(self) -> None: ...


async def open_blob_store(settings: BlobStoreSettings, spool_dir: Path) -> BlobStore:
    """The store the settings describe, started; ``spool_dir`` holds local copies of S3 blobs."""
    if settings.blob_backend == "s3":

        def secret(value: SecretStr | None) -> str | None:
            return value.get_secret_value() if value else None

        store = S3BlobStore(
            bucket=settings.blob_s3_bucket,
            prefix=settings.blob_s3_prefix,
            endpoint_url=settings.blob_s3_endpoint_url,
            region=settings.blob_s3_region,
            access_key_id=secret(settings.blob_s3_access_key_id),
            secret_access_key=secret(settings.blob_s3_secret_access_key),
            spool_dir=spool_dir,
        )
        await store.start()
        return store
    return FilesystemBlobStore(settings.blob_root)


def _key(sha256: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise BlobError("not a SHA-256 hex digest")
    return f"sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_READ_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


class FilesystemBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def uri_for(self, sha256: str) -> str:
        return (self.root / _key(sha256)).as_uri()

    async def exists(self, sha256: str) -> bool:
        return await asyncio.to_thread((self.root / _key(sha256)).is_file)

    async def put_file(self, path: Path, sha256: str, size: int) -> StoredBlob:
        await asyncio.to_thread(self._place, path, self.root / _key(sha256))
        return StoredBlob(self.uri_for(sha256), sha256, size)

    @staticmethod
    def _place(source: Path, target: Path) -> None:
        if target.is_file():
            source.unlink(missing_ok=True)  # same content stored already
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(source, "rb") as f:
            os.fsync(f.fileno())
        try:
            os.replace(source, target)
        except OSError:  # another filesystem: copy beside the target, then rename
            tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
            with open(source, "rb") as src, open(tmp, "wb") as dst:
                while chunk := src.read(_READ_SIZE):
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(tmp, target)
            source.unlink(missing_ok=True)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    @contextlib.asynccontextmanager
    async def open_local(self, uri: str) -> AsyncIterator[Path]:
        parts = urlsplit(uri)
        path = await asyncio.to_thread(Path(parts.path).resolve)
        if parts.scheme != "file" or not path.is_relative_to(self.root):
            raise BlobError("blob URI outside this store")
        if not await asyncio.to_thread(path.is_file):
            raise BlobError("blob not found")
        yield path

    async def delete(self, sha256: str) -> bool:
        def remove(path: Path) -> bool:
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            return True

        return await asyncio.to_thread(remove, self.root / _key(sha256))

    async def close(self) -> None:
        return None


class S3BlobStore:
    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        spool_dir: Path,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._spool = spool_dir
        self._client_args: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": region,
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
        }
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    async def start(self) -> None:
        session = get_session()
        self._client = await self._stack.enter_async_context(session.create_client("s3", **self._client_args))

    async def close(self) -> None:
        await self._stack.aclose()

    def _object_key(self, sha256: str) -> str:
        return self.prefix + _key(sha256)

    def uri_for(self, sha256: str) -> str:
        return f"s3://{self.bucket}/{self._object_key(sha256)}"

    async def exists(self, sha256: str) -> bool:
        try:
            await self._client.head_object(Bucket=self.bucket, Key=self._object_key(sha256))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    async def delete(self, sha256: str) -> bool:
        if not await self.exists(sha256):
            return False
        await self._client.delete_object(Bucket=self.bucket, Key=self._object_key(sha256))
        return True

    async def put_file(self, path: Path, sha256: str, size: int) -> StoredBlob:
        key = self._object_key(sha256)
        try:
            if not await self.exists(sha256):
                if size <= _PART_SIZE:
                    body = await asyncio.to_thread(path.read_bytes)
                    await self._client.put_object(Bucket=self.bucket, Key=key, Body=body)
                else:
                    await self._multipart(path, key)
        finally:
            await asyncio.to_thread(path.unlink, True)
        return StoredBlob(self.uri_for(sha256), sha256, size)

    async def _multipart(self, path: Path, key: str) -> None:
        upload = await self._client.create_multipart_upload(Bucket=self.bucket, Key=key)
        upload_id = upload["UploadId"]
        parts = []
        try:
            f = await asyncio.to_thread(open, path, "rb")
            try:
                number = 1
                while chunk := await asyncio.to_thread(f.read, _PART_SIZE):
                    part = await self._client.upload_part(
                        Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk
                    )
                    parts.append({"ETag": part["ETag"], "PartNumber": number})
                    number += 1
            finally:
                await asyncio.to_thread(f.close)
            await self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    @contextlib.asynccontextmanager
    async def open_local(self, uri: str) -> AsyncIterator[Path]:
        parts = urlsplit(uri)
        if parts.scheme != "s3" or parts.netloc != self.bucket:
            raise BlobError("blob URI outside this store")
        self._spool.mkdir(parents=True, exist_ok=True)
        local = self._spool / f"read-{os.getpid()}-{os.urandom(6).hex()}"
        try:
            try:
                response = await self._client.get_object(Bucket=self.bucket, Key=parts.path.lstrip("/"))
            except ClientError as exc:
                # Like the filesystem store: a purged or erased recording is "not found", which
                # the analyzer reports as blob_missing instead of retrying.
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    raise BlobError("blob not found") from None
                raise
            async with response["Body"] as stream:
                f = await asyncio.to_thread(open, local, "wb")
                try:
                    while chunk := await stream.read(_READ_SIZE):
                        await asyncio.to_thread(f.write, chunk)
                finally:
                    await asyncio.to_thread(f.close)
            yield local
        finally:
            local.unlink(missing_ok=True)
