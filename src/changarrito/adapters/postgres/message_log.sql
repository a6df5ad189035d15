-- The replies recorded around each send (message_log.py): the conversation so far, and each
-- part of a reply (whatsapp_outbound_messages, migrations 0004 and 0005), recorded whole
-- before any part is sent.

-- name: history
-- Earlier messages of one conversation (one customer, one number, one tenant) since a time:
-- what the customer wrote and each reply that reached Meta, newest first. The window is
-- Meta's time (``sent_at``), but the order is ours: when we received each message and made
-- each reply. Meta's timestamps for the customer's messages against ours for the replies
-- would put a backlog Meta redelivered late after the replies to it.
SELECT role, content FROM (
    SELECT 'user' AS role, i.text AS content, i.received_at AS at, i.id AS seq
    FROM whatsapp_inbound_messages i
    WHERE i.phone_number_id = %(phone_number_id)s
      AND i.customer_id = %(customer_id)s
      AND i.tenant_id IS NOT DISTINCT FROM %(tenant_id)s
      AND i.id <> %(id)s
      AND i.sent_at >= %(since)s AND i.sent_at <= %(until)s
      AND i.text IS NOT NULL
      AND i.type NOT IN ('reaction', 'system', 'unsupported')
    UNION ALL
    SELECT 'assistant', string_agg(o.text, E'\n\n' ORDER BY o.part), min(o.created_at),
           min(o.inbound_id)
    FROM whatsapp_outbound_messages o
    WHERE o.phone_number_id = %(phone_number_id)s
      AND o.recipient = ANY(%(recipients)s)
      AND o.tenant_id IS NOT DISTINCT FROM %(tenant_id)s
      AND o.created_at >= %(since)s
      AND o.wamid IS NOT NULL
      AND o.inbound_id IS DISTINCT FROM %(id)s
    GROUP BY coalesce(o.inbound_id, -o.id)
) conversation
ORDER BY at DESC, seq DESC
LIMIT %(limit)s

-- name: lock_message
SELECT id FROM whatsapp_inbound_messages WHERE id = %(id)s FOR UPDATE

-- name: planned
SELECT id, part, text, wamid, send_attempts
FROM whatsapp_outbound_messages
WHERE inbound_id = %(inbound_id)s
ORDER BY part

-- name: plan_parts
-- Every part of a reply, unless one is already recorded for the message (run after
-- lock_message, in the same transaction: this statement's snapshot sees a concurrent plan).
-- The first part is recorded as being sent (as ``sending`` marks it): it is sent right after.
-- Returns the parts it recorded, as ``planned`` would read them (none: a plan was there).
INSERT INTO whatsapp_outbound_messages
    (inbound_id, part, tenant_id, phone_number_id, recipient, text, is_fallback,
     send_attempts, send_started_at)
SELECT %(inbound_id)s, p.part, %(tenant_id)s::uuid, %(phone_number_id)s, %(recipient)s,
       p.text, %(is_fallback)s, (p.part = 1)::int, CASE WHEN p.part = 1 THEN now() END
FROM unnest(%(texts)s::text[]) WITH ORDINALITY AS p (text, part)
WHERE NOT EXISTS (
    SELECT 1 FROM whatsapp_outbound_messages o WHERE o.inbound_id = %(inbound_id)s)
ON CONFLICT (inbound_id, part) DO NOTHING
RETURNING id, part, text, wamid, send_attempts, part = 1 AS sending

-- name: sending
-- A part is about to be sent: one more attempt. ``plan`` counts the first part's with the
-- plan, ``sent`` the next part's with the wamid before it; alone, for a resumed reply.
UPDATE whatsapp_outbound_messages
SET send_attempts = send_attempts + 1, send_started_at = now(), updated_at = now()
WHERE id = %(id)s AND wamid IS NULL

-- name: sent
-- Meta accepted the part: record its wamid at once (status webhooks find the row by it).
UPDATE whatsapp_outbound_messages
SET wamid = %(wamid)s,
    status = CASE WHEN status = 'queued' THEN 'sent' ELSE status END,
    updated_at = now()
WHERE id = %(id)s
