"""The collector side of the spine benchmark: a pipeline pinned to one core, driven over stdin/stdout."""

from __future__ import annotations

import json
import resource
import sys

from bench.common import pin_to_one_core
from sovtel.config import parse_config
from sovtel.pipeline import Service


def main(store_dir: str) -> None:
    """Serve OTLP/HTTP on a free port (printed), and on 'flush' drain the queues and print what was stored."""
    pin_to_one_core(0)
    cfg = parse_config({
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0", "max_body_bytes": 64 << 20},
                                             "grpc": {"enabled": False}}}},
        "processors": {"minimise": {}},
        "exporters": {"clickhouse": {"path": store_dir, "queue": {"batch_rows": 20000, "max_delay_s": 0.2}}},
        "service": {"data_dir": store_dir + "-state", "telemetry": {"metrics": {"enabled": False}},
                    "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["minimise"],
                                             "exporters": ["clickhouse"]}}},
    }, source="bench")
    svc = Service(cfg)
    svc.start()
    ready = _cpu_s()  # start-up (imports, migrations) is not part of the measured work
    print(svc.receivers["otlp"].http_port, flush=True)  # type: ignore[attr-defined]
    sys.stdin.readline()
    svc.flush(300)
    stored = svc.telemetry.total("sovtel_sent_records_total", component="clickhouse")
    cpu = _cpu_s() - ready
    svc.shutdown()
    print(json.dumps({"stored": int(stored), "cpu_s": cpu}), flush=True)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main(sys.argv[1])
