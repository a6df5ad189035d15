-- Payment notifications are de-duplicated per tenant, remember whose credential verified
-- them, and stay small (issue 10, items 1, 3 and 6).
--
-- An event id was unique per provider across tenants, so anyone could pre-claim another
-- tenant's event id; it is now unique per (tenant, provider, event id), and the ids come
-- from verified data only. ``source`` is the credential (tenant's own or the platform's)
-- that verified the event; it must be the one that created the link the event moves. The
-- stored payload is a few verified facts (the domain caps it at 4 KiB of JSON; the check
-- below, twice that to allow for jsonb's spacing, holds any writer to it; rows stored before
-- are not checked). Links are no longer found by reference, so its index goes.

ALTER TABLE payment_events DROP CONSTRAINT payment_events_provider_event_key;
ALTER TABLE payment_events
    ADD CONSTRAINT payment_events_tenant_provider_event_key UNIQUE (tenant_id, provider, event_id);

ALTER TABLE payment_events
    ADD COLUMN source text CHECK (source IN ('tenant', 'platform'));

ALTER TABLE payment_events
    ADD CONSTRAINT payment_events_payload_size CHECK (octet_length(payload::text) <= 8192)
    NOT VALID;

DROP INDEX payment_links_tenant_reference_idx;
