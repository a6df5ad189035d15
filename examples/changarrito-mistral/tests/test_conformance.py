"""Run Changarrito's provider conformance kit against this plugin (in the plugin's own CI)."""

import changarrito_mistral

from changarrito.testing import LLMProviderConformance


class TestMistralConformance(LLMProviderConformance):
    provider_class = changarrito_mistral.MistralProvider
    plugin = changarrito_mistral
    credentials = {"apiKey": "mistral-test-key-0123456789abcdef"}

    def quota_response(self):
        return None  # Mistral has no quota-specific error code
