"""Built-in LLM providers, each a plugin loaded like a third party's (see ``DEFAULT_PLUGINS``)."""
