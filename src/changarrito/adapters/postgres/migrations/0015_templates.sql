-- Message templates: what Meta approved for each WhatsApp Business Account, synced from
-- Graph (GET /{waba-id}/message_templates) and kept current by the template webhooks.
--
-- One row per owner (a tenant, or NULL: the platform's own account), account, name and
-- language: two tenants with numbers in one account each keep their own copy (each read it
-- with its own token). ``components`` is what Meta gave, verbatim; ``parameters`` what a send
-- must fill, read from them (domain/templates.py). A sync stores what Graph listed and
-- removes what it no longer lists; a webhook changes status, category or quality of every
-- copy of the account's template.

CREATE TABLE whatsapp_templates (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id           uuid REFERENCES tenants (id) ON DELETE CASCADE,
    business_account_id text NOT NULL,
    template_id         text NOT NULL,
    name                text NOT NULL,
    language            text NOT NULL,
    category            text,
    sub_category        text,
    status              text NOT NULL,
    quality             text,
    parameter_format    text NOT NULL DEFAULT 'POSITIONAL',
    components          jsonb NOT NULL DEFAULT '[]'::jsonb,
    parameters          jsonb NOT NULL DEFAULT '[]'::jsonb,
    synced_at           timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE whatsapp_templates IS
    'The message templates of a WhatsApp Business Account, per owner (tenant, or NULL: the platform).';
COMMENT ON COLUMN whatsapp_templates.template_id IS
    'Meta''s template id (a string in the API, an integer in webhooks).';
COMMENT ON COLUMN whatsapp_templates.components IS
    'The template''s components exactly as Graph listed them.';
COMMENT ON COLUMN whatsapp_templates.parameters IS
    'The parameters a send fills, read from the components: [{component, kind, name?, index?, button?, subType?, required}].';
COMMENT ON COLUMN whatsapp_templates.synced_at IS
    'When Graph last listed it; updated_at: the last change by a sync or a webhook.';

CREATE UNIQUE INDEX whatsapp_templates_key
    ON whatsapp_templates (coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid),
                           business_account_id, name, language);
CREATE INDEX whatsapp_templates_list_idx
    ON whatsapp_templates (tenant_id, name, language, id);
CREATE INDEX whatsapp_templates_meta_id_idx
    ON whatsapp_templates (business_account_id, template_id);
