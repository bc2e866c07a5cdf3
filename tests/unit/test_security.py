"""Credentials: only hashes are stored, and checking is uniform for unknown keys."""

from __future__ import annotations

import pytest

from services.gateway.errors import SubtenantMissing, TenantMissing
from services.gateway.handlers import require_tenancy
from services.gateway.security import hash_secret, issue_credential, secret_matches


def test_issued_secrets_are_long_random_and_distinct() -> None:
    creds = {issue_credential().api_secret for _ in range(100)}
    assert len(creds) == 100
    assert all(len(s) >= 43 for s in creds)


def test_secret_matches_only_its_own_hash() -> None:
    cred = issue_credential()
    assert secret_matches(cred.api_secret, cred.secret_sha256)
    assert not secret_matches(cred.api_secret + "x", cred.secret_sha256)
    assert not secret_matches(issue_credential().api_secret, cred.secret_sha256)


def test_unknown_key_never_matches_even_the_dummy_secret() -> None:
    assert not secret_matches("no such credential", None)
    assert hash_secret("no such credential") != b""


@pytest.mark.parametrize(
    ("tenant", "subtenant", "error", "message"),
    [
        (None, "s", TenantMissing, "Tenant ID is required"),
        ("  ", "s", TenantMissing, "Tenant ID is required"),
        ("t", None, SubtenantMissing, "Subtenant ID is required"),
        ("t", "", SubtenantMissing, "Subtenant ID is required"),
        (None, None, TenantMissing, "Tenant ID is required"),
    ],
)
def test_tenancy_headers_are_required(tenant: str | None, subtenant: str | None, error: type, message: str) -> None:
    with pytest.raises(error) as caught:
        require_tenancy(tenant, subtenant)
    assert caught.value.message == message


def test_tenancy_is_trimmed() -> None:
    tenancy = require_tenancy(" tenant1 ", "subtenant1")
    assert (tenancy.tenant_id, tenancy.subtenant_id) == ("tenant1", "subtenant1")
