-- WhatsApp messages: what Meta's webhook delivered (inbound messages, statuses of our replies,
-- other events) and the replies we send. The inbound table is also the work queue: the webhook
-- intake inserts rows as 'pending' and workers claim them with FOR UPDATE SKIP LOCKED.
--
-- tenant_id has no foreign key on these tables: the intake must never fail a whole batch
-- because a tenant was deleted a moment before; delete_tenant's cascade does not reach them,
-- so messages outlive their tenant as history (delete them explicitly if needed).

-- Inbound messages, one row per Meta message id (wamid), deduplicated across processes by
-- INSERT ... ON CONFLICT (wamid) DO NOTHING.
CREATE TABLE whatsapp_inbound_messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wamid           text NOT NULL,
    phone_number_id text NOT NULL,
    display_phone_number text,
    waba_id         text,
    tenant_id       uuid,
    route           text NOT NULL CHECK (route IN ('tenant', 'platform', 'unrouted')),
    customer_id     text,
    customer_phone  text,
    customer_user_id text,
    customer_name   text,
    type            text NOT NULL,
    text            text,
    context_wamid   text,
    raw             jsonb NOT NULL,
    sent_at         timestamptz NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'processing', 'answered', 'ignored', 'failed',
                                     'dead')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    available_at    timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,
    locked_by       text,
    last_error      text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT whatsapp_inbound_messages_wamid_key UNIQUE (wamid),
    CONSTRAINT whatsapp_inbound_messages_route_tenant
        CHECK ((route = 'tenant') = (tenant_id IS NOT NULL)),
    CONSTRAINT whatsapp_inbound_messages_unrouted_never_answered
        CHECK (route <> 'unrouted' OR state = 'ignored')
);

COMMENT ON TABLE whatsapp_inbound_messages IS
    'Inbound WhatsApp messages from the webhook, one per wamid; also the workers'' queue.';
COMMENT ON COLUMN whatsapp_inbound_messages.id IS
    'Our id (what `changarrito messages retry ID` takes).';
COMMENT ON COLUMN whatsapp_inbound_messages.wamid IS
    'Meta''s message id (messages[].id), unique: duplicates of a webhook are stored once.';
COMMENT ON COLUMN whatsapp_inbound_messages.phone_number_id IS
    'The business number that received it (value.metadata.phone_number_id): the reply is sent from it.';
COMMENT ON COLUMN whatsapp_inbound_messages.display_phone_number IS
    'That number as digits (value.metadata.display_phone_number), for people.';
COMMENT ON COLUMN whatsapp_inbound_messages.waba_id IS
    'WhatsApp Business Account id (entry[].id).';
COMMENT ON COLUMN whatsapp_inbound_messages.tenant_id IS
    'Owning tenant at intake; NULL for the platform''s own number and for unrouted numbers.';
COMMENT ON COLUMN whatsapp_inbound_messages.route IS
    'tenant (a tenant''s number), platform (WHATSAPP_PHONE_NUMBER_ID) or unrouted (nobody''s: stored, acknowledged, never answered).';
COMMENT ON COLUMN whatsapp_inbound_messages.customer_id IS
    'Who wrote: the phone (from / wa_id) or, when Meta omits it, the business-scoped user id; NULL only when Meta sent neither.';
COMMENT ON COLUMN whatsapp_inbound_messages.customer_phone IS
    'The customer''s phone number (from, else contacts[].wa_id), digits without +, when given.';
COMMENT ON COLUMN whatsapp_inbound_messages.customer_user_id IS
    'The business-scoped user id (messages[].from_user_id, else contacts[].user_id), when given.';
COMMENT ON COLUMN whatsapp_inbound_messages.customer_name IS
    'The customer''s WhatsApp profile name (contacts[].profile.name), when given.';
COMMENT ON COLUMN whatsapp_inbound_messages.type IS
    'Meta''s message type (text, image, interactive, reaction, system, unsupported, ... or a new one).';
COMMENT ON COLUMN whatsapp_inbound_messages.text IS
    'The text to answer (body, caption, reply title, ...); NULL when there is nothing to answer.';
COMMENT ON COLUMN whatsapp_inbound_messages.context_wamid IS
    'The wamid this message quotes or replies to (context.id), when any.';
COMMENT ON COLUMN whatsapp_inbound_messages.raw IS
    'The message object exactly as Meta sent it (messages[i]).';
COMMENT ON COLUMN whatsapp_inbound_messages.sent_at IS
    'Meta''s timestamp (when the customer sent it); received_at when Meta''s is unreadable.';
COMMENT ON COLUMN whatsapp_inbound_messages.received_at IS
    'When the webhook delivering it was committed here.';
COMMENT ON COLUMN whatsapp_inbound_messages.state IS
    'Queue state: pending (to answer), processing (leased by a worker), answered, ignored (nothing to answer, or unrouted), failed (final error), dead (out of attempts).';
