"""Receivers: OTLP (gRPC, HTTP protobuf/JSON), the in-process SDK exporter, GenAI normalisation."""
