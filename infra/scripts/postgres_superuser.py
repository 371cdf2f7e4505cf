"""SQL as the local Postgres superuser, for the setup scripts, the benchmarks and the tests that act
outside every service's role (roles, publications, replication slots, reads across schemas).

It goes through `infra/postgres/postgres.sh psql` (peer authentication as the cluster's owner), the
way `make psql` does, so no superuser password exists anywhere. Standard library only: the services'
image runs connectors.py, which imports this module, and carries nothing else for it.
"""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def superuser_sql(sql: str, *, variables: dict[str, str] | None = None, timeout: float = 60) -> str:
    """Run `sql` (one statement or a script; psql `:variables` filled from `variables`) and return its
    unaligned, tuples-only output, stripped. Stops at the first error and raises RuntimeError with
    psql's message."""
    command = ["bash", str(REPO / "infra/postgres/postgres.sh"), "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"]
    for name, value in (variables or {}).items():
        command += ["-v", f"{name}={value}"]
    done = subprocess.run(
        command,
        input=sql,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PGOPTIONS": "-c client_min_messages=warning"},  # no NOTICEs of IF NOT EXISTS
    )
    if done.returncode != 0:
        raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip()
