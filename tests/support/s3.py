"""A real S3-compatible server on loopback for tests: moto in server mode."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from aiobotocore.session import get_session
from moto.server import ThreadedMotoServer

from tests.support.infra import free_port

ACCESS_KEY, SECRET_KEY, REGION = "testing", "testing", "us-east-1"  # moto's fake credentials


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str

    async def create_bucket(self, name: str) -> None:
        async with get_session().create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        ) as client:
            await client.create_bucket(Bucket=name)


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        server.stop()
