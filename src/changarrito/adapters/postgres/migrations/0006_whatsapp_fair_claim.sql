-- The workers' batch claim is fair across tenants (queue.sql, claim_batch): it finds the
-- tenants with pending messages by skipping through this index, one probe per tenant, and
-- reads each tenant's oldest due messages from it in order.
CREATE INDEX whatsapp_inbound_messages_pending_tenant_idx
    ON whatsapp_inbound_messages (tenant_id, available_at, id) WHERE state = 'pending';
