-- An append-only record of every change to a tenant's integrations: who (the JWT subject),
-- which tenant, which integration and provider, what (configure, delete, verify, create),
-- when and from where (client IP, user agent). Never a secret: ``details`` names changed
-- fields and outcomes only. No foreign key to tenants: the record outlives a deleted tenant.

CREATE TABLE integration_audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    actor       text NOT NULL,
    integration text NOT NULL,
    provider    text,
    action      text NOT NULL,
    outcome     text NOT NULL DEFAULT 'ok',
    client_ip   text,
    user_agent  text,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX integration_audit_log_tenant_idx ON integration_audit_log (tenant_id, created_at);
