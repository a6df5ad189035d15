-- Events for the platform's backend (Standard Webhooks): a durable outbox.
--
-- A row is written by ``changarrito_emit`` in the transaction of the change it reports (a
-- payment notification that moved a link, a conversation's switch, a credential marked
-- unverified, a message given up on), so an event exists exactly when its change does. The
-- workers deliver each, signed, to ``CHANGARRITO_EVENTS_URL``: oldest first, and within one
-- ``ordering_key`` (a conversation, a payment link) never one before an earlier one is
-- delivered or dead. A receiver that fails gets retries with backoff, then the event is
-- dead-lettered (``changarrito events retry`` sends it again).

CREATE TABLE changarrito_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     text NOT NULL UNIQUE
                 DEFAULT 'evt_' || replace(gen_random_uuid()::text, '-', ''),
    type         text NOT NULL,
    tenant_id    uuid REFERENCES tenants (id) ON DELETE CASCADE,
    ordering_key text NOT NULL,
    data         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    state        text NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts     integer NOT NULL DEFAULT 0,
    due_at       timestamptz NOT NULL DEFAULT now(),
    claimed_by   text,
    lease_until  timestamptz,
    last_error   text,
    last_status  integer,
    delivered_at timestamptz
);

COMMENT ON TABLE changarrito_events IS
    'Events for the platform''s backend, written with the change they report, delivered signed (Standard Webhooks).';
COMMENT ON COLUMN changarrito_events.event_id IS
    'The webhook-id: the same on every delivery attempt, so the receiver can drop repeats.';
COMMENT ON COLUMN changarrito_events.ordering_key IS
    'Events of one key (conversation:<id>, payment:<link id>, credential:<tenant>:<kind>) are delivered in order.';
COMMENT ON COLUMN changarrito_events.data IS
    'The event''s facts and ids: never a credential.';

CREATE INDEX changarrito_events_due_idx ON changarrito_events (due_at, id) WHERE state = 'pending';
CREATE INDEX changarrito_events_key_idx ON changarrito_events (ordering_key, id)
    WHERE state = 'pending';
CREATE INDEX changarrito_events_listing_idx ON changarrito_events (state, id);

-- Whether events are filed at all: set by every process at start-up from
-- CHANGARRITO_EVENTS_URL (a deployment's processes share their configuration). Off, nothing
-- is written, so an outbox nobody delivers does not grow.
CREATE TABLE changarrito_event_config (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    enabled   boolean NOT NULL DEFAULT false
);
INSERT INTO changarrito_event_config DEFAULT VALUES;

-- Files an event (when events are on), in the caller's transaction.
CREATE FUNCTION changarrito_emit(p_type text, p_tenant uuid, p_key text, p_data jsonb)
RETURNS void
LANGUAGE sql AS $$
    INSERT INTO changarrito_events (type, tenant_id, ordering_key, data)
    SELECT p_type, p_tenant, p_key, p_data
    FROM changarrito_event_config WHERE enabled;
$$;

-- Every statement that files events wakes the workers when its transaction commits.
CREATE FUNCTION changarrito_events_filed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('changarrito_inbound', 'event');
    RETURN NULL;
END;
$$;

CREATE TRIGGER changarrito_events_wake AFTER INSERT ON changarrito_events
    FOR EACH STATEMENT EXECUTE FUNCTION changarrito_events_filed();

-- conversation.handoff / conversation.resumed: every switch to a person or back to the bot,
-- whoever made it (the shop through the API, the model, the owner's own app, the idle time).
CREATE FUNCTION changarrito_switch_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    c whatsapp_conversations%ROWTYPE;
BEGIN
    IF NEW.to_state NOT IN ('human', 'bot') OR NEW.from_state = NEW.to_state THEN
        RETURN NULL;
    END IF;
    SELECT * INTO c FROM whatsapp_conversations WHERE id = NEW.conversation_id;
    PERFORM changarrito_emit(
        CASE NEW.to_state WHEN 'human' THEN 'conversation.handoff'
                          ELSE 'conversation.resumed' END,
        c.tenant_id,
        'conversation:' || NEW.conversation_id,
        jsonb_build_object(
            'tenantId', c.tenant_id, 'conversationId', NEW.conversation_id,
            'phoneNumberId', c.phone_number_id, 'from', NEW.from_state, 'to', NEW.to_state,
            'actor', NEW.actor, 'reason', NEW.reason, 'at', NEW.at));
    RETURN NULL;
END;
$$;

CREATE TRIGGER changarrito_switch_event AFTER INSERT ON whatsapp_conversation_switches
    FOR EACH ROW EXECUTE FUNCTION changarrito_switch_event();

-- message.failed: a customer's message given up on (failed for good, or dead-lettered).
CREATE FUNCTION changarrito_message_failed_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM changarrito_emit(
        'message.failed',
        NEW.tenant_id,
        'conversation:' || coalesce(NEW.conversation_id::text, NEW.phone_number_id),
        jsonb_build_object(
            'tenantId', NEW.tenant_id, 'conversationId', NEW.conversation_id,
            'phoneNumberId', NEW.phone_number_id, 'messageId', 'in_' || NEW.id,
            'wamid', NEW.wamid, 'type', NEW.type, 'state', NEW.state,
            'attempts', NEW.attempts, 'reason', NEW.last_error));
    RETURN NULL;
END;
$$;

CREATE TRIGGER changarrito_message_failed_event AFTER UPDATE OF state
    ON whatsapp_inbound_messages
    FOR EACH ROW WHEN (NEW.state IN ('failed', 'dead') AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION changarrito_message_failed_event();

-- message.received: every customer message stored, one INSERT of events per statement (the
-- intake stores a whole batch of webhooks in one statement). Ids and facts, not the text:
-- GET /api/v1/conversations/{id}/messages reads it.
CREATE FUNCTION changarrito_received_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO changarrito_events (type, tenant_id, ordering_key, data)
    SELECT 'message.received', n.tenant_id,
           'conversation:' || coalesce(n.conversation_id::text, n.phone_number_id),
           jsonb_build_object(
               'tenantId', n.tenant_id, 'conversationId', n.conversation_id,
               'phoneNumberId', n.phone_number_id, 'messageId', 'in_' || n.id,
               'wamid', n.wamid, 'type', n.type, 'customerPhone', n.customer_phone,
               'customerUserId', n.customer_user_id, 'sentAt', n.sent_at,
               'receivedAt', n.received_at)
    FROM new_rows n
    JOIN changarrito_event_config c ON c.enabled
    ORDER BY n.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER changarrito_received_events AFTER INSERT ON whatsapp_inbound_messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION changarrito_received_events();
