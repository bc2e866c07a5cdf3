"""Partners' signing secrets are stored sealed, rotate with the key-encryption key, and never
appear in plain text in the notifier's tables."""

from __future__ import annotations

import asyncpg
from pydantic import SecretStr

from services.common.crypto import SecretBox, new_key
from services.common.db import create_pool
from services.notifier.repository import NotifierRepository
from services.notifier.signing import SECRET_PREFIX

FIRST, SECOND = new_key(), new_key()


async def stored(url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch("SELECT partner_id, secret, secret_sealed FROM notifier.signing_secrets ORDER BY id")
    finally:
        await conn.close()


async def whole_schema_text(url: str) -> str:
    """Every row of every notifier table, as text: where a plain secret could hide."""
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'notifier'")
        dumps = [
            str(await conn.fetch(f'SELECT * FROM notifier."{t["tablename"]}"'))  # noqa: S608 - catalogue names
            for t in tables
        ]
    finally:
        await conn.close()
    return "\n".join(dumps)


async def test_secrets_are_sealed_rotated_with_the_key_and_readable_throughout(isolated_database_url: str) -> None:
    pool = await create_pool(SecretStr(isolated_database_url), "notifier", min_size=1, max_size=2)
    try:
        first = NotifierRepository(pool, SecretBox.from_config(f"k1:{FIRST}"))
        found, created = await first.valid_secrets(["ptn_a", "ptn_b"])
        assert created == ["ptn_a", "ptn_b"]
        secret_a = found["ptn_a"][0]
        assert secret_a.startswith(SECRET_PREFIX)
        await first.rotate_secret("ptn_a", grace_s=3600)
        both_a = [s.secret for s in await first.secrets_of("ptn_a")]
        assert len(both_a) == 2 and both_a[1] == secret_a

        rows = await stored(isolated_database_url)
        assert all(r["secret"] is None and r["secret_sealed"].startswith("enc:v1:k1:") for r in rows)
        text = await whole_schema_text(isolated_database_url)
        assert not any(s in text for s in [*both_a, found["ptn_b"][0]])

        # The key-encryption key rotates: the new key first, the old one kept until resealed.
        rotated = NotifierRepository(pool, SecretBox.from_config(f"k2:{SECOND},k1:{FIRST}"))
        assert [s.secret for s in await rotated.secrets_of("ptn_a")] == both_a
        assert await rotated.seal_secrets() == {"sealed": 0, "rewrapped": 3}
        assert all(r["secret_sealed"].startswith("enc:v1:k2:") for r in await stored(isolated_database_url))
        assert await rotated.seal_secrets() == {"sealed": 0, "rewrapped": 0}  # idempotent
        only_new = NotifierRepository(pool, SecretBox.from_config(f"k2:{SECOND}"))
        found_again, created_again = await only_new.valid_secrets(["ptn_a", "ptn_b"])
        assert created_again == [] and found_again["ptn_a"] == both_a and found_again["ptn_b"] == found["ptn_b"]
    finally:
        await pool.close()


async def test_a_secret_stored_in_plain_text_by_an_older_version_is_sealed(isolated_database_url: str) -> None:
    conn = await asyncpg.connect(isolated_database_url)
    try:
        await conn.execute(
            "INSERT INTO notifier.signing_secrets (partner_id, secret) VALUES ('ptn_old', 'whsec_b2xkLXNlY3JldA==')"
        )
    finally:
        await conn.close()
    pool = await create_pool(SecretStr(isolated_database_url), "notifier", min_size=1, max_size=2)
    try:
        repo = NotifierRepository(pool, SecretBox.from_config(f"k1:{FIRST}"))
        assert [s.secret for s in await repo.secrets_of("ptn_old")] == ["whsec_b2xkLXNlY3JldA=="]
        assert await repo.seal_secrets() == {"sealed": 1, "rewrapped": 0}
        [row] = await stored(isolated_database_url)
        assert row["secret"] is None and row["secret_sealed"].startswith("enc:v1:k1:")
        assert [s.secret for s in await repo.secrets_of("ptn_old")] == ["whsec_b2xkLXNlY3JldA=="]
    finally:
        await pool.close()
