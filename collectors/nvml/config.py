"""Settings of the ``nvml`` receiver and the checks a pydantic model cannot express."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sovtel.component import ComponentConfig


class Config(ComponentConfig):
    """NVML poller settings. ``simulated`` is for the demo and tests, which build their configuration in
    code: a configuration file with it (``sovtel run``, ``sovtel config validate``) is refused."""

    interval_s: float = Field(default=10.0, gt=0, le=3600, description="Seconds between polls.")
    simulated: bool = Field(default=False, description="Use the SIMULATED fake GPUs instead of the driver.")
    simulated_devices: int = Field(default=2, ge=0, le=16, description="Fake GPUs when simulated.")
    prometheus_names: Literal["otel", "dcgm", "both"] = Field(
        default="otel", description="Prometheus names: OpenTelemetry-derived, DCGM-exporter's, or both."
    )
    xid_events: bool = Field(default=True, description="Watch the NVML event set for XID critical errors.")
    processes: bool = Field(default=True, description="Report GPU memory per compute process.")
    mig: bool = Field(default=True, description="Report MIG mode and per-instance memory.")
    init_retry_s: float = Field(default=60.0, gt=0, description="Seconds between NVML start-up attempts.")
    service_name: str = Field(default="sovtel-nvml", min_length=1)


def validate_config(cfg: Config) -> list[str]:
    """Problems a pydantic model cannot see: simulation settings without simulation."""
    if "simulated_devices" in cfg.model_fields_set and not cfg.simulated:
        return ["simulated_devices only applies with simulated: true"]
    return []

