-- A change of another field (template, account, quality updates) or a value-level error is
-- stored once: Meta redelivers a webhook until it gets a 200, and each redelivery stored the
-- same event again. The key is a SHA-256 of what the event says (kind, field, account,
-- number, and the value as jsonb text, which PostgreSQL normalises), computed by insert_events
-- in messages.sql. Two deliveries saying exactly the same thing are one event.

ALTER TABLE whatsapp_webhook_events ADD COLUMN dedup_key bytea;

UPDATE whatsapp_webhook_events
SET dedup_key = sha256(convert_to(
    concat_ws('|', kind, field, coalesce(waba_id, ''), coalesce(phone_number_id, ''),
              payload::text), 'UTF8'));

-- Earlier redeliveries: keep the first of each.
DELETE FROM whatsapp_webhook_events AS later
USING whatsapp_webhook_events AS first
WHERE later.dedup_key = first.dedup_key AND later.id > first.id;

ALTER TABLE whatsapp_webhook_events ALTER COLUMN dedup_key SET NOT NULL;
CREATE UNIQUE INDEX whatsapp_webhook_events_dedup_key ON whatsapp_webhook_events (dedup_key);

COMMENT ON COLUMN whatsapp_webhook_events.dedup_key IS
    'SHA-256 of kind, field, waba_id, phone_number_id and payload: an event is stored once.';
