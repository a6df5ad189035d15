"""WhatsApp providers: the Business API a tenant's number speaks through (built in: ``meta``)."""
