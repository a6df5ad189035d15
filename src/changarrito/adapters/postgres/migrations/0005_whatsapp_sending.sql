-- What the message workers record around each Graph API send, so a re-claimed message resumes
-- where it stopped: a part with a wamid is never sent again; a part whose send had started
-- (send_attempts > 0) but has no wamid may have reached the customer before a crash.

ALTER TABLE whatsapp_outbound_messages
    ADD COLUMN send_attempts   integer NOT NULL DEFAULT 0 CHECK (send_attempts >= 0),
    ADD COLUMN send_started_at timestamptz,
    ADD COLUMN is_fallback     boolean NOT NULL DEFAULT false;

COMMENT ON COLUMN whatsapp_outbound_messages.send_attempts IS
    'How many times a worker called the Graph API for this part (more than one only after a failure or a crash).';
COMMENT ON COLUMN whatsapp_outbound_messages.send_started_at IS
    'When the last Graph API call for this part started.';
COMMENT ON COLUMN whatsapp_outbound_messages.is_fallback IS
    'The part is the fallback text, sent because the LLM could not answer.';

