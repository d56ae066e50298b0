"""The provider sandbox in its own process (so its CPU is not the refresher's), driven over a pipe:
register the workspaces' calendars, switch the slot variant, read request counters and CPU time."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from dataclasses import dataclass
from datetime import date, datetime
from multiprocessing.connection import Connection
from typing import Any

from bench.latency import DrawRecorder, LatencyModel
from bench.workload import PROVIDER_ZONES, Provider, Workspace, slot_starts, workspaces


@dataclass(frozen=True)
class FakeStats:
    requests: int
    cpu_s: float  # the sandbox process's user + system CPU time so far


@dataclass(frozen=True)
class FakeConfig:
    workspaces: int
    latency_s: float
    slots_per_day: int
    today: date
    cache_payloads: bool = True
    latency_model: LatencyModel | None = None  # each request's delay drawn from it instead of latency_s


class FakeProviders:
    """A `sandbox.providers.ProviderSandbox` serving every seeded workspace, in a spawned child."""

    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        context = multiprocessing.get_context("spawn")
        self._pipe, child_end = context.Pipe()
        self._process = context.Process(target=_serve, args=(child_end, config), name="bench-sandbox", daemon=True)
        self.base_url = ""

    def start(self) -> FakeProviders:
        self._process.start()
        self.base_url = str(self._call("ready", timeout_s=300))
        return self

    def set_variant(self, variant: int) -> None:
        """Re-register every calendar with the slots of `variant` (another variant changes every slot)."""
        self._call("variant", variant, timeout_s=600)

    def take_draws(self) -> dict[str, list[float]]:
        """With a latency model: the delays drawn since the last call, by calendar key (else empty)."""
        return dict(self._call("draws"))

    def stats(self) -> FakeStats:
        requests, cpu_s = self._call("stats")
        return FakeStats(int(requests), float(cpu_s))

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def stop(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError, EOFError, TimeoutError):  # it is killed below if need be
                self._call("stop", timeout_s=10)
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()

    def __enter__(self) -> FakeProviders:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _call(self, command: str, *args: Any, timeout_s: float = 60) -> Any:
        if command != "ready":
            self._pipe.send((command, *args))
        if not self._pipe.poll(timeout_s):
            raise TimeoutError(f"the sandbox process did not answer {command!r} within {timeout_s:.0f} s")
        status, value = self._pipe.recv()
        if status != "ok":
            raise RuntimeError(f"sandbox process: {value}")
        return value


def _serve(pipe: Connection, config: FakeConfig) -> None:
    """The child's main: start the sandbox, register, then answer commands until told to stop."""
    from sandbox.providers import ProviderSandbox

    sandbox = ProviderSandbox(latency_s=config.latency_s, cache_payloads=config.cache_payloads)
    recorder = DrawRecorder(config.latency_model) if config.latency_model else None
    sandbox.set_latency_sampler(recorder)
    try:
        _register(sandbox, config, variant=0)
        sandbox.start()
        pipe.send(("ok", sandbox.base_url))
        while True:
            command, *args = pipe.recv()
            if command == "stop":
                pipe.send(("ok", None))
                return
            if command == "variant":
                _register(sandbox, config, variant=int(args[0]))
                pipe.send(("ok", None))
            elif command == "draws":
                pipe.send(("ok", recorder.take() if recorder else {}))
            elif command == "stats":
                times = os.times()
                pipe.send(("ok", (sandbox.total_requests, times.user + times.system)))
            else:
                pipe.send(("error", f"unknown command {command!r}"))
    except BaseException as exc:  # the parent must hear about it rather than wait for a timeout
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        sandbox.stop()


def _register(sandbox: Any, config: FakeConfig, *, variant: int) -> None:
    # One slot list per provider zone, shared by every calendar of that provider.
    slots = {
        provider: slot_starts(zone, today=config.today, variant=variant, slots_per_day=config.slots_per_day)
        for provider, zone in PROVIDER_ZONES.items()
    }
    for workspace in workspaces(config.workspaces):
        register_calendar(sandbox, workspace, slots[workspace.provider])


def register_calendar(sandbox: Any, workspace: Workspace, starts: list[datetime]) -> None:
    """Serve `starts` as the calendar of one bench workspace."""
    zone = PROVIDER_ZONES[workspace.provider]
    if workspace.provider is Provider.CALENDLY:
        sandbox.add_calendly_event(workspace.profile, "intro-call", starts, uuid=workspace.key, timezone=zone)
    elif workspace.provider is Provider.HUBSPOT:
        sandbox.add_hubspot_link(workspace.key, starts)
    else:
        sandbox.add_ghl_calendar(workspace.key, starts, timezone=zone)
