-- Every query of the PostgreSQL adapters. Loaded at import by queries.py.
-- A block starts with "-- name: <name>", followed by comment lines that describe it.

-- name: create_tenant
-- A new tenant with a generated id.
INSERT INTO tenants (name) VALUES (%(name)s)
RETURNING id, name, created_at;

-- name: get_tenant
SELECT id, name, created_at FROM tenants WHERE id = %(tenant_id)s;

-- name: list_tenants
SELECT id, name, created_at FROM tenants ORDER BY created_at, id;

-- name: delete_tenant
-- Credentials and numbers go with it (ON DELETE CASCADE); returns the numbers it owned, so
-- their routes can be invalidated, plus one row with a null number if it owned none.
WITH gone AS (
    DELETE FROM tenants WHERE id = %(tenant_id)s RETURNING id
)
SELECT n.phone_number_id
FROM gone LEFT JOIN tenant_whatsapp_numbers n ON n.tenant_id = gone.id;

-- name: tenant_exists
SELECT EXISTS (SELECT 1 FROM tenants WHERE id = %(tenant_id)s);

-- name: credentials_for
-- One row per credential of the tenant (of one type when given); a single row of nulls when
-- the tenant has none, and no row at all when there is no such tenant.
SELECT t.id AS owner_id, c.id, c.tenant_id, c.integration_type, c.provider, c.credentials,
       c.config, c.is_active, c.is_verified, c.priority, c.created_at, c.updated_at,
       c.verified_at, c.verification_error
FROM tenants t
LEFT JOIN tenant_integration_credentials c
       ON c.tenant_id = t.id
      AND (%(integration_type)s::text IS NULL OR c.integration_type = %(integration_type)s)
WHERE t.id = %(tenant_id)s
ORDER BY c.priority, c.updated_at DESC, c.id;

-- name: upsert_credential
-- Inserts or replaces the (tenant, type, provider) credential; the row keeps its id and
-- created_at when replaced.
INSERT INTO tenant_integration_credentials
    (id, tenant_id, integration_type, provider, credentials, config, is_active, is_verified,
     priority, verified_at, verification_error)
VALUES
    (%(id)s, %(tenant_id)s, %(integration_type)s, %(provider)s, %(credentials)s, %(config)s,
     %(is_active)s, %(is_verified)s, %(priority)s, %(verified_at)s, %(verification_error)s)
ON CONFLICT (tenant_id, integration_type, provider) DO UPDATE SET
    credentials = EXCLUDED.credentials,
    config = EXCLUDED.config,
    is_active = EXCLUDED.is_active,
    is_verified = EXCLUDED.is_verified,
    priority = EXCLUDED.priority,
    verified_at = EXCLUDED.verified_at,
    verification_error = EXCLUDED.verification_error,
    updated_at = now()
RETURNING id, tenant_id, integration_type, provider, credentials, config, is_active,
          is_verified, priority, created_at, updated_at, verified_at, verification_error;

-- name: claim_number
-- Claims a WhatsApp number Graph confirmed for a tenant (a row is a confirmed claim, see
-- 0009_whatsapp_claims.sql), or updates it if the tenant already owns it. Returns no row
-- when another tenant owns it.
INSERT INTO tenant_whatsapp_numbers
    (id, tenant_id, phone_number_id, phone_number, display_name, is_active,
     business_account_id)
VALUES
    (%(id)s, %(tenant_id)s, %(phone_number_id)s, %(phone_number)s, %(display_name)s,
     %(is_active)s, %(business_account_id)s)
ON CONFLICT (phone_number_id) DO UPDATE SET
    phone_number = EXCLUDED.phone_number,
    display_name = EXCLUDED.display_name,
    is_active = EXCLUDED.is_active,
    business_account_id = EXCLUDED.business_account_id
WHERE tenant_whatsapp_numbers.tenant_id = EXCLUDED.tenant_id
RETURNING tenant_id, phone_number_id, phone_number, display_name, is_active, id,
          business_account_id;

-- name: delete_credentials_of_type
DELETE FROM tenant_integration_credentials
WHERE tenant_id = %(tenant_id)s
  AND integration_type = %(integration_type)s
  AND (%(provider)s::text IS NULL OR provider = %(provider)s)
RETURNING id;

-- name: delete_numbers_of_tenant
DELETE FROM tenant_whatsapp_numbers WHERE tenant_id = %(tenant_id)s
RETURNING phone_number_id;

