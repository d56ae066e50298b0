"""Cold start: what `import main` loads, and where the imports it defers happen (the request's thread,
never a refresh worker or HTTP helper), each checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox.providers import weekday_slots
from tests.conftest import SECRET

GHL_ID = "xqwSvxDlit1P0lTnTrfx"
ROOT = Path(__file__).resolve().parent.parent
# Packages of the request path that `import main` defers to the first request (main.load_request_path).
DEFERRED = ("lib.auth", "lib.oidc", "lib.run", "lib.db", "lib.providers", "requests", "urllib3", "pg8000", "scramp")


def _is_deferred(module: str) -> bool:
    return any(module == name or module.startswith(f"{name}.") for name in DEFERRED)


def _serve_one_request(env: dict[str, str], *flags: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "tests.first_request", SECRET, *flags],
        cwd=ROOT,
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return report


def _seed_three_providers(seed: Any, sandbox: Any) -> None:
    # One workspace per provider (GoHighLevel through its booking page, a tenant URL), so the API pools,
    # the tenant sessions and every provider module serve this first request.
    now = datetime.now(UTC)
    sandbox.add_hubspot_link("alice", weekday_slots(now, 31))
    sandbox.add_calendly_event("acme", "intro", weekday_slots(now, 31))
    sandbox.add_ghl_calendar(GHL_ID, weekday_slots(now, 31))
    sandbox.add_ghl_booking_page("/widget/bookings/growth-team", GHL_ID)
    links = (
        ("c1", "https://meetings.hubspot.com/alice", None),
        ("c2", "https://calendly.com/acme/intro", None),
        ("c3", f"{sandbox.base_url}/widget/bookings/growth-team", "ghl"),
    )
    for name, url, link_type in links:
        seed.client(name)
        if link_type:
            seed.link(name, url, link_type=link_type)
        else:
            seed.link(name, url)


def test_import_main_defers_the_request_path():
    code = "import json, sys, main; print(json.dumps(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    modules = json.loads(loaded.stdout)
    assert "main" in modules
    assert [module for module in modules if _is_deferred(module)] == []


def test_the_first_request_imports_the_deferred_modules_in_its_own_thread(env, seed, sandbox):
    _seed_three_providers(seed, sandbox)
    report = _serve_one_request(env)
    assert (report["status"], report["refreshed"]) == (200, 3)
    deferred = [(module, thread) for module, thread in report["imports"] if _is_deferred(module)]
    assert {"lib.run", "requests", "pg8000"} <= {module for module, _ in deferred}
    assert {thread for _, thread in deferred} == {report["requestThread"]}


def test_after_load_request_path_the_first_request_imports_nothing_deferred(env, seed, sandbox):
    # What the bench's first-request figure measures: load_request_path() leaves none of the request
    # path's packages for the request itself to import, and no thread but the request's imports anything
    # (requests' lazy `netrc` import at a tenant session's first request included).
    _seed_three_providers(seed, sandbox)
    report = _serve_one_request(env, "--warm")
    assert (report["status"], report["refreshed"]) == (200, 3)
    assert [module for module, _ in report["imports"] if _is_deferred(module)] == []
    assert [module for module, thread in report["imports"] if thread != report["requestThread"]] == []
