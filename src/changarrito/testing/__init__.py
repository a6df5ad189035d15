"""A conformance kit for provider plugins, shipped with the package.

* ``FakeUpstream``: an ``httpx.MockTransport`` that records requests and answers from a script;
  ``Form`` reads back a ``multipart/form-data`` body it received (a transcription's);
* ``LLMProviderConformance`` and ``PaymentProviderConformance`` (with ``Notification``): pytest
  suites a plugin subclasses in its own CI;
* ``FakeLLMProvider``, ``FakeCredentialSource``: fakes for the LLM use case.

Nothing here is imported by the service itself.
"""

from changarrito.testing.fakes import FakeCredentialSource, FakeLLMProvider, FakeProviders
from changarrito.testing.payment_suite import LINK_ID, Notification, PaymentProviderConformance
from changarrito.testing.suite import LLMProviderConformance
from changarrito.testing.upstream import (
    FakeUpstream,
    Form,
    FormFile,
    json_response,
    text_response,
)

__all__ = [
    "LINK_ID",
    "FakeCredentialSource",
    "FakeLLMProvider",
    "FakeProviders",
    "FakeUpstream",
    "Form",
    "FormFile",
    "LLMProviderConformance",
    "Notification",
    "PaymentProviderConformance",
    "json_response",
    "text_response",
]
