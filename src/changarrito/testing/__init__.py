"""A conformance kit for provider plugins, shipped with the package.

* ``FakeUpstream``: an ``httpx.MockTransport`` that records requests and answers from a script;
* ``LLMProviderConformance``: a pytest suite a plugin subclasses in its own CI;
* ``FakeLLMProvider``, ``FakeCredentialSource``: fakes for the LLM use case.

Nothing here is imported by the service itself.
"""

from changarrito.testing.fakes import FakeCredentialSource, FakeLLMProvider, FakeProviders
from changarrito.testing.suite import LLMProviderConformance
from changarrito.testing.upstream import FakeUpstream, json_response, text_response

__all__ = [
    "FakeCredentialSource",
    "FakeLLMProvider",
    "FakeProviders",
    "FakeUpstream",
    "LLMProviderConformance",
    "json_response",
    "text_response",
]
