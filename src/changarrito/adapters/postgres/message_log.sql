-- The replies recorded around each send (message_log.py): the conversation so far, and each
-- part of a reply (whatsapp_outbound_messages, migrations 0004 and 0005), recorded whole
-- before any part is sent.

-- name: turn_conversation
-- The claimed message's conversation (who answers it, the "only text" notice), when the
-- message reached us, and the database's clock.
SELECT m.conversation_id, coalesce(c.state, 'bot') AS state, now() AS now, m.received_at,
       c.human_active_at, c.text_only_notice_at
FROM whatsapp_inbound_messages m
LEFT JOIN whatsapp_conversations c ON c.id = m.conversation_id
WHERE m.id = %(id)s

-- name: turn_waiting
-- The conversation's other messages waiting to be answered (a burst: the claim takes a
-- conversation's oldest, and the rest join its reply), oldest first.
SELECT w.id, w.wamid, w.type, w.text, w.received_at
FROM whatsapp_inbound_messages m
JOIN whatsapp_inbound_messages w ON w.conversation_id = m.conversation_id
WHERE m.id = %(id)s AND w.id <> m.id AND w.state = 'pending' AND w.revoked_at IS NULL
ORDER BY w.received_at, w.id
LIMIT %(waiting)s

-- name: history
-- Earlier messages of the claimed message's conversation since a time, newest first: what
-- the customer wrote (not what is still waiting: that is the turn) and every message that
-- reached them (the bot's replies, the shop's and the owner's messages; a picture or document
-- the shop sent is named as one, with its caption). The window is
-- Meta's time (``sent_at``), but the order is ours: when we received each message and made
-- each reply. Meta's timestamps for the customer's messages against ours for the replies
-- would put a backlog Meta redelivered late after the replies to it.
SELECT role, content FROM (
    SELECT 'user' AS role, i.text AS content, i.received_at AS at, i.id AS seq
    FROM whatsapp_inbound_messages m
    JOIN whatsapp_inbound_messages i ON i.conversation_id = m.conversation_id
    WHERE m.id = %(id)s
      AND i.id <> m.id
      AND i.state NOT IN ('pending', 'processing')
      AND i.revoked_at IS NULL
      AND i.sent_at >= %(since)s
      AND i.text IS NOT NULL
      AND i.type NOT IN ('reaction', 'system', 'unsupported')
    UNION ALL
    SELECT 'assistant',
           string_agg(CASE WHEN o.media IS NULL THEN o.text
                           ELSE btrim(CASE o.media ->> 'type' WHEN 'image' THEN '[a photo] '
                                                              ELSE '[a document] ' END
                                      || o.text) END,
                      E'\n\n' ORDER BY o.part),
           min(o.created_at),
           coalesce(min(o.inbound_id), 0)
    FROM whatsapp_inbound_messages m
    JOIN whatsapp_outbound_messages o ON o.conversation_id = m.conversation_id
    WHERE m.id = %(id)s
      AND o.created_at >= %(since)s
      AND o.wamid IS NOT NULL
      AND o.inbound_id IS DISTINCT FROM m.id
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

-- name: lock_conversation
SELECT state FROM whatsapp_conversations WHERE id = %(conversation_id)s FOR UPDATE

-- name: plan_parts
-- Every part of a reply, unless one is already recorded for the message (run after
-- lock_message and lock_conversation, in the same transaction: this statement's snapshot
-- sees a concurrent plan, and a switch to a person committed meanwhile). Nothing is recorded
-- when the conversation is not the bot's (a person took it over while the reply was being
-- written) or the customer deleted the message. The first part is recorded as being sent
-- (as ``sending`` marks it): it is sent right after. Returns the parts it recorded, as
-- ``planned`` would read them (none: a plan was there, or the reply is dropped).
INSERT INTO whatsapp_outbound_messages
    (inbound_id, part, tenant_id, phone_number_id, recipient, text, is_fallback,
     send_attempts, send_started_at, conversation_id)
SELECT %(inbound_id)s, p.part, %(tenant_id)s::uuid, %(phone_number_id)s, %(recipient)s,
       p.text, %(is_fallback)s, (p.part = 1)::int, CASE WHEN p.part = 1 THEN now() END,
       (SELECT i.conversation_id FROM whatsapp_inbound_messages i WHERE i.id = %(inbound_id)s)
FROM unnest(%(texts)s::text[]) WITH ORDINALITY AS p (text, part)
WHERE NOT EXISTS (
    SELECT 1 FROM whatsapp_outbound_messages o WHERE o.inbound_id = %(inbound_id)s)
  AND (%(conversation_id)s::uuid IS NULL OR EXISTS (
    SELECT 1 FROM whatsapp_conversations c
    WHERE c.id = %(conversation_id)s::uuid AND c.state = 'bot'))
  AND NOT EXISTS (
    SELECT 1 FROM whatsapp_inbound_messages i
    WHERE i.id = %(inbound_id)s AND i.revoked_at IS NOT NULL)
ON CONFLICT (inbound_id, part) DO NOTHING
RETURNING id, part, text, wamid, send_attempts, part = 1 AS sending