-- name: set_verified
-- Records a check's outcome; returns the row and whether it was verified before.
WITH before AS (
    SELECT id, is_verified AS was
    FROM tenant_integration_credentials
    WHERE tenant_id = %(tenant_id)s AND integration_type = %(integration_type)s
      AND provider = %(provider)s
    FOR UPDATE
)
UPDATE tenant_integration_credentials t SET
    is_verified = %(verified)s,
    verified_at = CASE WHEN %(verified)s THEN now() ELSE NULL END,
    verification_error = %(error)s,
    updated_at = now()
FROM before
WHERE t.id = before.id
RETURNING t.id, before.was;

-- name: number_owner
SELECT tenant_id, phone_number_id, phone_number, display_name, is_active, id,
       business_account_id
FROM tenant_whatsapp_numbers WHERE phone_number_id = %(phone_number_id)s;

-- name: number_with_credentials
-- A number's owner and that tenant's WhatsApp credentials in one round trip (the webhook's
-- uncached path): no row when nobody owns the number, one row of credential nulls when the
-- owner has none.
SELECT n.tenant_id AS number_tenant_id, n.phone_number_id, n.phone_number, n.display_name,
       n.is_active AS number_is_active, n.id AS number_id, n.business_account_id,
       c.id, c.tenant_id, c.integration_type, c.provider, c.credentials, c.config, c.is_active,
       c.is_verified, c.priority, c.created_at, c.updated_at, c.verified_at,
       c.verification_error
FROM tenant_whatsapp_numbers n
LEFT JOIN tenant_integration_credentials c
       ON c.tenant_id = n.tenant_id AND c.integration_type = 'whatsapp'
WHERE n.phone_number_id = %(phone_number_id)s;

-- name: numbers_for
-- The tenant's numbers; a single row of nulls when it has none, no row when no such tenant.
SELECT t.id AS owner_id, n.tenant_id, n.phone_number_id, n.phone_number, n.display_name,
       n.is_active, n.id, n.business_account_id
FROM tenants t
LEFT JOIN tenant_whatsapp_numbers n ON n.tenant_id = t.id
WHERE t.id = %(tenant_id)s
ORDER BY n.created_at, n.id;

-- name: confirmed_accounts
-- The business accounts Graph confirmed for the tenants' numbers (only the given tenants'
-- when %(tenant_ids)s is not null), oldest claim first: the first tenant listed for an
-- account owns its account-level webhooks (whatsapp_apps.py).
SELECT tenant_id, business_account_id, created_at
FROM tenant_whatsapp_numbers
WHERE business_account_id IS NOT NULL
  AND (%(tenant_ids)s::uuid[] IS NULL OR tenant_id = ANY (%(tenant_ids)s::uuid[]))
ORDER BY created_at, id;

-- name: notify
-- Tells every process (notify.Listener.on_change) what changed; sent when the transaction
-- commits, not before. Payloads: "tenant:<uuid>", "number:<phone_number_id>".
SELECT pg_notify('changarrito_changes', payload)
FROM unnest(%(payloads)s::text[]) AS payload;

-- name: count_credentials
SELECT count(*) FROM tenant_integration_credentials;

-- name: credentials_batch_for_update
-- The next batch of rows for key rotation, in id order after %(after)s; rows a concurrent
-- writer holds are skipped (a rerun picks them up).
SELECT id, tenant_id, integration_type, provider, credentials
FROM tenant_integration_credentials
WHERE id > %(after)s
ORDER BY id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: replace_ciphertext
UPDATE tenant_integration_credentials SET credentials = %(credentials)s
WHERE id = %(id)s;

-- name: sample_per_key
-- One row for each distinct (cipher, key id) present, to check the key ring at start-up.
SELECT DISTINCT ON (credentials->>'alg', credentials->>'kid')
       id, tenant_id, integration_type, provider, credentials
FROM tenant_integration_credentials
ORDER BY credentials->>'alg', credentials->>'kid', id;

-- name: pgcrypto_installed
SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgcrypto');

-- name: create_pgcrypto
CREATE EXTENSION IF NOT EXISTS pgcrypto;

-- name: pgcrypto_encrypt
-- The password is a bound parameter (never part of the statement text).
SELECT pgp_sym_encrypt_bytea(%(data)s, %(password)s, 'cipher-algo=aes256, compress-algo=0');

-- name: pgcrypto_decrypt
SELECT pgp_sym_decrypt_bytea(%(ct)s, %(password)s);
