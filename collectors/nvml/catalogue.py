"""The GPU metric catalogue: OpenTelemetry names, units, kinds and descriptions, and the DCGM names they map to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class MetricDef:
    """One OpenTelemetry metric: unit, kind and its Prometheus name in the OpenTelemetry style."""

    name: str
    unit: str
    kind: Literal["gauge", "sum"]
    monotonic: bool
    prometheus: str
    description: str


METRICS: dict[str, MetricDef] = {
    m.name: m
    for m in (
        MetricDef("hw.gpu.utilization", "1", "gauge", False, "hw_gpu_utilization_ratio",
                  "Fraction of time the GPU spent in a task (hw.gpu.task: general, encoder, decoder)."),
        MetricDef("hw.gpu.memory.controller.utilization", "1", "gauge", False,
                  "hw_gpu_memory_controller_utilization_ratio",
                  "Fraction of time device memory was being read or written."),
        MetricDef("hw.gpu.memory.usage", "By", "sum", False, "hw_gpu_memory_usage_bytes", "GPU memory used."),
        MetricDef("hw.gpu.memory.free", "By", "sum", False, "hw_gpu_memory_free_bytes", "GPU memory free."),
        MetricDef("hw.gpu.memory.limit", "By", "sum", False, "hw_gpu_memory_limit_bytes", "Size of the GPU memory."),
        MetricDef("hw.gpu.memory.utilization", "1", "gauge", False, "hw_gpu_memory_utilization_ratio",
                  "Fraction of GPU memory used."),
        MetricDef("hw.gpu.temperature", "Cel", "gauge", False, "hw_gpu_temperature_celsius", "GPU die temperature."),
        MetricDef("hw.gpu.memory.temperature", "Cel", "gauge", False, "hw_gpu_memory_temperature_celsius",
                  "GPU memory temperature."),
        MetricDef("hw.power", "W", "gauge", False, "hw_power_watts", "Power drawn by the GPU (hw.type=gpu)."),
        MetricDef("hw.gpu.power.limit", "W", "gauge", False, "hw_gpu_power_limit_watts", "Enforced power limit."),
        MetricDef("hw.energy", "J", "sum", True, "hw_energy_joules", "Energy consumed by the GPU (hw.type=gpu)."),
        MetricDef("hw.gpu.clock.sm", "Hz", "gauge", False, "hw_gpu_clock_sm_hertz", "SM clock frequency."),
        MetricDef("hw.gpu.clock.memory", "Hz", "gauge", False, "hw_gpu_clock_memory_hertz", "Memory clock frequency."),
        MetricDef("hw.gpu.throttle", "1", "gauge", False, "hw_gpu_throttle",
                  "1 while a reason (hw.gpu.throttle.reason) holds the clocks down."),
        MetricDef("hw.errors", "{error}", "sum", True, "hw_errors",
                  "GPU errors by error.type: corrected / uncorrected (volatile ECC) and xid (with hw.gpu.xid)."),
        MetricDef("hw.gpu.memory.retired_pages", "{page}", "sum", True, "hw_gpu_memory_retired_pages",
                  "Pages retired, by hw.gpu.retirement.cause."),
        MetricDef("hw.gpu.memory.remapped_rows", "{row}", "sum", True, "hw_gpu_memory_remapped_rows",
                  "Rows remapped, by error.type."),
        MetricDef("hw.gpu.memory.row_remap.pending", "1", "gauge", False, "hw_gpu_memory_row_remap_pending",
                  "1 when a row remap waits for a GPU reset."),
        MetricDef("hw.gpu.memory.row_remap.failure", "1", "gauge", False, "hw_gpu_memory_row_remap_failure",
                  "1 when a row remap failed."),
        MetricDef("hw.gpu.pcie.replays", "{replay}", "sum", True, "hw_gpu_pcie_replays", "PCIe replays."),
        MetricDef("hw.gpu.process.memory.usage", "By", "sum", False, "hw_gpu_process_memory_usage_bytes",
                  "GPU memory held by a compute process (process.pid)."),
        MetricDef("hw.gpu.mig.mode", "1", "gauge", False, "hw_gpu_mig_mode", "1 when MIG mode is enabled."),
        MetricDef("hw.gpu.mig.instances", "{instance}", "sum", False, "hw_gpu_mig_instances", "MIG devices."),
        MetricDef("hw.gpu.mig.memory.usage", "By", "sum", False, "hw_gpu_mig_memory_usage_bytes",
                  "Memory used in a MIG device (hw.gpu.mig.instance)."),
        MetricDef("hw.gpu.mig.memory.limit", "By", "sum", False, "hw_gpu_mig_memory_limit_bytes",
                  "Memory of a MIG device."),
        MetricDef("hw.status", "1", "sum", False, "hw_status", "1 for the GPU's current hw.state (ok, failed)."),
    )
}

# DCGM-exporter help texts for the fields we map (names and units as dcgm-exporter publishes them).
DCGM_HELP: dict[str, tuple[str, str]] = {
    "DCGM_FI_DEV_GPU_UTIL": ("gauge", "GPU utilization (in %)."),
    "DCGM_FI_DEV_ENC_UTIL": ("gauge", "Encoder utilization (in %)."),
    "DCGM_FI_DEV_DEC_UTIL": ("gauge", "Decoder utilization (in %)."),
    "DCGM_FI_DEV_MEM_COPY_UTIL": ("gauge", "Memory utilization (in %)."),
    "DCGM_FI_DEV_FB_USED": ("gauge", "Framebuffer memory used (in MiB)."),
    "DCGM_FI_DEV_FB_FREE": ("gauge", "Framebuffer memory free (in MiB)."),
    "DCGM_FI_DEV_FB_TOTAL": ("gauge", "Framebuffer memory total (in MiB)."),
    "DCGM_FI_DEV_GPU_TEMP": ("gauge", "GPU temperature (in C)."),
    "DCGM_FI_DEV_MEMORY_TEMP": ("gauge", "Memory temperature (in C)."),
    "DCGM_FI_DEV_POWER_USAGE": ("gauge", "Power draw (in W)."),
    "DCGM_FI_DEV_POWER_MGMT_LIMIT": ("gauge", "Power management limit (in W)."),
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": ("counter", "Total energy consumption since boot (in mJ)."),
    "DCGM_FI_DEV_SM_CLOCK": ("gauge", "SM clock frequency (in MHz)."),
    "DCGM_FI_DEV_MEM_CLOCK": ("gauge", "Memory clock frequency (in MHz)."),
    "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS": ("gauge", "Current clock throttle reasons (bitmask)."),
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": ("counter", "Total number of single-bit volatile ECC errors."),
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": ("counter", "Total number of double-bit volatile ECC errors."),
    "DCGM_FI_DEV_RETIRED_SBE": ("counter", "Total number of retired pages due to single-bit errors."),
    "DCGM_FI_DEV_RETIRED_DBE": ("counter", "Total number of retired pages due to double-bit errors."),
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": ("counter", "Number of remapped rows for correctable errors."),
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": ("counter", "Number of remapped rows for uncorrectable errors."),
    "DCGM_FI_DEV_ROW_REMAP_PENDING": ("gauge", "Whether remapping of rows is pending."),
    "DCGM_FI_DEV_ROW_REMAP_FAILURE": ("gauge", "Whether remapping of rows has failed."),
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": ("counter", "Total number of PCIe retries."),
    "DCGM_FI_DEV_XID_ERRORS": ("gauge", "Value of the last XID error encountered."),
}

