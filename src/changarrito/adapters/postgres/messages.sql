-- The WhatsApp webhook intake's writes. Loaded at import by messages.py (same block format as
-- queries.sql). Each insert takes all its rows as one JSON array and writes them in one
-- statement; the raw JSON Meta sent is embedded as is, never parsed and re-encoded here.

-- name: insert_inbound
-- New inbound messages, given as one JSON array of row objects (encoded by msgspec: far
-- cheaper than one array parameter per column); a wamid already stored (a redelivery, or
-- another process that got the same webhook) is skipped. Returns the wamids inserted.
INSERT INTO whatsapp_inbound_messages
    (wamid, phone_number_id, display_phone_number, waba_id, tenant_id, route, customer_id,
     customer_phone, customer_user_id, customer_name, type, text, context_wamid, raw, sent_at,
     state)
SELECT u.wamid, u.phone_number_id, u.display_phone_number, u.waba_id, u.tenant_id, u.route,
       u.customer_id, u.customer_phone, u.customer_user_id, u.customer_name, u.type, u.text,
       u.context_wamid, u.raw, u.sent_at, u.state
FROM json_to_recordset(%(rows)s::json)
     AS u(wamid text, phone_number_id text, display_phone_number text, waba_id text,
          tenant_id uuid, route text, customer_id text, customer_phone text,
          customer_user_id text, customer_name text, type text, text text, context_wamid text,
          raw jsonb, sent_at timestamptz, state text)
ORDER BY u.wamid
ON CONFLICT (wamid) DO NOTHING
RETURNING wamid;

-- name: insert_statuses
-- New status webhooks (a JSON array of rows), once per (wamid, business number, status).
INSERT INTO whatsapp_message_statuses
    (wamid, status, phone_number_id, tenant_id, recipient_id, recipient_user_id, occurred_at,
     error_code, error_title, error_details, raw)
SELECT u.wamid, u.status, u.phone_number_id, u.tenant_id, u.recipient_id, u.recipient_user_id,
       u.occurred_at, u.error_code, u.error_title, u.error_details, u.raw
FROM json_to_recordset(%(rows)s::json)
     AS u(wamid text, status text, phone_number_id text, tenant_id uuid, recipient_id text,
          recipient_user_id text, occurred_at timestamptz, error_code int, error_title text,
          error_details text, raw jsonb)
ORDER BY u.wamid, u.phone_number_id, u.status
ON CONFLICT (wamid, phone_number_id, status) DO NOTHING;

-- name: insert_events
-- Changes of other fields and value-level errors, as sent (a JSON array of rows). A JSON null
-- (an error or value sent as null, or a change without a value) is kept as the jsonb 'null':
-- json_to_recordset reads it as SQL NULL, which the NOT NULL payload would refuse.
-- Stored once per dedup_key (migration 0011): a redelivered event is not stored again. Rows
-- go in key order, so concurrent writers of the same events lock them in the same order.
INSERT INTO whatsapp_webhook_events
    (kind, field, waba_id, phone_number_id, tenant_id, error_code, payload, dedup_key)
SELECT e.kind, e.field, e.waba_id, e.phone_number_id, e.tenant_id, e.error_code, e.payload,
       sha256(convert_to(concat_ws('|', e.kind, e.field, coalesce(e.waba_id, ''),
                                   coalesce(e.phone_number_id, ''), e.payload::text), 'UTF8'))
           AS dedup_key
FROM (SELECT u.kind, u.field, u.waba_id, u.phone_number_id, u.tenant_id, u.error_code,
             coalesce(u.payload, 'null'::jsonb) AS payload
      FROM json_to_recordset(%(rows)s::json)
           AS u(kind text, field text, waba_id text, phone_number_id text, tenant_id uuid,
                error_code int, payload jsonb)) AS e
ORDER BY dedup_key
ON CONFLICT (dedup_key) DO NOTHING;

