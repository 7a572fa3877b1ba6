"""Errors of the Kafka connectors: each names the brokers or topic involved and what to check."""

from __future__ import annotations

from flowlib.errors import FlowlibError

__all__ = ["KafkaConnectorError", "KafkaDeliveryError", "KafkaUnavailableError"]


class KafkaConnectorError(FlowlibError):
    """A Kafka source or sink cannot go on (missing topic, rejected request, fenced producer)."""


class KafkaUnavailableError(KafkaConnectorError):
    """The brokers could not be reached within the retry budget (:class:`KafkaRetry`)."""


class KafkaDeliveryError(KafkaConnectorError):
    """Records could not be written to Kafka; the checkpoint that would cover them fails."""
