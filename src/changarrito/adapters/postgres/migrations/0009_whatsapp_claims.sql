-- A WhatsApp number, and its business account, are claimed only once Graph has confirmed them.
--
-- A row of tenant_whatsapp_numbers is now a *confirmed* claim: Graph answered, with the
-- tenant's own access token, both GET /{phone_number_id} and GET /{waba_id}/phone_numbers
-- listing that number (integrations.configure, on save, and .verify). Only such rows route
-- webhooks, resolve a tenant and pick an app secret. A claim Graph has not confirmed (it was
-- unreachable, or said no) is *pending*: it lives only in the tenant's credential config
-- (phoneNumberId, businessAccountId), owns nothing, and cannot make another tenant's claim a
-- 409; confirming it later (POST .../whatsapp/verify) writes the row.
--
-- business_account_id is the account Graph confirmed the number belongs to: the webhook's
-- account-level changes (entry[].id without a number) are attributed to, and checked with the
-- app secret of, the tenant with the oldest confirmed claim on it (whatsapp_apps.py).
-- Null on rows claimed before this migration: their account was never confirmed.

ALTER TABLE tenant_whatsapp_numbers ADD COLUMN business_account_id text;

CREATE INDEX tenant_whatsapp_numbers_business_account_id_idx
    ON tenant_whatsapp_numbers (business_account_id)
    WHERE business_account_id IS NOT NULL;

-- Rows claimed before: a number whose tenant's WhatsApp credential was verified for it
-- (GET /{phone_number_id} answered with that tenant's token) stays claimed; any other claim
-- had no proof at all and becomes pending (its tenant's verify confirms it again).
DELETE FROM tenant_whatsapp_numbers n
WHERE NOT EXISTS (
    SELECT 1 FROM tenant_integration_credentials c
    WHERE c.tenant_id = n.tenant_id
      AND c.integration_type = 'whatsapp'
      AND c.is_verified
      AND c.config->>'phoneNumberId' = n.phone_number_id
);

COMMENT ON TABLE tenant_whatsapp_numbers IS
    'Confirmed claims: numbers Graph confirmed the tenant''s token can read (pending claims live in the credential config only).';
COMMENT ON COLUMN tenant_whatsapp_numbers.business_account_id IS
    'The WhatsApp Business Account Graph confirmed the number belongs to (null: not confirmed).';