COMMENT ON COLUMN whatsapp_inbound_messages.attempts IS
    'How many times a worker has tried to answer it.';
COMMENT ON COLUMN whatsapp_inbound_messages.available_at IS
    'Earliest time a worker may (re)try it: backoff after a retryable error.';
COMMENT ON COLUMN whatsapp_inbound_messages.locked_until IS
    'End of the current worker''s lease while processing; an expired lease may be reclaimed.';
COMMENT ON COLUMN whatsapp_inbound_messages.locked_by IS
    'Which worker holds the lease (host:pid or similar), for operators.';
COMMENT ON COLUMN whatsapp_inbound_messages.last_error IS
    'The last error of an attempt (scrubbed of secrets), for operators.';
COMMENT ON COLUMN whatsapp_inbound_messages.updated_at IS
    'Last change of the row.';

-- The claim query: WHERE state = 'pending' AND available_at <= now() ORDER BY available_at.
CREATE INDEX whatsapp_inbound_messages_pending_idx
    ON whatsapp_inbound_messages (available_at) WHERE state = 'pending';
-- Reclaiming expired leases: WHERE state = 'processing' AND locked_until < now().
CREATE INDEX whatsapp_inbound_messages_processing_idx
    ON whatsapp_inbound_messages (locked_until) WHERE state = 'processing';
-- A conversation: the messages one customer sent to one business number, by time.
CREATE INDEX whatsapp_inbound_messages_conversation_idx
    ON whatsapp_inbound_messages (phone_number_id, customer_id, sent_at);
-- `messages list --tenant T`: a tenant's recent messages.
CREATE INDEX whatsapp_inbound_messages_tenant_idx
    ON whatsapp_inbound_messages (tenant_id, received_at);


-- Our replies, one row per part (a reply over 4,096 characters is split).
CREATE TABLE whatsapp_outbound_messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    inbound_id      bigint REFERENCES whatsapp_inbound_messages (id) ON DELETE CASCADE,
    part            smallint NOT NULL DEFAULT 1 CHECK (part >= 1),
    tenant_id       uuid,
    phone_number_id text NOT NULL,
    recipient       text NOT NULL,
    text            text NOT NULL,
    wamid           text,
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sent', 'delivered', 'read', 'played', 'failed')),
    sent_at         timestamptz,
    delivered_at    timestamptz,
    read_at         timestamptz,
    played_at       timestamptz,
    failed_at       timestamptz,
    error_code      integer,
    error_title     text,
    error_details   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT whatsapp_outbound_messages_inbound_part_key UNIQUE (inbound_id, part),
    CONSTRAINT whatsapp_outbound_messages_wamid_key UNIQUE (wamid)
);

COMMENT ON TABLE whatsapp_outbound_messages IS
    'Replies sent (or being sent) through the Graph API, one row per part, moved by status webhooks.';
COMMENT ON COLUMN whatsapp_outbound_messages.id IS 'Our id.';
COMMENT ON COLUMN whatsapp_outbound_messages.inbound_id IS
    'The inbound message this answers; NULL for a message not answering one.';
COMMENT ON COLUMN whatsapp_outbound_messages.part IS
    'Part number (1-based) of a reply split at 4,096 characters; (inbound_id, part) is recorded once.';
COMMENT ON COLUMN whatsapp_outbound_messages.tenant_id IS
    'Tenant whose number sends it; NULL for the platform''s number.';
COMMENT ON COLUMN whatsapp_outbound_messages.phone_number_id IS
    'The business number it is sent from (the one that received the inbound message).';
COMMENT ON COLUMN whatsapp_outbound_messages.recipient IS
    'The customer: phone (wa_id) or business-scoped user id.';
COMMENT ON COLUMN whatsapp_outbound_messages.text IS 'The text of this part.';
COMMENT ON COLUMN whatsapp_outbound_messages.wamid IS
    'Meta''s id from the send response (unique when set); status webhooks find the row by it.';
COMMENT ON COLUMN whatsapp_outbound_messages.status IS
    'queued (not accepted by Meta yet), then sent, delivered, failed, read, played: only ever moves forward (domain.whatsapp.STATUS_ORDER).';
COMMENT ON COLUMN whatsapp_outbound_messages.sent_at IS 'Meta''s timestamp of the sent status.';
COMMENT ON COLUMN whatsapp_outbound_messages.delivered_at IS 'Meta''s timestamp of the delivered status.';
COMMENT ON COLUMN whatsapp_outbound_messages.read_at IS 'Meta''s timestamp of the read status.';
COMMENT ON COLUMN whatsapp_outbound_messages.played_at IS 'Meta''s timestamp of the played status.';
COMMENT ON COLUMN whatsapp_outbound_messages.failed_at IS 'Meta''s timestamp of the failed status.';
COMMENT ON COLUMN whatsapp_outbound_messages.error_code IS
    'Graph error code of a failure (statuses[].errors[0].code, or the send response''s).';
