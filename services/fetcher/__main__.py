"""Entry point: ``python -m services.fetcher [serve|migrate]``."""

from __future__ import annotations

import sys

from services.common.entrypoint import run_service
from services.fetcher.config import FetcherSettings


def main(argv: list[str] | None = None) -> int:
    s = FetcherSettings()
    return run_service("fetcher", s, host=s.host, port=s.port, db_schema=s.db_schema, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
