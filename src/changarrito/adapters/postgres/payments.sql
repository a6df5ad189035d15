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
-- Stores a notification once per (provider, event id); no row when it was already stored.
INSERT INTO payment_events
    (id, tenant_id, provider, event_id, type, status, payload)
VALUES
    (%(id)s, %(tenant_id)s, %(provider)s, %(event_id)s, %(type)s, %(status)s, %(payload)s)
ON CONFLICT (provider, event_id) DO NOTHING
RETURNING received_at;

-- name: link_for_event
-- The tenant's link an event is about: by the provider's link id when the event names one,
-- else the newest link with the event's reference. Locked until the status is written.
SELECT id, tenant_id, provider, provider_link_id, url, amount, currency, description,
       reference, source, status, created_at, updated_at
FROM payment_links
WHERE tenant_id = %(tenant_id)s AND provider = %(provider)s
  AND (CASE WHEN %(provider_link_id)s::text IS NOT NULL
            THEN provider_link_id = %(provider_link_id)s
            ELSE reference = %(reference)s END)
ORDER BY created_at DESC, id DESC
LIMIT 1
FOR UPDATE;

-- name: set_link_status
UPDATE payment_links SET status = %(status)s, updated_at = now()
WHERE id = %(id)s
RETURNING id, tenant_id, provider, provider_link_id, url, amount, currency, description,
          reference, source, status, created_at, updated_at;

-- name: attach_event
UPDATE payment_events SET link_id = %(link_id)s WHERE id = %(id)s;
