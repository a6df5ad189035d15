"""Meta's WhatsApp Cloud API: the webhook intake, the Graph API sending client and its checks."""
