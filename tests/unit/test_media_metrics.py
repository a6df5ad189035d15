"""The media counters in ``/metrics``: downloads, bytes, transcription seconds by source,
pictures sent to a model, per tenant only when tenant labels are on."""

from __future__ import annotations

from uuid import UUID

from changarrito.adapters.metrics import Metrics
from changarrito.domain.media import MediaRefused
from changarrito.settings import MetricsSettings

SHOP = UUID(int=42)


def lines(metrics: Metrics, name: str) -> list[str]:
    return [
        line
        for line in metrics.render().decode().splitlines()
        if line.startswith(name) and not line.startswith("#")
    ]


def test_downloads_bytes_transcribed_seconds_and_pictures_are_counted_by_source() -> None:
    metrics = Metrics()

    metrics.media_download("audio", SHOP, 4_000, None)
    metrics.media_download("audio", SHOP, 0, MediaRefused("big", reason="too-large"))
    metrics.transcription("openai", "platform", SHOP, 3.5)
    metrics.transcription("openai", "platform", SHOP, 1.5)
    metrics.transcription("openai", "tenant", SHOP, None)
    metrics.media_to_model("image", "anthropic", "tenant", SHOP)

    assert lines(metrics, "changarrito_media_downloads_total") == [
        'changarrito_media_downloads_total{kind="audio",outcome="ok"} 1.0',
        'changarrito_media_downloads_total{kind="audio",outcome="media-refused"} 1.0',
    ]
    assert lines(metrics, "changarrito_media_downloaded_bytes_total") == [
        'changarrito_media_downloaded_bytes_total{kind="audio"} 4000.0'
    ]
    assert lines(metrics, "changarrito_transcribed_audio_seconds_total") == [
        'changarrito_transcribed_audio_seconds_total{provider="openai",source="platform"} 5.0'
    ]
    assert len(lines(metrics, "changarrito_transcriptions_total")) == 2  # by source
    assert lines(metrics, "changarrito_media_to_model_total") == [
        'changarrito_media_to_model_total{kind="image",provider="anthropic",source="tenant"} 1.0'
    ]


def test_the_tenant_is_a_label_of_the_media_counters_only_when_switched_on() -> None:
    metrics = Metrics(MetricsSettings(tenant_labels=True))

    metrics.transcription("openai", "tenant", SHOP, 2.0)
    metrics.media_download("image", None, 10, None)

    assert lines(metrics, "changarrito_transcribed_audio_seconds_total") == [
        "changarrito_transcribed_audio_seconds_total"
        f'{{provider="openai",source="tenant",tenant="{SHOP}"}} 2.0'
    ]
    assert lines(metrics, "changarrito_media_downloads_total") == [
        'changarrito_media_downloads_total{kind="image",outcome="ok",tenant="platform"} 1.0'
    ]