-- name: join_turn
-- The turn's waiting messages are answered by this reply (state joined, joined_to), once it
-- is recorded; with it, the conversation's last activity and the "only text" notice.
WITH replied AS (
    SELECT 1 FROM whatsapp_outbound_messages o WHERE o.inbound_id = %(inbound_id)s LIMIT 1
), joined AS (
    UPDATE whatsapp_inbound_messages m
    SET state = 'joined', joined_to = %(inbound_id)s, updated_at = now()
    WHERE m.id = ANY (%(waiting)s::bigint[]) AND m.state = 'pending' AND EXISTS (TABLE replied)
    RETURNING m.id
)
UPDATE whatsapp_conversations c
SET last_activity_at = greatest(c.last_activity_at, now()),
    text_only_notice_at = CASE WHEN %(notice)s THEN coalesce(c.text_only_notice_at, now())
                               ELSE c.text_only_notice_at END,
    updated_at = now()
WHERE c.id = %(conversation_id)s::uuid AND EXISTS (TABLE replied)

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

-- name: media_items
-- The media items of these messages (media_items in message_log.py): filed in whatsapp_media
-- from the stored webhook the first time a worker sees them, with what became of each so
-- far and the message's current text (the caption, or once transcribed the transcript).
-- The rows this statement files are not visible to its own snapshot: they come from the
-- INSERT's RETURNING, the ones filed before from the table.
WITH filed AS (
    INSERT INTO whatsapp_media
        (inbound_id, tenant_id, kind, media_id, mime_type, sha256, filename, voice)
    SELECT m.id, m.tenant_id, m.type,
           left(m.raw -> m.type ->> 'id', 128),
           left(m.raw -> m.type ->> 'mime_type', 255),
           left(m.raw -> m.type ->> 'sha256', 128),
           left(m.raw -> m.type ->> 'filename', 255),
           coalesce(m.raw -> m.type -> 'voice' = 'true'::jsonb, false)
    FROM whatsapp_inbound_messages m
    WHERE m.id = ANY (%(ids)s::bigint[])
      AND m.type IN ('audio', 'image', 'video', 'document', 'sticker')
    ON CONFLICT (inbound_id) DO NOTHING
    RETURNING *
)
SELECT f.inbound_id, f.kind, f.media_id, f.mime_type, f.sha256, f.filename, f.voice,
       f.state, f.reason_code, f.reason, m.text
FROM filed f JOIN whatsapp_inbound_messages m ON m.id = f.inbound_id
UNION ALL
SELECT f.inbound_id, f.kind, f.media_id, f.mime_type, f.sha256, f.filename, f.voice,
       f.state, f.reason_code, f.reason, m.text
FROM whatsapp_media f JOIN whatsapp_inbound_messages m ON m.id = f.inbound_id
WHERE f.inbound_id = ANY (%(ids)s::bigint[])

-- name: media_outcome
-- What became of an item; a transcribed one stays transcribed.
UPDATE whatsapp_media
SET state = %(state)s, reason_code = %(reason_code)s, reason = left(%(reason)s, 500),
    updated_at = now()
WHERE inbound_id = %(inbound_id)s AND state <> 'transcribed'

-- name: media_transcribed
-- A voice note's transcript becomes its message's text, once, with the transcription's use:
-- a retry, or another worker, finds it done and keeps the first. Returns the text stored
-- (the statement's snapshot still sees the text from before its own update).
WITH done AS (
    UPDATE whatsapp_media
    SET state = 'transcribed', reason_code = NULL, reason = NULL, updated_at = now()
    WHERE inbound_id = %(inbound_id)s AND state <> 'transcribed'
    RETURNING inbound_id
), stored AS (
    UPDATE whatsapp_inbound_messages m
    SET text = %(text)s, updated_at = now()
    FROM done WHERE m.id = done.inbound_id
    RETURNING m.text
), used AS (
    INSERT INTO whatsapp_media_uses
        (inbound_id, tenant_id, use, source, provider, model, seconds, input_tokens,
         output_tokens)
    SELECT inbound_id, %(tenant_id)s::uuid, 'transcription', %(source)s, %(provider)s,
           %(model)s, %(seconds)s, %(input_tokens)s, %(output_tokens)s
    FROM done
)
SELECT coalesce((SELECT text FROM stored),
                (SELECT text FROM whatsapp_inbound_messages WHERE id = %(inbound_id)s))

-- name: media_used
-- The pictures and documents a model was sent in one call.
WITH used AS (
    INSERT INTO whatsapp_media_uses (inbound_id, tenant_id, use, source, provider, model)
    SELECT u.inbound_id, %(tenant_id)s::uuid, u.use, %(source)s, %(provider)s, %(model)s
    FROM unnest(%(ids)s::bigint[], %(uses)s::text[]) AS u (inbound_id, use)
    RETURNING inbound_id
)
UPDATE whatsapp_media f SET state = 'read', reason_code = NULL, reason = NULL, updated_at = now()
WHERE f.inbound_id IN (SELECT inbound_id FROM used) AND f.state <> 'transcribed'

-- name: llm_used
-- An LLM call in the usage ledger (migration 0018), once per act key.
INSERT INTO usage_ledger (act_key, tenant_id, source, kind, provider, model, input_tokens,
                          output_tokens)
VALUES (%(act_key)s, %(tenant_id)s, %(source)s, 'llm_call', %(provider)s, %(model)s,
        %(input_tokens)s, %(output_tokens)s)
ON CONFLICT (act_key) DO NOTHING
