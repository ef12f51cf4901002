"""The adversarial suite: bounded, loopback-only attacks on the collector, the store service and the CLIs."""