COMMENT ON COLUMN whatsapp_outbound_messages.error_title IS 'Its title.';
COMMENT ON COLUMN whatsapp_outbound_messages.error_details IS 'Its error_data.details.';
COMMENT ON COLUMN whatsapp_outbound_messages.created_at IS 'When the reply was recorded.';
COMMENT ON COLUMN whatsapp_outbound_messages.updated_at IS 'Last change of the row.';

-- A conversation's replies: to one customer from one business number, by time.
CREATE INDEX whatsapp_outbound_messages_conversation_idx
    ON whatsapp_outbound_messages (phone_number_id, recipient, created_at);


-- Status webhooks of our outbound messages, stored once per (wamid, status).
CREATE TABLE whatsapp_message_statuses (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wamid           text NOT NULL,
    status          text NOT NULL,
    phone_number_id text NOT NULL,
    tenant_id       uuid,
    recipient_id    text,
    recipient_user_id text,
    occurred_at     timestamptz NOT NULL,
    error_code      integer,
    error_title     text,
    error_details   text,
    raw             jsonb NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT whatsapp_message_statuses_wamid_status_key UNIQUE (wamid, status)
);

COMMENT ON TABLE whatsapp_message_statuses IS
    'Status webhooks (sent, delivered, read, played, failed, ...), one per (wamid, status).';
COMMENT ON COLUMN whatsapp_message_statuses.id IS 'Our id.';
COMMENT ON COLUMN whatsapp_message_statuses.wamid IS 'The outbound message''s wamid (statuses[].id).';
COMMENT ON COLUMN whatsapp_message_statuses.status IS
    'Meta''s status as sent (unknown future values are kept too).';
COMMENT ON COLUMN whatsapp_message_statuses.phone_number_id IS 'The business number it concerns.';
COMMENT ON COLUMN whatsapp_message_statuses.tenant_id IS
    'Owning tenant at intake; NULL for the platform''s or an unrouted number.';
COMMENT ON COLUMN whatsapp_message_statuses.recipient_id IS 'statuses[].recipient_id (phone or group).';
COMMENT ON COLUMN whatsapp_message_statuses.recipient_user_id IS
    'statuses[].recipient_user_id (business-scoped user id), when given.';
COMMENT ON COLUMN whatsapp_message_statuses.occurred_at IS
    'Meta''s timestamp; received_at when Meta''s is unreadable.';
COMMENT ON COLUMN whatsapp_message_statuses.error_code IS 'errors[0].code of a failed status.';
COMMENT ON COLUMN whatsapp_message_statuses.error_title IS 'errors[0].title.';
COMMENT ON COLUMN whatsapp_message_statuses.error_details IS 'errors[0].error_data.details.';
COMMENT ON COLUMN whatsapp_message_statuses.raw IS 'The status object exactly as Meta sent it.';
COMMENT ON COLUMN whatsapp_message_statuses.received_at IS 'When it was committed here.';


-- Everything else the webhook delivers: changes of other fields (account_update,
-- message_template_status_update, ...) and value-level errors. Stored and acknowledged.
CREATE TABLE whatsapp_webhook_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('field', 'error')),
    field           text NOT NULL,
    waba_id         text,
    phone_number_id text,
    tenant_id       uuid,
    error_code      integer,
    payload         jsonb NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE whatsapp_webhook_events IS
    'Webhook changes of fields other than messages, and value-level errors: kept for operators.';
COMMENT ON COLUMN whatsapp_webhook_events.id IS 'Our id.';
COMMENT ON COLUMN whatsapp_webhook_events.kind IS
    'field (a change of another field: payload is its value) or error (payload is one of value.errors[]).';
COMMENT ON COLUMN whatsapp_webhook_events.field IS 'entry[].changes[].field as sent.';
COMMENT ON COLUMN whatsapp_webhook_events.waba_id IS 'entry[].id (the WhatsApp Business Account).';
COMMENT ON COLUMN whatsapp_webhook_events.phone_number_id IS
    'value.metadata.phone_number_id when the value has one.';
COMMENT ON COLUMN whatsapp_webhook_events.tenant_id IS 'Owning tenant of that number, when known.';
COMMENT ON COLUMN whatsapp_webhook_events.error_code IS 'The error''s code (kind error).';
COMMENT ON COLUMN whatsapp_webhook_events.payload IS 'The value or error object exactly as sent.';
COMMENT ON COLUMN whatsapp_webhook_events.received_at IS 'When it was committed here.';

CREATE INDEX whatsapp_webhook_events_received_idx ON whatsapp_webhook_events (received_at);