-- name: apply_statuses
-- Moves outbound messages by every status stored for them, so the answer is the same
-- whatever order the webhooks came in, and a status that arrived before the worker recorded
-- the message's wamid is applied when this runs again for it. %(order)s is the domain's
-- STATUS_ORDER: a status replaces only one before it. Rows are locked in id order.
-- Only the statuses that came for the outbound message's own number and tenant apply: one
-- tenant, signing with its own app for its own number, cannot move another tenant's message.
WITH s AS (
    SELECT wamid, phone_number_id, tenant_id,
           (array_agg(status ORDER BY array_position(%(order)s::text[], status) DESC)
               FILTER (WHERE status = ANY (%(order)s::text[])))[1] AS best,
           min(occurred_at) FILTER (WHERE status = 'sent') AS sent_at,
           min(occurred_at) FILTER (WHERE status = 'delivered') AS delivered_at,
           min(occurred_at) FILTER (WHERE status = 'read') AS read_at,
           min(occurred_at) FILTER (WHERE status = 'played') AS played_at,
           min(occurred_at) FILTER (WHERE status = 'failed') AS failed_at,
           min(error_code) FILTER (WHERE status = 'failed') AS error_code,
           min(error_title) FILTER (WHERE status = 'failed') AS error_title,
           min(error_details) FILTER (WHERE status = 'failed') AS error_details
    FROM whatsapp_message_statuses
    WHERE wamid = ANY (%(wamids)s::text[])
    GROUP BY wamid, phone_number_id, tenant_id
),
target AS (
    SELECT o.id, s.*,
           CASE WHEN coalesce(array_position(%(order)s::text[], s.best), 0)
                     > coalesce(array_position(%(order)s::text[], o.status), 0)
                THEN s.best ELSE o.status END AS next_status
    FROM whatsapp_outbound_messages o
         JOIN s ON s.wamid = o.wamid
               AND s.phone_number_id = o.phone_number_id
               AND s.tenant_id IS NOT DISTINCT FROM o.tenant_id
    ORDER BY o.id
    FOR UPDATE OF o
)
UPDATE whatsapp_outbound_messages o SET
    status = t.next_status,
    sent_at = coalesce(o.sent_at, t.sent_at),
    delivered_at = coalesce(o.delivered_at, t.delivered_at),
    read_at = coalesce(o.read_at, t.read_at),
    played_at = coalesce(o.played_at, t.played_at),
    failed_at = coalesce(o.failed_at, t.failed_at),
    error_code = coalesce(t.error_code, o.error_code),
    error_title = coalesce(t.error_title, o.error_title),
    error_details = coalesce(t.error_details, o.error_details),
    updated_at = now()
FROM target t
WHERE o.id = t.id
  AND (o.status IS DISTINCT FROM t.next_status
       OR (o.sent_at IS NULL AND t.sent_at IS NOT NULL)
       OR (o.delivered_at IS NULL AND t.delivered_at IS NOT NULL)
       OR (o.read_at IS NULL AND t.read_at IS NOT NULL)
       OR (o.played_at IS NULL AND t.played_at IS NOT NULL)
       OR (o.failed_at IS NULL AND t.failed_at IS NOT NULL)
       OR o.error_code IS DISTINCT FROM coalesce(t.error_code, o.error_code))
RETURNING o.id, o.wamid, o.status;

-- name: whatsapp_credentials
-- Every active WhatsApp credential (secrets still encrypted), for the index of verify tokens
-- and app secrets; only the given tenants' when %(tenant_ids)s is not null.
SELECT id, tenant_id, integration_type, provider, credentials, config, is_active, is_verified,
       priority, created_at, updated_at, verified_at, verification_error
FROM tenant_integration_credentials
WHERE integration_type = 'whatsapp'
  AND is_active
  AND (%(tenant_ids)s::uuid[] IS NULL OR tenant_id = ANY (%(tenant_ids)s::uuid[]));
