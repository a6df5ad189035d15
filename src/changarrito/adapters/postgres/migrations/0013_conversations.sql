-- Conversations: one thread per customer of a business number, which a person can take over.
--
-- A contact is a customer as one receiving number (and its owner at the time) knows them:
-- by the business-scoped user id (BSUID) when Meta gives one, by the phone when it gives one,
-- by both once a webhook has shown both (``changarrito_conversation`` merges them, following
-- the rules of ``domain/conversations.py``). Each contact has one conversation: its state
-- (``bot`` answers; ``human``: a person does, the bot stays silent; ``closed``), the 24-hour
-- customer-service window, and every message in and out. The inbound table stays the
-- workers' queue; its rows and the replies name their conversation.

CREATE TABLE whatsapp_contacts (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    phone_number_id text NOT NULL,
    tenant_id       uuid,
    user_id         text,
    phone           text,
    name            text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT whatsapp_contacts_known CHECK (user_id IS NOT NULL OR phone IS NOT NULL)
);

COMMENT ON TABLE whatsapp_contacts IS
    'A customer of one business number (and its owner): by BSUID, by phone, or both (merged).';
COMMENT ON COLUMN whatsapp_contacts.user_id IS
    'The business-scoped user id (messages[].from_user_id, contacts[].user_id), when seen.';
COMMENT ON COLUMN whatsapp_contacts.phone IS
    'The customer''s phone number (digits without +), when seen; the newest one.';
COMMENT ON COLUMN whatsapp_contacts.name IS
    'The customer''s WhatsApp profile name, as last seen.';

CREATE UNIQUE INDEX whatsapp_contacts_user_key
    ON whatsapp_contacts (phone_number_id,
                          coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid),
                          user_id)
    WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX whatsapp_contacts_phone_key
    ON whatsapp_contacts (phone_number_id,
                          coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid),
                          phone)
    WHERE phone IS NOT NULL;

CREATE TABLE whatsapp_conversations (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    contact_id      uuid NOT NULL UNIQUE REFERENCES whatsapp_contacts (id) ON DELETE CASCADE,
    phone_number_id text NOT NULL,
    tenant_id       uuid,
    state           text NOT NULL DEFAULT 'bot' CHECK (state IN ('bot', 'human', 'closed')),
    state_changed_at timestamptz NOT NULL DEFAULT now(),
    state_changed_by text NOT NULL DEFAULT 'system',
    human_active_at timestamptz,
    window_open_until timestamptz,
    last_inbound_at timestamptz,
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    text_only_notice_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE whatsapp_conversations IS
    'One per contact: who answers it (bot, human, closed) and its customer-service window.';
COMMENT ON COLUMN whatsapp_conversations.state IS
    'bot (the assistant answers), human (a person does; the assistant is silent), closed.';
COMMENT ON COLUMN whatsapp_conversations.state_changed_by IS
    'Who made the last switch: api:<subject>, owner:<phone>, model, idle, customer, system.';
COMMENT ON COLUMN whatsapp_conversations.human_active_at IS
    'The last time a person acted in it (handoff, a message by the shop or the owner): the idle resume counts from here.';
COMMENT ON COLUMN whatsapp_conversations.window_open_until IS
    'End of the customer-service window: 24 h after Meta''s timestamp of the customer''s last message (never later than 24 h after we received it).';
COMMENT ON COLUMN whatsapp_conversations.text_only_notice_at IS
    'When the customer was told, once, that only text can be read for now.';

CREATE INDEX whatsapp_conversations_tenant_activity_idx
    ON whatsapp_conversations (tenant_id, last_activity_at DESC, id DESC);

-- Every inbound message updates its conversation's row (the window, the last activity, in
-- an indexed column: never HOT), so the table leaves dead rows at the message rate, like the
-- queue's tables: the same count-based autovacuum thresholds as migration 0012's.
ALTER TABLE whatsapp_conversations SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_analyze_threshold = 5000,
    autovacuum_vacuum_cost_limit = 2000,
    autovacuum_vacuum_cost_delay = 2
);

