"""Entry point: ``python -m services.analyzer [serve|migrate]``."""

from __future__ import annotations

import sys

from services.analyzer.config import AnalyzerSettings
from services.common.entrypoint import run_service


def main(argv: list[str] | None = None) -> int:
    s = AnalyzerSettings()
    return run_service("analyzer", s, host=s.host, port=s.port, db_schema=s.db_schema, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
