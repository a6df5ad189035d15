-- Queries of the inbox (conversations.py): conversations, their messages in and out, and
-- their switches (migration 0013). Every query is scoped: ``tenant_id`` is the caller's
-- tenant, NULL the platform's own number (``IS NOT DISTINCT FROM``: NULL matches only NULL).

-- name: list_conversations
-- A page of the scope's conversations, newest activity first, after the (last_activity_at,
-- id) of the previous page's last one. ``name``: a part of the contact's name, any case;
-- ``digits``: a part of its phone.
SELECT c.id, c.tenant_id, c.phone_number_id, c.state, ct.name AS contact_name,
       ct.phone AS contact_phone, ct.user_id AS contact_user_id, c.window_open_until,
       c.last_inbound_at, c.last_activity_at, c.state_changed_at, c.state_changed_by,
       c.created_at
FROM whatsapp_conversations c
JOIN whatsapp_contacts ct ON ct.id = c.contact_id
WHERE c.tenant_id IS NOT DISTINCT FROM %(tenant_id)s::uuid
  AND (%(state)s::text IS NULL OR c.state = %(state)s::text)
  AND (%(name)s::text IS NULL
       OR strpos(lower(ct.name), lower(%(name)s::text)) > 0
       OR (%(digits)s::text IS NOT NULL AND strpos(ct.phone, %(digits)s::text) > 0))
  AND (%(after_at)s::timestamptz IS NULL
       OR (c.last_activity_at, c.id) < (%(after_at)s::timestamptz, %(after_id)s::uuid))
ORDER BY c.last_activity_at DESC, c.id DESC
LIMIT %(limit)s

-- name: get_conversation
SELECT c.id, c.tenant_id, c.phone_number_id, c.state, ct.name AS contact_name,
       ct.phone AS contact_phone, ct.user_id AS contact_user_id, c.window_open_until,
       c.last_inbound_at, c.last_activity_at, c.state_changed_at, c.state_changed_by,
       c.created_at
FROM whatsapp_conversations c
JOIN whatsapp_contacts ct ON ct.id = c.contact_id
WHERE c.id = %(id)s AND c.tenant_id IS NOT DISTINCT FROM %(tenant_id)s::uuid

-- name: conversation_switches
-- The conversation's latest switches, newest first.
SELECT s.from_state, s.to_state, s.actor, s.reason, s.at
FROM whatsapp_conversation_switches s
JOIN whatsapp_conversations c ON c.id = s.conversation_id
WHERE c.id = %(id)s AND c.tenant_id IS NOT DISTINCT FROM %(tenant_id)s::uuid
ORDER BY s.at DESC, s.id DESC
LIMIT %(limit)s

-- name: conversation_messages
-- A page of a conversation's messages, in and out, newest first: inbound by when we received
-- them, outbound by when they were recorded; at the same instant an outbound one (rank 1)
-- comes before an inbound one (rank 0), then the higher row id. ``after_*``: the key of the
-- previous page's last message. A message that joined another (a burst) shows the state of
-- the one it joined. ``media``: an inbound item's row of ``whatsapp_media`` (migration 0014,
-- what Meta said it is and what became of it; NULL before a worker wrote it), an outbound
-- picture's or document's ``media`` as recorded. Never ``raw``.
(SELECT 'inbound' AS direction, 0 AS rank, i.id AS row_id, 'customer' AS author, i.type,
        i.text, i.wamid, i.received_at AS at,
        CASE WHEN i.state = 'joined' THEN coalesce(j.state, i.state) ELSE i.state END AS status,
        i.joined_to AS answered_with, NULL::integer AS error_code, NULL::text AS error_title,
        i.edited_at IS NOT NULL AS edited, i.revoked_at IS NOT NULL AS deleted,
        CASE WHEN m.inbound_id IS NOT NULL THEN
            jsonb_build_object('type', m.kind, 'mimeType', m.mime_type, 'size', m.file_size,
                               'filename', m.filename, 'state', m.state,
                               'reasonCode', m.reason_code, 'reason', m.reason)
        END AS media,
        NULL::jsonb AS template
 FROM whatsapp_inbound_messages i
 LEFT JOIN whatsapp_inbound_messages j ON j.id = i.joined_to
 LEFT JOIN whatsapp_media m ON m.inbound_id = i.id
 WHERE i.conversation_id = %(id)s AND i.tenant_id IS NOT DISTINCT FROM %(tenant_id)s::uuid
   AND (%(after_at)s::timestamptz IS NULL
        OR (i.received_at, 0, i.id)
           < (%(after_at)s::timestamptz, %(after_rank)s::integer, %(after_id)s::bigint))
 ORDER BY i.received_at DESC, i.id DESC
 LIMIT %(limit)s)
UNION ALL
(SELECT (changarrito_outbound_message(o)).*
 FROM whatsapp_outbound_messages o
 WHERE o.conversation_id = %(id)s AND o.tenant_id IS NOT DISTINCT FROM %(tenant_id)s::uuid
   AND (%(after_at)s::timestamptz IS NULL
        OR (o.created_at, 1, o.id)
           < (%(after_at)s::timestamptz, %(after_rank)s::integer, %(after_id)s::bigint))
 ORDER BY o.created_at DESC, o.id DESC
 LIMIT %(limit)s)
ORDER BY at DESC, rank DESC, row_id DESC
LIMIT %(limit)s

