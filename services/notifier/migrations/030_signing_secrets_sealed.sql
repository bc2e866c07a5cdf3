-- Signing secrets are stored sealed (envelope encryption, services/common/crypto.py) with a key
-- from configuration, never in plain text. Rows written before this are sealed by the notifier
-- when it starts (the key is configuration, which SQL cannot read) and their plain text cleared.
ALTER TABLE signing_secrets ADD COLUMN secret_sealed text;
ALTER TABLE signing_secrets ALTER COLUMN secret DROP NOT NULL;
ALTER TABLE signing_secrets ADD CONSTRAINT signing_secrets_stored CHECK (secret IS NOT NULL OR secret_sealed IS NOT NULL);