CREATE TABLE whatsapp_conversation_switches (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES whatsapp_conversations (id) ON DELETE CASCADE,
    from_state      text NOT NULL,
    to_state        text NOT NULL,
    actor           text NOT NULL,
    reason          text,
    at              timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE whatsapp_conversation_switches IS
    'Every change of a conversation''s state, with who made it and why.';

CREATE INDEX whatsapp_conversation_switches_conversation_idx
    ON whatsapp_conversation_switches (conversation_id, at);

ALTER TABLE whatsapp_inbound_messages
    ADD COLUMN conversation_id uuid REFERENCES whatsapp_conversations (id) ON DELETE SET NULL,
    ADD COLUMN joined_to bigint REFERENCES whatsapp_inbound_messages (id) ON DELETE SET NULL,
    ADD COLUMN edited_at timestamptz,
    ADD COLUMN revoked_at timestamptz;
ALTER TABLE whatsapp_inbound_messages DROP CONSTRAINT whatsapp_inbound_messages_state_check;
ALTER TABLE whatsapp_inbound_messages ADD CONSTRAINT whatsapp_inbound_messages_state_check
    CHECK (state IN ('pending', 'processing', 'answered', 'ignored', 'failed', 'dead', 'joined'));

COMMENT ON COLUMN whatsapp_inbound_messages.conversation_id IS
    'The conversation it belongs to (NULL for numbers nobody owns and senders Meta did not name).';
COMMENT ON COLUMN whatsapp_inbound_messages.joined_to IS
    'State joined: answered together with this message (a burst inside the quiet period gets one reply).';
COMMENT ON COLUMN whatsapp_inbound_messages.edited_at IS
    'When the customer edited it (its text is the edited one).';
COMMENT ON COLUMN whatsapp_inbound_messages.revoked_at IS
    'When the customer deleted it; a message deleted before it was answered is not answered.';

CREATE INDEX whatsapp_inbound_messages_by_conversation_idx
    ON whatsapp_inbound_messages (conversation_id, received_at, id);
-- A conversation's messages waiting to be answered (a burst, message_log.sql turn_waiting).
CREATE INDEX whatsapp_inbound_messages_waiting_idx
    ON whatsapp_inbound_messages (conversation_id, received_at, id) WHERE state = 'pending';

ALTER TABLE whatsapp_outbound_messages
    ADD COLUMN conversation_id uuid REFERENCES whatsapp_conversations (id) ON DELETE SET NULL,
    ADD COLUMN author text NOT NULL DEFAULT 'bot' CHECK (author IN ('bot', 'shop', 'owner')),
    ADD COLUMN author_ref text;

COMMENT ON COLUMN whatsapp_outbound_messages.author IS
    'Who wrote it: bot (the assistant), shop (the tenant API), owner (the WhatsApp Business app, an echo).';
COMMENT ON COLUMN whatsapp_outbound_messages.author_ref IS
    'Who exactly: the API caller''s subject, or the owner''s number.';

CREATE INDEX whatsapp_outbound_messages_by_conversation_idx
    ON whatsapp_outbound_messages (conversation_id, created_at, id);

-- The conversation of one customer sighting, created or merged as needed; NULL when the
-- sighting names nobody. Rules (``domain/conversations.py`` holds the same, property-tested):
-- the BSUID identifies a person; a phone identifies whoever last showed it. A sighting with
-- both joins the two contacts it finds (the older one stays, the other's messages move to
-- it); a phone last seen with another BSUID moves to this person. ``opens`` (a customer's
-- message, not a system notice or an echo) moves the window to ``sent_at`` + 24 h (never
-- later than 24 h after now, never earlier than it was) and the last inbound time.
CREATE FUNCTION changarrito_conversation(
    p_phone_number_id text, p_tenant_id uuid, p_phone text, p_user_id text, p_name text,
    p_sent_at timestamptz, p_opens boolean
) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    t uuid := coalesce(p_tenant_id, '00000000-0000-0000-0000-000000000000'::uuid);
    by_user whatsapp_contacts%ROWTYPE;
    by_phone whatsapp_contacts%ROWTYPE;
    keep uuid;
    gone uuid;
    kept_conversation uuid;
    gone_conversation uuid;
    was text;
    result uuid;
BEGIN
    p_phone := nullif(p_phone, '');
    p_user_id := nullif(p_user_id, '');
    IF p_phone IS NULL AND p_user_id IS NULL THEN
        RETURN NULL;
    END IF;
    -- The common case first: a customer already known, by every key this message shows,
    -- under the same name. One index probe, no lock, nothing written.
    IF p_user_id IS NOT NULL THEN
        SELECT * INTO by_user FROM whatsapp_contacts c
        WHERE c.phone_number_id = p_phone_number_id
          AND coalesce(c.tenant_id, '00000000-0000-0000-0000-000000000000'::uuid) = t
          AND c.user_id = p_user_id;
        IF by_user.id IS NOT NULL AND (p_phone IS NULL OR by_user.phone = p_phone)
           AND (p_name IS NULL OR by_user.name = p_name) THEN
            keep := by_user.id;
        END IF;
    ELSE
        SELECT * INTO by_phone FROM whatsapp_contacts c
        WHERE c.phone_number_id = p_phone_number_id
          AND coalesce(c.tenant_id, '00000000-0000-0000-0000-000000000000'::uuid) = t
          AND c.phone = p_phone;
        IF by_phone.id IS NOT NULL AND (p_name IS NULL OR by_phone.name = p_name) THEN
            keep := by_phone.id;
        END IF;
    END IF;
    -- A new customer: the contact and its conversation, inserted at once.
    IF keep IS NULL AND by_user.id IS NULL AND by_phone.id IS NULL THEN
        IF p_user_id IS NOT NULL AND p_phone IS NOT NULL THEN
            SELECT * INTO by_phone FROM whatsapp_contacts c
            WHERE c.phone_number_id = p_phone_number_id
              AND coalesce(c.tenant_id, '00000000-0000-0000-0000-000000000000'::uuid) = t
              AND c.phone = p_phone;
        END IF;
        IF by_phone.id IS NULL THEN
            INSERT INTO whatsapp_contacts (phone_number_id, tenant_id, user_id, phone, name)
            VALUES (p_phone_number_id, p_tenant_id, p_user_id, p_phone, p_name)
            ON CONFLICT DO NOTHING
            RETURNING id INTO keep;
            IF keep IS NOT NULL THEN
                INSERT INTO whatsapp_conversations
                    (contact_id, phone_number_id, tenant_id, window_open_until, last_inbound_at)
                VALUES (keep, p_phone_number_id, p_tenant_id,
                        CASE WHEN p_opens THEN least(p_sent_at, now()) + interval '24 hours' END,
                        CASE WHEN p_opens THEN least(p_sent_at, now()) END)
                RETURNING id INTO result;
                RETURN result;
            END IF;
        END IF;
    END IF;
    -- Otherwise the rules, on locked rows. No EXCEPTION block (a subtransaction per message
    -- would overflow the snapshot's subtransaction cache in a large intake batch): a contact
    -- created meanwhile by another transaction makes the insert do nothing, and the loop
    -- looks again.
    WHILE keep IS NULL LOOP
        by_user := NULL;
        by_phone := NULL;
        IF p_user_id IS NOT NULL THEN
            SELECT * INTO by_user FROM whatsapp_contacts c
            WHERE c.phone_number_id = p_phone_number_id
              AND coalesce(c.tenant_id, '00000000-0000-0000-0000-000000000000'::uuid) = t
              AND c.user_id = p_user_id
            FOR UPDATE;
        END IF;
        IF p_phone IS NOT NULL THEN
            SELECT * INTO by_phone FROM whatsapp_contacts c
            WHERE c.phone_number_id = p_phone_number_id
              AND coalesce(c.tenant_id, '00000000-0000-0000-0000-000000000000'::uuid) = t
              AND c.phone = p_phone
            FOR UPDATE;
        END IF;
        IF by_user.id IS NULL AND by_phone.id IS NULL THEN
            INSERT INTO whatsapp_contacts (phone_number_id, tenant_id, user_id, phone, name)
            VALUES (p_phone_number_id, p_tenant_id, p_user_id, p_phone, p_name)
            ON CONFLICT DO NOTHING
            RETURNING id INTO keep;
        ELSIF by_phone.id IS NULL OR by_user.id = by_phone.id THEN
            keep := by_user.id;
            UPDATE whatsapp_contacts
            SET phone = coalesce(p_phone, phone), name = coalesce(p_name, name), updated_at = now()
            WHERE id = keep
              AND (phone IS DISTINCT FROM coalesce(p_phone, phone)
                   OR name IS DISTINCT FROM coalesce(p_name, name));
        ELSIF by_user.id IS NULL AND (by_phone.user_id IS NULL OR p_user_id IS NULL) THEN
            keep := by_phone.id;
            UPDATE whatsapp_contacts
            SET user_id = coalesce(p_user_id, user_id), name = coalesce(p_name, name),
                updated_at = now()
            WHERE id = keep
              AND (user_id IS DISTINCT FROM coalesce(p_user_id, user_id)
                   OR name IS DISTINCT FROM coalesce(p_name, name));
        ELSIF by_user.id IS NULL THEN
            -- The phone was another person's (another BSUID): it is this new person's now.
            UPDATE whatsapp_contacts SET phone = NULL, updated_at = now() WHERE id = by_phone.id;
            INSERT INTO whatsapp_contacts (phone_number_id, tenant_id, user_id, phone, name)
            VALUES (p_phone_number_id, p_tenant_id, p_user_id, p_phone, p_name)
            ON CONFLICT DO NOTHING
            RETURNING id INTO keep;
        ELSIF by_phone.user_id IS NOT NULL THEN
            -- Both are people of their own: the phone moves to the BSUID's person.
            keep := by_user.id;
            UPDATE whatsapp_contacts SET phone = NULL, updated_at = now() WHERE id = by_phone.id;
            UPDATE whatsapp_contacts
            SET phone = p_phone, name = coalesce(p_name, name), updated_at = now()
            WHERE id = keep;
        ELSE
            -- One person, seen once by BSUID and once by phone: merged into the older contact.
            IF (by_phone.created_at, by_phone.id) < (by_user.created_at, by_user.id) THEN
                keep := by_phone.id;
                gone := by_user.id;
            ELSE
                keep := by_user.id;
                gone := by_phone.id;
            END IF;
            SELECT id INTO kept_conversation FROM whatsapp_conversations
            WHERE contact_id = keep FOR UPDATE;
            SELECT id INTO gone_conversation FROM whatsapp_conversations
            WHERE contact_id = gone FOR UPDATE;
            IF kept_conversation IS NULL THEN
                UPDATE whatsapp_conversations SET contact_id = keep WHERE id = gone_conversation;
            ELSIF gone_conversation IS NOT NULL THEN
                UPDATE whatsapp_inbound_messages SET conversation_id = kept_conversation
                WHERE conversation_id = gone_conversation;
                UPDATE whatsapp_outbound_messages SET conversation_id = kept_conversation
                WHERE conversation_id = gone_conversation;
                UPDATE whatsapp_conversation_switches SET conversation_id = kept_conversation
                WHERE conversation_id = gone_conversation;
                UPDATE whatsapp_conversations k
                SET window_open_until = greatest(k.window_open_until, g.window_open_until),
                    last_inbound_at = greatest(k.last_inbound_at, g.last_inbound_at),
                    last_activity_at = greatest(k.last_activity_at, g.last_activity_at),
                    text_only_notice_at = coalesce(k.text_only_notice_at, g.text_only_notice_at),
                    updated_at = now()
                FROM whatsapp_conversations g
                WHERE k.id = kept_conversation AND g.id = gone_conversation;
            END IF;
            DELETE FROM whatsapp_contacts WHERE id = gone;
            UPDATE whatsapp_contacts
            SET user_id = p_user_id, phone = p_phone, name = coalesce(p_name, name),
                updated_at = now()
            WHERE id = keep;
        END IF;
    END LOOP;
    -- The conversation's window and activity: one update, unless it is new or closed.
    UPDATE whatsapp_conversations c SET
        window_open_until = CASE WHEN p_opens
            THEN greatest(c.window_open_until, least(p_sent_at, now()) + interval '24 hours')
            ELSE c.window_open_until END,
        last_inbound_at = CASE WHEN p_opens
            THEN greatest(c.last_inbound_at, least(p_sent_at, now()))
            ELSE c.last_inbound_at END,
        last_activity_at = greatest(c.last_activity_at, now()),
        updated_at = now()
    WHERE c.contact_id = keep AND c.state <> 'closed'
    RETURNING c.id INTO result;
    IF result IS NOT NULL THEN
        RETURN result;
    END IF;
    SELECT state INTO was FROM whatsapp_conversations WHERE contact_id = keep FOR UPDATE;
    INSERT INTO whatsapp_conversations AS c
        (contact_id, phone_number_id, tenant_id, window_open_until, last_inbound_at)
    VALUES (keep, p_phone_number_id, p_tenant_id,
            CASE WHEN p_opens THEN least(p_sent_at, now()) + interval '24 hours' END,
            CASE WHEN p_opens THEN least(p_sent_at, now()) END)
    ON CONFLICT (contact_id) DO UPDATE SET
        window_open_until = CASE WHEN p_opens
            THEN greatest(c.window_open_until, least(p_sent_at, now()) + interval '24 hours')
            ELSE c.window_open_until END,
        last_inbound_at = CASE WHEN p_opens
            THEN greatest(c.last_inbound_at, least(p_sent_at, now()))
            ELSE c.last_inbound_at END,
        state = CASE WHEN p_opens AND c.state = 'closed' THEN 'bot' ELSE c.state END,
        state_changed_at = CASE WHEN p_opens AND c.state = 'closed' THEN now()
                                ELSE c.state_changed_at END,
        state_changed_by = CASE WHEN p_opens AND c.state = 'closed' THEN 'customer'
                                ELSE c.state_changed_by END,
        last_activity_at = greatest(c.last_activity_at, now()),
        updated_at = now()
    RETURNING id INTO result;
    IF p_opens AND was = 'closed' THEN
        INSERT INTO whatsapp_conversation_switches (conversation_id, from_state, to_state, actor,
                                                    reason)
        VALUES (result, 'closed', 'bot', 'customer', 'the customer wrote again');
    END IF;
    RETURN result;
END;
$$;

-- The messages stored before conversations existed get theirs, in the order they came.
DO $$
DECLARE
    m record;
BEGIN
    FOR m IN
        SELECT id, phone_number_id, tenant_id, customer_phone, customer_user_id, customer_name,
               sent_at, type
        FROM whatsapp_inbound_messages
        WHERE route <> 'unrouted' AND customer_id IS NOT NULL
        ORDER BY received_at, id
    LOOP
        UPDATE whatsapp_inbound_messages
        SET conversation_id = changarrito_conversation(
            m.phone_number_id, m.tenant_id, m.customer_phone, m.customer_user_id,
            m.customer_name, m.sent_at, m.type NOT IN ('system', 'errors'))
        WHERE id = m.id;
    END LOOP;
END;
$$;

UPDATE whatsapp_outbound_messages o
SET conversation_id = i.conversation_id
FROM whatsapp_inbound_messages i
WHERE o.inbound_id = i.id AND i.conversation_id IS NOT NULL;
