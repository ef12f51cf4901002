"""Test set-up: install the system services the tests talk to (Prometheus) when they are missing.

Run by ``make test`` before pytest. Uses Debian's packages by name; services are not started here
(the tests start their own instances on 127.0.0.1).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

DEBIAN_PACKAGES = {"prometheus": "prometheus"}


def missing() -> list[str]:
    """Debian packages whose binaries are not on PATH."""
    return [pkg for binary, pkg in DEBIAN_PACKAGES.items() if shutil.which(binary) is None]


def main() -> int:
    """Install what is missing; non-zero if it cannot be installed."""
    need = missing()
    if not need:
        return 0
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        print(f"tests.setup: please install {' '.join(need)} (Debian packages); cannot install here", file=sys.stderr)
        return 1
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"tests.setup: installing {' '.join(need)} with apt-get", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *need], check=True, env=env,
        stdout=subprocess.DEVNULL,
    )
    # Debian's package may start a system instance; the tests run their own on loopback.
    subprocess.run(["sh", "-c", "service prometheus stop >/dev/null 2>&1 || true"], check=False)
    return 0 if not missing() else 1


if __name__ == "__main__":
    sys.exit(main())
