-- A status webhook is about the outbound message of one business number: it is stored once
-- per (wamid, number, status), and moves only the outbound message that number (and tenant)
-- sent (apply_statuses in messages.sql). Once per (wamid, status) let a tenant, signing with
-- its own Meta app for its own number, pre-claim a status of another tenant's message, so
-- that the genuine one was dropped as a duplicate.
--
-- The new unique index leads with wamid, so it also serves apply_statuses' lookup by wamid.

ALTER TABLE whatsapp_message_statuses
    DROP CONSTRAINT whatsapp_message_statuses_wamid_status_key,
    ADD CONSTRAINT whatsapp_message_statuses_wamid_number_status_key
        UNIQUE (wamid, phone_number_id, status);

COMMENT ON TABLE whatsapp_message_statuses IS
    'Status webhooks (sent, delivered, read, played, failed, ...), one per (wamid, phone_number_id, status).';
COMMENT ON COLUMN whatsapp_message_statuses.phone_number_id IS
    'The business number it concerns (value.metadata.phone_number_id): only an outbound message sent from it is moved.';
