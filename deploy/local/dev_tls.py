"""A development CA and a certificate for 127.0.0.1 and localhost, kept under ``.local/tls/``.

`make up` runs this once (it keeps existing files), and the local notifier trusts
``ca-bundle.pem``: the system's CAs plus this development CA. Public HTTPS receivers and local
ones served with ``server.pem`` (`make demo`) both verify. Nothing here is used in production.
"""

from __future__ import annotations

import sys
from pathlib import Path

import trustme

ROOT = Path(__file__).resolve().parents[2]
TLS = ROOT / ".local" / "tls"
CA = TLS / "ca.pem"
SERVER = TLS / "server.pem"  # private key and certificate chain
BUNDLE = TLS / "ca-bundle.pem"
SYSTEM_CAS = Path("/etc/ssl/certs/ca-certificates.crt")


def ensure() -> Path:
    """Create the CA, the server certificate and the bundle if missing; returns the bundle."""
    if not (CA.exists() and SERVER.exists()):
        TLS.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="callpipe development CA")
        ca.cert_pem.write_to_path(str(CA))
        server = ca.issue_cert("127.0.0.1", "::1", "localhost")
        server.private_key_and_cert_chain_pem.write_to_path(str(SERVER))
        SERVER.chmod(0o600)
    system = SYSTEM_CAS.read_bytes() if SYSTEM_CAS.exists() else b""
    BUNDLE.write_bytes(system + b"\n" + CA.read_bytes())
    return BUNDLE


def main() -> int:
    sys.stderr.write(f"[stack] development TLS: CA bundle {ensure().relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
