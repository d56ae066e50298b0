"""`python -m bench.parse_cost`: the CPU one workspace's answer costs once it has arrived, with no
network, database or threads: decode the body, parse it, keep the window's slots in the cache's
form and build the row's JSON, for the sandbox's real bodies (≈ 670 slots, one workspace on each
provider). The process's CPU time (getrusage) per workspace, median of --repeat rounds.

It isolates the part of a refresh the parsing levers of issue 12 act on, and being one thread in one
process it is far less noisy than a full run on a loaded machine; run it from two checkouts one
after the other to compare code (the script only needs `lib.providers.*`, `lib.slots`, `lib.store`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import statistics
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests

from bench.fakes import register_calendar
from bench.probes import _availability_url
from bench.workload import PROVIDER_ZONES, slot_starts, workspaces
from lib import jsonfast
from lib.outcome import Outcome, RefreshOutcome
from lib.providers import calendly, ghl, hubspot
from lib.slots import Window, normalize_slots
from lib.store import _row_json
from sandbox.providers import ProviderSandbox

PROVIDERS = ("calendly", "hubspot", "ghl")


def sandbox_bodies(now: datetime, slots_per_day: int) -> dict[str, list[bytes]]:
    """One workspace's availability answers on each provider (HubSpot: both months), as sent."""
    bodies: dict[str, list[bytes]] = {}
    with ProviderSandbox() as sandbox, requests.Session() as session:
        for workspace in workspaces(3):
            zone = PROVIDER_ZONES[workspace.provider]
            register_calendar(
                sandbox, workspace, slot_starts(zone, today=now.date(), variant=0, slots_per_day=slots_per_day)
            )
            url = _availability_url(sandbox.base_url, workspace, now)
            urls = [url.replace("monthOffset=1", "monthOffset=0"), url] if "monthOffset" in url else [url]
            bodies[workspace.provider.value] = [session.get(u, timeout=10).content for u in urls]
    return bodies


def workspace_cost(bodies: dict[str, list[bytes]], now: datetime, loads: Callable[[bytes], Any]) -> Callable[[], int]:
    """A function that does one round (one workspace on each provider) and returns the slots kept."""
    window = Window.ahead(now, 30)

    def one(provider: str) -> int:
        if provider == "calendly":
            instants = calendly.parse_range(loads(bodies[provider][0]))
        elif provider == "hubspot":
            instants = [
                ms for body in bodies[provider] for ms in hubspot.parse_availability_page(loads(body)).starts_ms
            ]
        else:
            instants = ghl.parse_free_slots(loads(bodies[provider][0]))
        slots = normalize_slots(instants, window)
        meta = {"calendlyEventTypeUuid": "b3c0d7e2", "calendlyAvailabilityTimezone": "America/New_York"}
        row = RefreshOutcome(
            client_id="bench-1",
            outcome=Outcome.REFRESHED,
            fetched_at=now,
            stale_at=now,
            range_end=now,
            error=None,
            calendar_link_id="l",
            calendar_type="CALENDLY",
            calendar_url="u",
            slot_duration_minutes=30,
            slots=slots,
            provider_meta=meta,
        )
        _row_json(row)
        return len(slots)

    return lambda: sum(one(provider) for provider in PROVIDERS)


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.parse_cost", description=__doc__)
    parser.add_argument("--rounds", type=int, default=300, help="workspaces of each provider per measurement")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--decoder",
        choices=("json", "orjson", "function"),
        default="json",
        help="how bodies are decoded: json.loads, orjson.loads alone, or the function's lib.jsonfast.loads",
    )
    parser.add_argument("--slots-per-day", type=int, default=32)
    args = parser.parse_args(argv)
    if args.decoder == "orjson":
        loads: Callable[[bytes], Any] = importlib.import_module("orjson").loads
    elif args.decoder == "function":
        loads = jsonfast.loads
    else:
        loads = json.loads
    now = datetime.now(UTC)
    round_once = workspace_cost(sandbox_bodies(now, args.slots_per_day), now, loads)
    slots = round_once()  # warm: the first round fills the remembered texts and instants
    samples = []
    for _ in range(args.repeat):
        before = cpu_s()
        for _ in range(args.rounds):
            round_once()
        samples.append((cpu_s() - before) * 1000 / (args.rounds * len(PROVIDERS)))
    median = statistics.median(samples)
    print(
        f"parse cost ({args.decoder}): {median:.3f} ms CPU per workspace (median of {args.repeat}, "
        f"min {min(samples):.3f}, max {max(samples):.3f}; {slots / len(PROVIDERS):.0f} slots a workspace)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
