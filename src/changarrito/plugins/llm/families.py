"""Which models read pictures and PDFs unless the tenant says otherwise (``vision`` and
``documents`` in the config): one table per vendor, each row a pattern over the model's name
(lower-cased), first match wins. A model no row names reads text only.

Sources: OpenAI's vision and file-input guides (PDFs go to the same models as pictures),
Anthropic's vision and PDF-support pages, OpenRouter's model list (``vendor/model`` ids) and
Ollama's library (its ``vision`` tag). A tenant whose model is missing, or named otherwise
(an Azure deployment, a fine-tune), sets ``vision``/``documents`` itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: (pattern, reads it?) rows; ``False`` rows carve exceptions out of a later family.
Rows = Sequence[tuple[re.Pattern[str], bool]]

_END = r"(?:$|[-.:@])"

#: OpenAI chat models that take ``image_url`` and PDF ``file`` parts.
OPENAI: Rows = (
    (re.compile(r"-(?:audio|realtime|transcribe|tts|search)"), False),
    (re.compile(r"^gpt-4-turbo-preview"), False),  # the 0125 preview has no vision
    (re.compile(r"^o1-(?:mini|preview)"), False),
    (re.compile(r"^o3-mini"), False),
    (
        re.compile(
            r"^(?:chatgpt-4o|gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|gpt-4-turbo|o1|o3|o4-mini)" + _END
        ),
        True,
    ),
)

#: Anthropic models that take ``image`` blocks: every Claude 3 and later.
ANTHROPIC_IMAGES: Rows = (
    (re.compile(r"^claude-(?:3|[4-9])" + _END), True),
    (re.compile(r"^claude-(?:opus|sonnet|haiku)-[4-9]" + _END), True),
)

#: Anthropic models that take PDF ``document`` blocks: 3.5 Sonnet, 3.5 Haiku, 3.7 and 4+.
ANTHROPIC_PDFS: Rows = (
    (re.compile(r"^claude-3[-.]5[-.](?:sonnet|haiku)"), True),
    (re.compile(r"^claude-3[-.]7" + _END), True),
    (re.compile(r"^claude-(?:opus|sonnet|haiku)-[4-9]" + _END), True),
    (re.compile(r"^claude-[4-9]" + _END), True),
)

#: OpenRouter ``vendor/model`` ids that read pictures (``openai/`` and ``anthropic/`` models
#: follow their vendor's table).
OPENROUTER_IMAGES: Rows = (
    (re.compile(r"^google/gemini-pro$"), False),  # Gemini 1.0 Pro: text only
    (re.compile(r"^google/(?:gemini|gemma-3)"), True),
    (re.compile(r"^meta-llama/llama-(?:3\.2-\d+b-vision|4)"), True),
    (re.compile(r"^mistralai/(?:pixtral|mistral-small-3\.[12]|mistral-medium-3)"), True),
    (re.compile(r"^qwen/qwen[\d.]*-vl"), True),
    (re.compile(r"^x-ai/grok-(?:[\w.-]*vision|4)"), True),
)

#: Ollama library models with the ``vision`` tag.
OLLAMA_IMAGES: Rows = (
    (re.compile(r"^gemma3:(?:1b|270m)"), False),  # the smallest Gemma 3 read text only
    (
        re.compile(
            r"^(?:llava|bakllava|llama3\.2-vision|llama4|gemma3|qwen2\.5vl|qwen2-vl|qwen3-vl"
            r"|minicpm-v|moondream|granite3\.2-vision)" + _END
        ),
        True,
    ),
)


def reads(rows: Rows, model: str) -> bool:
    """Whether the first row matching ``model`` (lower-cased) says it reads; none: no."""
    name = model.strip().lower()
    return next((verdict for pattern, verdict in rows if pattern.search(name)), False)


def openai_reads(model: str) -> bool:
    """OpenAI's multimodal families (a fine-tune ``ft:<base>:...`` as its base model)."""
    return reads(OPENAI, model.strip().lower().removeprefix("ft:"))


def openrouter_reads_images(model: str) -> bool:
    """An OpenRouter id: its vendor's table for ``openai/`` and ``anthropic/``, else the
    OpenRouter table (``:free``, ``:thinking`` variants read as their model)."""
    name = model.strip().lower().split(":", 1)[0]
    vendor, _, rest = name.partition("/")
    if vendor == "openai":
        return openai_reads(rest)
    if vendor == "anthropic":
        return reads(ANTHROPIC_IMAGES, rest)
    return reads(OPENROUTER_IMAGES, name)


def ollama_name(model: str) -> str:
    """An Ollama model reference without its registry or namespace (``library/gemma3:4b``
    → ``gemma3:4b``), as the library names it."""
    return model.strip().lower().rsplit("/", 1)[-1]
