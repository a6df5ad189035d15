-- Tenants, their integration credentials (secrets as ciphertext envelopes only) and the
-- WhatsApp numbers they own. gen_random_uuid() is core PostgreSQL since 13: no extension.

CREATE TABLE tenants (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenant_integration_credentials (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    integration_type   text NOT NULL
                       CHECK (integration_type IN ('whatsapp', 'llm', 'payments')),
    provider           text NOT NULL,
    -- Only a ciphertext envelope {"v", "alg", "kid", ...}: never a plaintext secret.
    credentials        jsonb NOT NULL
                       CONSTRAINT credentials_is_envelope
                       CHECK (jsonb_typeof(credentials) = 'object'
                              AND credentials ? 'alg' AND credentials ? 'kid'
                              AND credentials ? 'ct'),
    config             jsonb NOT NULL DEFAULT '{}'::jsonb,
    is_active          boolean NOT NULL DEFAULT true,
    is_verified        boolean NOT NULL DEFAULT false,
    priority           integer NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    verified_at        timestamptz,
    verification_error text,
    CONSTRAINT tenant_integration_credentials_tenant_type_provider_key
        UNIQUE (tenant_id, integration_type, provider)
);

CREATE TABLE tenant_whatsapp_numbers (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    phone_number_id text NOT NULL UNIQUE,
    phone_number    text,
    display_name    text,
    is_active       boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX tenant_whatsapp_numbers_tenant_id_idx ON tenant_whatsapp_numbers (tenant_id);
