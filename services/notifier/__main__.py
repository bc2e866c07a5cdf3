"""Entry point: ``python -m services.notifier [serve|migrate]``."""

from __future__ import annotations

import sys

from services.common.entrypoint import run_service
from services.notifier.config import NotifierSettings


def main(argv: list[str] | None = None) -> int:
    s = NotifierSettings()
    return run_service("notifier", s, host=s.host, port=s.port, db_schema=s.db_schema, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
