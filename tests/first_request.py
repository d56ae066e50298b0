"""Run in a fresh interpreter by tests/test_cold_start.py: serve one request through the real
functions-framework app and print, as JSON, every module first imported and the thread that imported it.

`python -m tests.first_request [--warm]`: with --warm, main.load_request_path() runs before the request,
as the bench's first-request figure does. The environment (database, sandbox, secret) is the caller's.
"""

from __future__ import annotations

import importlib.abc
import json
import sys
import threading
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


class ImportRecorder(importlib.abc.MetaPathFinder):
    """Notes each first import (a module not yet in sys.modules) with its thread; finds nothing itself."""

    def __init__(self) -> None:
        self.imports: list[tuple[str, str]] = []
        self.recording = False

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if self.recording:
            self.imports.append((fullname, threading.current_thread().name))
        return None


def main(argv: list[str]) -> None:
    recorder = ImportRecorder()
    sys.meta_path.insert(0, recorder)
    import functions_framework

    app = functions_framework.create_app(target="availability_cron", source=str(ROOT / "main.py"))
    if "--warm" in argv:
        sys.modules["main"].load_request_path()
    client = app.test_client()
    recorder.recording = True
    response = client.post("/", headers={"Authorization": f"Bearer {argv[0]}"})
    recorder.recording = False
    body = response.get_json()
    report = {
        "status": response.status_code,
        "refreshed": body.get("refreshed"),
        "requestThread": threading.current_thread().name,
        "imports": recorder.imports,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