-- name: record_shop_message
-- A message the shop sends through the API, recorded before it is sent (no wamid yet, one
-- send attempt counted), with the person's activity on the conversation; no row when the
-- conversation is not the scope's. ``media``: a picture's or document's (``text`` is then
-- its caption, or ''), NULL for a text; ``template_*``: an approved template's (``text`` is
-- then what the customer reads). With an ``idempotency_key`` (a message sent once for a
-- purpose) the row of an earlier attempt is taken again, its text and template as chosen now,
-- unless Meta already accepted it: then no row (``shop_message_by_key`` reads it).
WITH conversation AS (
    UPDATE whatsapp_conversations c
    SET last_activity_at = greatest(c.last_activity_at, now()),
        human_active_at = CASE WHEN %(author)s::text = 'shop' THEN now()
                               ELSE c.human_active_at END,
        updated_at = now()
    WHERE c.id = %(conversation_id)s AND c.tenant_id IS NOT DISTINCT FROM %(tenant_id)s::uuid
    RETURNING c.id, c.tenant_id, c.phone_number_id
)
INSERT INTO whatsapp_outbound_messages AS o
    (conversation_id, author, author_ref, inbound_id, tenant_id, phone_number_id, recipient,
     text, media, send_attempts, send_started_at, template_name, template_language,
     template_category, outside_window, purpose, idempotency_key)
SELECT id, %(author)s::text, %(author_ref)s::text, NULL, tenant_id, phone_number_id,
       %(recipient)s, %(text)s, %(media)s::jsonb, 1, now(), %(template_name)s::text,
       %(template_language)s::text, %(template_category)s::text, %(outside_window)s::boolean,
       %(purpose)s::text, %(idempotency_key)s::text
FROM conversation
ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO UPDATE
SET text = EXCLUDED.text, template_name = EXCLUDED.template_name,
    template_language = EXCLUDED.template_language,
    template_category = EXCLUDED.template_category, outside_window = EXCLUDED.outside_window,
    purpose = EXCLUDED.purpose, recipient = EXCLUDED.recipient, status = 'queued',
    failed_at = NULL, error_code = NULL, error_title = NULL, error_details = NULL,
    send_attempts = o.send_attempts + 1,
    send_started_at = now(), updated_at = now()
WHERE o.wamid IS NULL
RETURNING (changarrito_outbound_message(o)).*

-- name: shop_message_by_key
-- The message recorded under an idempotency key (one Meta accepted already, when
-- ``record_shop_message`` returned none).
SELECT (changarrito_outbound_message(o)).*
FROM whatsapp_outbound_messages o
WHERE o.idempotency_key = %(idempotency_key)s

-- name: open_conversation
-- The conversation of a customer the shop writes to first (``changarrito_conversation``
-- finds or files the contact, by phone or business-scoped user id, without opening the
-- window: a business message does not open it).
SELECT changarrito_conversation(%(phone_number_id)s, %(tenant_id)s::uuid, %(phone)s::text,
                                %(user_id)s::text, NULL, now(), false)

-- name: shop_message_sent
-- Meta accepted it: its wamid (status webhooks find the row by it) and, for an uploaded
-- picture or document, the media id Graph gave it (``media.id``).
UPDATE whatsapp_outbound_messages
SET wamid = %(wamid)s, status = CASE WHEN status = 'queued' THEN 'sent' ELSE status END,
    media = CASE WHEN %(media_id)s::text IS NULL THEN media
                 ELSE media || jsonb_build_object('id', %(media_id)s::text) END,
    updated_at = now()
WHERE id = %(id)s
RETURNING (changarrito_outbound_message(whatsapp_outbound_messages)).*

-- name: shop_message_failed
-- Meta refused it (or could not be reached): no wamid, failed, with the error.
UPDATE whatsapp_outbound_messages
SET status = 'failed', failed_at = now(), error_code = %(code)s, error_title = %(title)s,
    error_details = %(details)s, updated_at = now()
WHERE id = %(id)s AND wamid IS NULL
RETURNING (changarrito_outbound_message(whatsapp_outbound_messages)).*

-- name: switch_conversation
-- Moves a conversation to ``to_state`` ('bot', 'human', 'closed') unless it is there
-- already, in one statement: locks the row, updates state, state_changed_at and
-- state_changed_by (and human_active_at when a person takes it), and records the switch
-- (from_state, to_state, actor, reason). ``tenant_id`` NULL: the platform's number. The
-- inbox's handoff and resume use it, and so do the pipeline's model handoff and idle resume.
-- Returns one row, (state, switched), when the conversation is in the scope (``switched``:
-- this call changed it); none otherwise.
WITH locked AS (
    SELECT c.id, c.state
    FROM whatsapp_conversations c
    WHERE c.id = %(id)s AND c.tenant_id IS NOT DISTINCT FROM %(tenant_id)s::uuid
    FOR UPDATE
), changed AS (
    UPDATE whatsapp_conversations c
    SET state = %(to_state)s::text, state_changed_at = now(),
        state_changed_by = %(actor)s::text,
        human_active_at = CASE WHEN %(to_state)s::text = 'human' THEN now()
                               ELSE c.human_active_at END,
        updated_at = now()
    FROM locked
    WHERE c.id = locked.id AND locked.state <> %(to_state)s::text
    RETURNING c.id, locked.state AS from_state, c.state
), recorded AS (
    INSERT INTO whatsapp_conversation_switches (conversation_id, from_state, to_state, actor,
                                                reason)
    SELECT changed.id, changed.from_state, changed.state, %(actor)s::text, %(reason)s::text
    FROM changed
)
SELECT coalesce(changed.state, locked.state) AS state, changed.id IS NOT NULL AS switched
FROM locked
LEFT JOIN changed ON changed.id = locked.id
