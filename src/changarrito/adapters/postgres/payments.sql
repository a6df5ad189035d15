-- Queries of the payment store (payments.py). Same format as queries.sql: a block starts with
-- "-- name: <name>", followed by comment lines that describe it.

-- name: insert_link
-- A new link; the same provider link again (an idempotent retry of the same request) returns
-- the stored row when it is the same tenant's, and no row when it is another tenant's.
INSERT INTO payment_links
    (id, tenant_id, provider, provider_link_id, url, amount, currency, description, reference,
     status, source, conversation_id)
VALUES
    (%(id)s, %(tenant_id)s, %(provider)s, %(provider_link_id)s, %(url)s, %(amount)s,
     %(currency)s, %(description)s, %(reference)s, %(status)s, %(source)s,
     %(conversation_id)s)
ON CONFLICT (provider, provider_link_id) DO UPDATE SET updated_at = payment_links.updated_at
WHERE payment_links.tenant_id = EXCLUDED.tenant_id
RETURNING id, tenant_id, provider, provider_link_id, url, amount, currency, description,
          reference, source, status, created_at, updated_at, conversation_id;

-- name: get_link
-- The link with what its customer was told (``notices``: one per outcome, oldest first).
SELECT l.id, l.tenant_id, l.provider, l.provider_link_id, l.url, l.amount, l.currency,
       l.description, l.reference, l.source, l.status, l.created_at, l.updated_at,
       l.conversation_id,
       coalesce((SELECT jsonb_agg(jsonb_build_object(
                    'status', n.status, 'state', n.state, 'sentAs', n.sent_as,
                    'reasonCode', n.reason_code, 'reason', n.reason, 'attempts', n.attempts,
                    'updatedAt', n.updated_at) ORDER BY n.created_at, n.id)
                 FROM payment_notices n WHERE n.link_id = l.id), '[]'::jsonb) AS notices
FROM payment_links l
WHERE l.id = %(id)s AND l.tenant_id = %(tenant_id)s;

-- name: has_conversation
SELECT EXISTS (SELECT 1 FROM whatsapp_conversations
               WHERE id = %(id)s AND tenant_id = %(tenant_id)s);

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
       reference, source, status, created_at, updated_at, conversation_id
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
          reference, source, status, created_at, updated_at, conversation_id;

-- name: attach_event
UPDATE payment_events SET link_id = %(link_id)s WHERE id = %(id)s;

-- name: file_notice
-- The link moved to paid, failed or expired and names a conversation: its notice, once per
-- link and status (a repeated notification files nothing), and a wake-up for the workers.
WITH filed AS (
    INSERT INTO payment_notices (link_id, tenant_id, conversation_id, status)
    VALUES (%(link_id)s, %(tenant_id)s, %(conversation_id)s, %(status)s)
    ON CONFLICT (link_id, status) DO NOTHING
    RETURNING id
)
SELECT id, pg_notify('changarrito_inbound', 'notice') FROM filed;

-- name: claim_notices
-- Leases due notices (pending, due, not held by a live lease), oldest first, each with its
-- link; ``attempts`` counts this one.
WITH due AS (
    SELECT n.id
    FROM payment_notices n
    WHERE n.state = 'pending' AND n.due_at <= now()
      AND (n.lease_until IS NULL OR n.lease_until < now())
    ORDER BY n.due_at, n.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE payment_notices n
    SET claimed_by = %(worker)s, lease_until = now() + make_interval(secs => %(lease)s),
        attempts = n.attempts + 1, updated_at = now()
    FROM due
    WHERE n.id = due.id
    RETURNING n.id, n.link_id, n.status, n.attempts
)
SELECT leased.id AS notice_id, leased.status AS notice_status, leased.attempts,
       l.id, l.tenant_id, l.provider, l.provider_link_id, l.url, l.amount, l.currency,
       l.description, l.reference, l.source, l.status, l.created_at, l.updated_at,
       l.conversation_id
FROM leased
JOIN payment_links l ON l.id = leased.link_id
ORDER BY leased.id;

-- name: settle_notice
UPDATE payment_notices
SET state = %(state)s, sent_as = %(sent_as)s, reason_code = %(reason_code)s,
    reason = %(reason)s, outbound_id = %(outbound_id)s, claimed_by = NULL, lease_until = NULL,
    updated_at = now()
WHERE id = %(id)s;

-- name: retry_notice
UPDATE payment_notices
SET due_at = now() + make_interval(secs => %(delay)s), reason = %(reason)s,
    claimed_by = NULL, lease_until = NULL, updated_at = now()
WHERE id = %(id)s;
