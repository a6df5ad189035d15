-- Payment links created for tenants, and the providers' notifications about them.
--
-- A link is created with the tenant's own payment credentials or the platform's (``source``);
-- its ``status`` follows the notifications. Events are deduplicated by the provider's event id:
-- a provider retries a notification until it gets a 2xx, and each must count once.

CREATE TABLE payment_links (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    provider         text NOT NULL,
    -- The provider's id of what it created (Checkout Session, preference, checkout).
    provider_link_id text NOT NULL,
    url              text NOT NULL,
    amount           numeric NOT NULL CHECK (amount > 0),
    currency         text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    description      text NOT NULL,
    reference        text NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'paid', 'failed', 'expired', 'refunded')),
    source           text NOT NULL CHECK (source IN ('tenant', 'platform')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payment_links_provider_link_key UNIQUE (provider, provider_link_id)
);

-- Notifications that name no link id (Mercado Pago payments) find their link by reference.
CREATE INDEX payment_links_tenant_reference_idx
    ON payment_links (tenant_id, provider, reference, created_at DESC);

CREATE TABLE payment_events (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    provider    text NOT NULL,
    event_id    text NOT NULL,
    type        text NOT NULL,
    status      text NOT NULL,
    -- The link the event moved, when one matched.
    link_id     uuid REFERENCES payment_links (id) ON DELETE SET NULL,
    -- The verified notification, with secret-looking fields and credential values removed.
    payload     jsonb NOT NULL DEFAULT '{}'::jsonb,
    received_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payment_events_provider_event_key UNIQUE (provider, event_id)
);

CREATE INDEX payment_events_link_idx ON payment_events (link_id) WHERE link_id IS NOT NULL;
