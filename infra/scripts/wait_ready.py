"""Wait until every service's /health/ready answers 200 (or, with --report, print each one's health)."""

import sys
import time

import httpx

APIS = {"order": 8001, "payment": 8002, "inventory": 8003}


def probe(port: int) -> str:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2)
    except httpx.HTTPError as exc:
        return f"unreachable ({type(exc).__name__})"
    return "ready" if response.status_code == 200 else f"not ready: {response.text[:200]}"


def main() -> int:
    if "--report" in sys.argv:
        for name, port in APIS.items():
            print(f"{name + '-api health':26} {probe(port)}")
        return 0
    deadline = time.monotonic() + 90
    pending = dict(APIS)
    while pending and time.monotonic() < deadline:
        pending = {name: port for name, port in pending.items() if probe(port) != "ready"}
        if pending:
            time.sleep(0.5)
    if pending:
        for name, port in pending.items():
            print(f"{name}-api on :{port}: {probe(port)} (see .run/logs/{name}-*.log)", file=sys.stderr)
        return 1
    print("services: order :8001, payment :8002, inventory :8003 ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
