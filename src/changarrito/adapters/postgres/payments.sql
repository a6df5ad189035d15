-- Queries of the payment store (payments.py). Same format as queries.sql: a block starts with
-- "-- name: <name>", followed by comment lines that describe it.

-- name: insert_link
-- A new link; the same provider link again (an idempotent retry of the same request) returns
-- the stored row when it is the same tenant's, and no row when it is another tenant's.
INSERT INTO payment_links
    (id, tenant_id, provider, provider_link_id, url, amount, currency, description, reference,
     status, source)
VALUES
    (%(id)s, %(tenant_id)s, %(provider)s, %(provider_link_id)s, %(url)s, %(amount)s,
     %(currency)s, %(description)s, %(reference)s, %(status)s, %(source)s)
ON CONFLICT (provider, provider_link_id) DO UPDATE SET updated_at = payment_links.updated_at
WHERE payment_links.tenant_id = EXCLUDED.tenant_id
RETURNING id, tenant_id, provider, provider_link_id, url, amount, currency, description,
          reference, source, status, created_at, updated_at;

-- name: get_link
SELECT id, tenant_id, provider, provider_link_id, url, amount, currency, description,
       reference, source, status, created_at, updated_at
FROM payment_links
WHERE id = %(id)s AND tenant_id = %(tenant_id)s;

-- name: insert_event
-- Stores a verified notification once per (tenant, provider, event id); no row when that
-- tenant already has it.
INSERT INTO payment_events
    (id, tenant_id, provider, event_id, type, status, source, payload)
VALUES
    (%(id)s, %(tenant_id)s, %(provider)s, %(event_id)s, %(type)s, %(status)s, %(source)s,
     %(payload)s)
ON CONFLICT (tenant_id, provider, event_id) DO NOTHING
RETURNING received_at;

-- name: link_for_event
-- The tenant's link an event names: by our link id when the provider echoed it, else by the
-- provider's link id (payments.applies_to then decides whether it may move it). Locked until
-- the status is written.
SELECT id, tenant_id, provider, provider_link_id, url, amount, currency, description,
       reference, source, status, created_at, updated_at
FROM payment_links
WHERE tenant_id = %(tenant_id)s AND provider = %(provider)s
  AND (CASE WHEN %(named_link_id)s::uuid IS NOT NULL
            THEN id = %(named_link_id)s::uuid
            ELSE provider_link_id = %(provider_link_id)s::text END)
FOR UPDATE;

-- name: set_link_status
UPDATE payment_links SET status = %(status)s, updated_at = now()
WHERE id = %(id)s
RETURNING id, tenant_id, provider, provider_link_id, url, amount, currency, description,
          reference, source, status, created_at, updated_at;

-- name: attach_event
UPDATE payment_events SET link_id = %(link_id)s WHERE id = %(id)s;
