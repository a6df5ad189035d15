-- Media: what the customer's voice notes, pictures and documents were, and what we made of them.
--
-- The bytes themselves are never stored here: a worker downloads an item from Graph when it
-- answers the message, uses it (transcribes it, shows it to the model) and forgets it. What is
-- kept is what Meta said the item is (its id, MIME type, SHA-256, size, file name), what
-- became of it (``state`` and, when it could not be used, ``reason``, shown to the shop), and
-- each use a provider billed (``whatsapp_media_uses``: the seconds transcribed, the pictures
-- and documents a model read), for the usage ledger.
--
-- A transcript becomes the message's own ``text`` (history, the inbox and the owner see what
-- the customer said); it is written once, with the row saying who transcribed it, so a
-- message claimed again after a crash is never transcribed twice.

CREATE TABLE whatsapp_media (
    inbound_id      bigint PRIMARY KEY
                    REFERENCES whatsapp_inbound_messages (id) ON DELETE CASCADE,
    tenant_id       uuid,
    kind            text NOT NULL
                    CHECK (kind IN ('audio', 'image', 'video', 'document', 'sticker')),
    media_id        text,
    mime_type       text,
    sha256          text,
    file_size       bigint,
    filename        text,
    voice           boolean NOT NULL DEFAULT false,
    state           text NOT NULL DEFAULT 'received'
                    CHECK (state IN ('received', 'transcribed', 'read', 'unread', 'failed')),
    reason_code     text,
    reason          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE whatsapp_media IS
    'A customer''s media item (one per inbound message): Meta''s metadata and what became of it; never its bytes.';
COMMENT ON COLUMN whatsapp_media.sha256 IS 'The SHA-256 Meta stated for the item (checked on download).';
COMMENT ON COLUMN whatsapp_media.state IS
    'received (not used yet), transcribed (its transcript is the message''s text), read (a model saw it), unread (the model cannot read this kind: the customer was told), failed (see reason).';
COMMENT ON COLUMN whatsapp_media.reason_code IS
    'Why it was not used: too-large, type-not-allowed, hash-mismatch, expired, untrusted-host, no-transcriber, provider-refused, not-readable, ...';
COMMENT ON COLUMN whatsapp_media.reason IS 'The same, in words, for the shop.';

CREATE TABLE whatsapp_media_uses (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    inbound_id      bigint NOT NULL REFERENCES whatsapp_inbound_messages (id) ON DELETE CASCADE,
    tenant_id       uuid,
    use             text NOT NULL CHECK (use IN ('transcription', 'image', 'document')),
    source          text NOT NULL CHECK (source IN ('tenant', 'platform')),
    provider        text NOT NULL,
    model           text,
    seconds         double precision,
    input_tokens    integer,
    output_tokens   integer,
    created_at      timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE whatsapp_media_uses IS
    'One billable use of a media item by a provider: a transcription (its seconds or tokens), a picture or document sent to a model in one call.';
COMMENT ON COLUMN whatsapp_media_uses.source IS 'Whose credential paid: the tenant''s own or the platform''s.';

CREATE INDEX whatsapp_media_uses_by_tenant_idx ON whatsapp_media_uses (tenant_id, created_at);

-- A picture or document the shop sent: ``text`` is then its caption ('' without one).
ALTER TABLE whatsapp_outbound_messages ADD COLUMN media jsonb;

COMMENT ON COLUMN whatsapp_outbound_messages.media IS
    'For a picture or document sent: {"type": "image"|"document", "id" | "link", "filename", "mimeType"}; NULL for text.';
