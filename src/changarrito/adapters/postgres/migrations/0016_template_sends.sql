-- Template sends, and the payment notices that reach the customer on WhatsApp.
--
-- An outbound message may be an approved template (name, language, category as synced) sent
-- inside or outside the customer-service window: each is recorded with its tenant, number
-- and category, which is what the platform number's fairness budget counts. A message sent
-- for a purpose, once (a payment notice), carries an ``idempotency_key``: recorded once, so
-- a notice retried after a crash finds the row it already recorded instead of writing a
-- second one.
--
-- A payment link may name the conversation it was created in; when a notification moves it
-- to paid, failed or expired, one ``payment_notices`` row is written in the same transaction
-- (once per link and status, however often the provider repeats it), and a worker sends it.

ALTER TABLE whatsapp_outbound_messages
    ADD COLUMN template_name     text,
    ADD COLUMN template_language text,
    ADD COLUMN template_category text,
    ADD COLUMN outside_window    boolean,
    ADD COLUMN purpose           text,
    ADD COLUMN idempotency_key   text;

COMMENT ON COLUMN whatsapp_outbound_messages.template_name IS
    'The approved template this message is (NULL: a free-form message).';
COMMENT ON COLUMN whatsapp_outbound_messages.template_category IS
    'Its category when sent (MARKETING, UTILITY, AUTHENTICATION): what Meta bills it as.';
COMMENT ON COLUMN whatsapp_outbound_messages.outside_window IS
    'Sent when the customer-service window was closed (only a template can be).';
COMMENT ON COLUMN whatsapp_outbound_messages.purpose IS
    'What it was sent for, when not a reply: paymentReceived, paymentFailed, paymentExpired, handoffReply.';
COMMENT ON COLUMN whatsapp_outbound_messages.idempotency_key IS
    'Names a message that must be sent once (a payment notice): recorded once.';

CREATE UNIQUE INDEX whatsapp_outbound_messages_idempotency_key
    ON whatsapp_outbound_messages (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Template sends per tenant and number over time (the fairness budget counts these).
CREATE INDEX whatsapp_outbound_messages_templates_idx
    ON whatsapp_outbound_messages (phone_number_id, tenant_id, created_at)
    WHERE template_name IS NOT NULL;

ALTER TABLE payment_links
    ADD COLUMN conversation_id uuid REFERENCES whatsapp_conversations (id) ON DELETE SET NULL;

COMMENT ON COLUMN payment_links.conversation_id IS
    'The conversation the link was created for: its customer hears when it is paid, failed or expired.';

CREATE TABLE payment_notices (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    link_id         uuid NOT NULL REFERENCES payment_links (id) ON DELETE CASCADE,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    conversation_id uuid REFERENCES whatsapp_conversations (id) ON DELETE SET NULL,
    status          text NOT NULL CHECK (status IN ('paid', 'failed', 'expired')),
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sent', 'skipped', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    due_at          timestamptz NOT NULL DEFAULT now(),
    claimed_by      text,
    lease_until     timestamptz,
    outbound_id     bigint REFERENCES whatsapp_outbound_messages (id) ON DELETE SET NULL,
    sent_as         text CHECK (sent_as IN ('text', 'template')),
    reason_code     text,
    reason          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payment_notices_once UNIQUE (link_id, status)
);

COMMENT ON TABLE payment_notices IS
    'What the customer is told when their payment link is paid, failed or expired: once per link and status.';
COMMENT ON COLUMN payment_notices.state IS
    'pending (to send), sent, skipped (nothing could be sent: reason says why), failed (Meta refused it).';
COMMENT ON COLUMN payment_notices.sent_as IS
    'text (inside the window) or template (the tenant''s paymentReceived... template, outside it).';

CREATE INDEX payment_notices_due_idx ON payment_notices (due_at) WHERE state = 'pending';
CREATE INDEX payment_notices_link_idx ON payment_notices (link_id, created_at);
