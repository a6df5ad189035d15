-- The usage ledger: one row per billable act, whose credential paid for it (``source``), for
-- the operator to see (and, with the budgets, bound) what the platform's credentials cost.
--
-- Each row is written in the transaction of the act's own bookkeeping, and named by the act
-- (``act_key``, unique), so a retried write counts nothing twice:
--
-- - ``llm_call``: an answer from an LLM, its tokens as the provider reported them (written
--   by the pipeline right after the call, ``llm:<call id>``);
-- - ``transcription``, ``image_to_model``, ``document_to_model``: a row of
--   ``whatsapp_media_uses`` (a trigger, ``media:<use id>``);
-- - ``whatsapp_message``: a message the first status webhook with Meta's ``pricing`` priced
--   (a trigger on ``whatsapp_message_statuses``, ``wa:<number>:<wamid>``): its category,
--   pricing type and whether it is billable, from the business number that sent it;
-- - ``payment_link``: a link created (a trigger on ``payment_links``, ``link:<id>``).
--
-- ``day`` is the act's UTC day; reading rolls the rows up per tenant, day, source, kind and
-- provider.

CREATE TABLE usage_ledger (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    act_key         text NOT NULL UNIQUE,
    tenant_id       uuid REFERENCES tenants (id) ON DELETE CASCADE,
    day             date NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')::date,
    source          text NOT NULL CHECK (source IN ('tenant', 'platform')),
    kind            text NOT NULL CHECK (kind IN ('llm_call', 'transcription', 'image_to_model',
                                                  'document_to_model', 'whatsapp_message',
                                                  'payment_link')),
    provider        text,
    model           text,
    input_tokens    bigint NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens   bigint NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    seconds         double precision NOT NULL DEFAULT 0 CHECK (seconds >= 0),
    phone_number_id text,
    category        text,
    pricing_type    text,
    billable        boolean,
    created_at      timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE usage_ledger IS
    'One row per billable act (an LLM call, a transcription, a picture to a model, a priced WhatsApp message, a payment link), with whose credential paid.';
COMMENT ON COLUMN usage_ledger.act_key IS
    'What makes the act one: llm:<call id>, media:<use id>, wa:<number>:<wamid>, link:<id>.';
COMMENT ON COLUMN usage_ledger.tenant_id IS
    'The tenant it was for; NULL for the platform''s own number.';
COMMENT ON COLUMN usage_ledger.source IS
    'Whose credential paid: the tenant''s own, or the platform''s.';

CREATE INDEX usage_ledger_tenant_day_idx ON usage_ledger (tenant_id, day);
CREATE INDEX usage_ledger_day_idx ON usage_ledger (day);

-- A transcription, or a picture or document sent to a model.
CREATE FUNCTION changarrito_usage_of_media() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_ledger (act_key, tenant_id, source, kind, provider, model,
                              input_tokens, output_tokens, seconds)
    SELECT 'media:' || u.id, u.tenant_id, u.source,
           CASE u.use WHEN 'transcription' THEN 'transcription'
                      WHEN 'image' THEN 'image_to_model' ELSE 'document_to_model' END,
           u.provider, u.model, coalesce(u.input_tokens, 0), coalesce(u.output_tokens, 0),
           coalesce(u.seconds, 0)
    FROM new_uses u
    ORDER BY u.id
    ON CONFLICT (act_key) DO NOTHING;
    RETURN NULL;
END;
$$;

CREATE TRIGGER changarrito_usage_of_media AFTER INSERT ON whatsapp_media_uses
    REFERENCING NEW TABLE AS new_uses
    FOR EACH STATEMENT EXECUTE FUNCTION changarrito_usage_of_media();

-- A WhatsApp message Meta priced: the first status that carries ``pricing`` (``sent``, and
-- one of delivered or read, carry it: the message counts once).
CREATE FUNCTION changarrito_usage_of_statuses() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_ledger (act_key, tenant_id, day, source, kind, provider,
                              phone_number_id, category, pricing_type, billable)
    SELECT DISTINCT ON (s.phone_number_id, s.wamid)
           'wa:' || s.phone_number_id || ':' || s.wamid, t.id,
           (s.occurred_at AT TIME ZONE 'UTC')::date,
           CASE WHEN s.tenant_id IS NULL THEN 'platform' ELSE 'tenant' END,
           'whatsapp_message', 'meta', s.phone_number_id,
           s.raw->'pricing'->>'category', s.raw->'pricing'->>'type',
           CASE WHEN jsonb_typeof(s.raw->'pricing'->'billable') = 'boolean'
                THEN (s.raw->'pricing'->>'billable')::boolean
                ELSE s.raw->'pricing'->>'type' = 'regular' END
    FROM new_statuses s
    LEFT JOIN tenants t ON t.id = s.tenant_id
    WHERE jsonb_typeof(s.raw->'pricing') = 'object'
    ORDER BY s.phone_number_id, s.wamid, s.occurred_at
    ON CONFLICT (act_key) DO NOTHING;
    RETURN NULL;
END;
$$;

CREATE TRIGGER changarrito_usage_of_statuses AFTER INSERT ON whatsapp_message_statuses
    REFERENCING NEW TABLE AS new_statuses
    FOR EACH STATEMENT EXECUTE FUNCTION changarrito_usage_of_statuses();

-- A payment link created (on the tenant's own payment account or the platform's).
CREATE FUNCTION changarrito_usage_of_links() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_ledger (act_key, tenant_id, source, kind, provider)
    SELECT 'link:' || l.id, l.tenant_id, l.source, 'payment_link', l.provider
    FROM new_links l
    ORDER BY l.id
    ON CONFLICT (act_key) DO NOTHING;
    RETURN NULL;
END;
$$;

CREATE TRIGGER changarrito_usage_of_links AFTER INSERT ON payment_links
    REFERENCING NEW TABLE AS new_links
    FOR EACH STATEMENT EXECUTE FUNCTION changarrito_usage_of_links();
