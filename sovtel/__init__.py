"""sovtel: sovereignty-aware telemetry for AI inference — core: records, config, runtime, CLI."""

__version__ = "0.1.0"
