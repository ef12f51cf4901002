"""Receiver ``nvml``: polls every GPU with pynvml, emits ``hw.gpu.*`` metric rows and serves them on /metrics.

Names follow the OpenTelemetry hardware conventions; ``prometheus_names: dcgm`` (or ``both``) also
exposes the DCGM-exporter names so existing DCGM dashboards keep working. See docs/gpu.md.
"""

from __future__ import annotations

from collectors.nvml.catalogue import DCGM_HELP, METRICS, MetricDef
from collectors.nvml.config import Config, validate_config
from collectors.nvml.receiver import NvmlReceiver, create

__all__ = ["DCGM_HELP", "METRICS", "Config", "MetricDef", "NvmlReceiver", "create", "validate_config"]
