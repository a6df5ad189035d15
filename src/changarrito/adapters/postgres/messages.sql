-- The WhatsApp webhook intake's writes. Loaded at import by messages.py (same block format as
-- queries.sql). Each insert takes all its rows as one JSON array and writes them in one
-- statement; the raw JSON Meta sent is embedded as is, never parsed and re-encoded here.

-- name: insert_inbound
-- New inbound messages, given as one JSON array of row objects (encoded by msgspec: far
-- cheaper than one array parameter per column); a wamid already stored (a redelivery, or
-- another process that got the same webhook) is skipped. Each routed message with a sender
-- gets its conversation (``changarrito_conversation``, migration 0013: the contact created
-- or merged, the window moved), in (number, customer) order so that concurrent writers lock
-- conversations in the same order. A message to answer is first due ``wait`` seconds from
-- now (its conversation's quiet period). Returns the wamids inserted.
WITH u AS (
    SELECT *
    FROM json_to_recordset(%(rows)s::json)
         AS u(wamid text, phone_number_id text, display_phone_number text, waba_id text,
              tenant_id uuid, route text, customer_id text, customer_phone text,
              customer_user_id text, customer_name text, type text, text text,
              context_wamid text, raw jsonb, sent_at timestamptz, state text, opens boolean,
              wait float8)
),
conversation AS MATERIALIZED (
    SELECT u.wamid,
           CASE WHEN u.route <> 'unrouted' THEN
               changarrito_conversation(u.phone_number_id, u.tenant_id, u.customer_phone,
                                        u.customer_user_id, u.customer_name, u.sent_at, u.opens)
           END AS id
    FROM u
    ORDER BY u.phone_number_id, u.customer_id, u.wamid
)
INSERT INTO whatsapp_inbound_messages
    (wamid, phone_number_id, display_phone_number, waba_id, tenant_id, route, customer_id,
     customer_phone, customer_user_id, customer_name, type, text, context_wamid, raw, sent_at,
     state, conversation_id, available_at)
SELECT u.wamid, u.phone_number_id, u.display_phone_number, u.waba_id, u.tenant_id, u.route,
       u.customer_id, u.customer_phone, u.customer_user_id, u.customer_name, u.type, u.text,
       u.context_wamid, u.raw, u.sent_at, u.state, c.id,
       now() + make_interval(secs => u.wait)
FROM u JOIN conversation c USING (wamid)
ORDER BY u.wamid
ON CONFLICT (wamid) DO NOTHING
RETURNING wamid;

-- name: apply_changes
-- The customer's edits and deletions (inbound ``edit`` / ``revoke``, a JSON array of
-- {wamid, phone_number_id, kind, text}), applied to the message each changes, of the same
-- number and conversation: an edit replaces its text (and, until it is answered, the text the
-- assistant will read); a message deleted before it was answered is not answered.
UPDATE whatsapp_inbound_messages m SET
    text = CASE WHEN c.kind = 'edit' AND c.text IS NOT NULL THEN c.text ELSE m.text END,
    edited_at = CASE WHEN c.kind = 'edit' THEN now() ELSE m.edited_at END,
    revoked_at = CASE WHEN c.kind = 'revoke' THEN now() ELSE m.revoked_at END,
    state = CASE WHEN c.kind = 'revoke' AND m.state = 'pending' THEN 'ignored' ELSE m.state END,
    last_error = CASE WHEN c.kind = 'revoke' AND m.state = 'pending'
                      THEN 'deleted by the customer before it was answered'
                      ELSE m.last_error END,
    updated_at = now()
FROM json_to_recordset(%(rows)s::json)
     AS c(wamid text, phone_number_id text, customer_id text, kind text, text text)
WHERE m.wamid = c.wamid AND m.phone_number_id = c.phone_number_id
  AND m.customer_id = c.customer_id;

-- name: insert_echoes
-- What the owner sent from the WhatsApp Business app (a JSON array of rows of routed numbers):
-- stored once per wamid as an outbound message by the owner in the customer's conversation.
-- The owner's edits and deletions are not stored as messages. ``switch_to_owner`` then hands
-- those conversations to a person.
WITH e AS (
    SELECT *
    FROM json_to_recordset(%(rows)s::json)
         AS e(wamid text, phone_number_id text, tenant_id uuid, owner text, customer text,
              customer_user_id text, type text, text text, sent_at timestamptz)
),
conversation AS MATERIALIZED (
    SELECT e.wamid,
           changarrito_conversation(e.phone_number_id, e.tenant_id, e.customer,
                                    e.customer_user_id, NULL, e.sent_at, false) AS id
    FROM e
    ORDER BY e.phone_number_id, coalesce(e.customer, e.customer_user_id), e.wamid
)
INSERT INTO whatsapp_outbound_messages
    (inbound_id, part, tenant_id, phone_number_id, recipient, text, wamid, status, sent_at,
     conversation_id, author, author_ref)
SELECT NULL, 1, e.tenant_id, e.phone_number_id, coalesce(e.customer, e.customer_user_id),
       coalesce(e.text, '[' || e.type || ']'), e.wamid, 'sent', e.sent_at, c.id, 'owner', e.owner
FROM e JOIN conversation c USING (wamid)
WHERE e.type NOT IN ('edit', 'revoke') AND c.id IS NOT NULL
ORDER BY e.wamid
ON CONFLICT (wamid) DO NOTHING;

-- name: switch_to_owner
-- The conversations of the owner's echoes stored by ``insert_echoes`` in this transaction
-- (``created_at = now()``, the transaction's time: a redelivered echo, stored before,
-- switches nothing) go to a person (``human``, counted from now for the idle resume), with
-- the switch recorded once. A separate statement: one statement may not update a
-- conversation row that ``changarrito_conversation`` already updated in it.
WITH owners AS (
    SELECT DISTINCT ON (o.conversation_id) o.conversation_id AS id, o.author_ref AS owner
    FROM whatsapp_outbound_messages o
    WHERE o.wamid = ANY (%(wamids)s::text[]) AND o.author = 'owner' AND o.created_at = now()
      AND o.conversation_id IS NOT NULL
    ORDER BY o.conversation_id, o.sent_at DESC
),
switched AS (
    UPDATE whatsapp_conversations v SET
        state = 'human',
        state_changed_at = CASE WHEN v.state <> 'human' THEN now() ELSE v.state_changed_at END,
        state_changed_by = CASE WHEN v.state <> 'human' THEN 'owner:' || coalesce(o.owner, '')
                                ELSE v.state_changed_by END,
        human_active_at = now(),
        last_activity_at = now(),
        updated_at = now()
    FROM owners o, whatsapp_conversations before
    WHERE v.id = o.id AND before.id = o.id
    RETURNING v.id, before.state AS was, o.owner
)
INSERT INTO whatsapp_conversation_switches (conversation_id, from_state, to_state, actor, reason)
SELECT s.id, s.was, 'human', 'owner:' || coalesce(s.owner, ''),
       'the owner wrote from the WhatsApp Business app'
FROM switched s
WHERE s.was <> 'human';

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
