"""Entry point: ``python -m services.gateway [serve|migrate]``."""

from __future__ import annotations

import sys

from services.common.entrypoint import run_service
from services.gateway.config import GatewaySettings


def main(argv: list[str] | None = None) -> int:
    s = GatewaySettings()
    return run_service("gateway", s, host=s.host, port=s.port, db_schema=s.db_schema, workers=s.workers, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
