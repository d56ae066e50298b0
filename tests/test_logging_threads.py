"""The first log line of a worker whose first requests arrive together (Cloud Logging's JSON handler).

google-cloud-logging's package `google.cloud.logging_v2` imports its `handlers` submodule first and
then goes on importing its API clients; the handler's `emit` reads an attribute of the package. A
second request configuring logging while the first one's import is in that stretch used to get a
handler whose first line raised "cannot access submodule 'logging_v2' of module 'google.cloud'" out
of `emit`, so the function answered a bare 500 (issue 12: seen in tests/test_faults_secrets.py).

The race is made certain here, not waited for: a fresh interpreter (the import must be the first)
holds the first request's thread at the point of that import where the package is still half done,
with a finder on `sys.meta_path` that only waits and finds nothing, while a second request runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import SECRET

ROOT = Path(__file__).resolve().parent.parent

# Runs in its own interpreter. The first thread (a GET: method and logging, then 401) is held when it
# is about to import google.cloud.logging_v2.client, which the package imports after its handlers; the
# second (a POST whose DATABASE_URL has an invalid port: a "not_configured" warning, then 503) runs
# meanwhile. Its thread is given 3 s to finish on its own (it does, without the fix: the failure is
# immediate) before the first is let go.
RACE = """
import importlib.abc, json, sys, threading
import functions_framework

app = functions_framework.create_app(target="availability_cron", source="main.py")
held, release = threading.Event(), threading.Event()

class HoldTheFirstImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "google.cloud.logging_v2.client" and threading.current_thread().name == "first":
            held.set()
            release.wait(timeout=60)
        return None  # finds nothing: the normal finders import the module

sys.meta_path.insert(0, HoldTheFirstImport())
answers = {}

def call(name, method, headers):
    answer = app.test_client().open("/", method=method, headers=headers)
    answers[name] = [answer.status_code, answer.get_data(as_text=True)]

first = threading.Thread(name="first", target=call, args=("first", "GET", {}))
first.start()
assert held.wait(timeout=60), "the first request never reached the import"
second = threading.Thread(name="second", target=call, args=("second", "POST", {"Authorization": sys.argv[1]}))
second.start()
second.join(timeout=3)
release.set()
first.join(timeout=60)
second.join(timeout=60)
print("ANSWERS " + json.dumps(answers))
"""


def test_a_request_configuring_logging_while_another_imports_the_handler_logs_and_answers_json() -> None:
    env = {
        **os.environ,
        "CRON_SECRET": SECRET,
        "DATABASE_URL": "postgresql://user:pw@127.0.0.1:notaport/db",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }
    for name in ("K_SERVICE", "FUNCTION_TARGET", "GOOGLE_CLOUD_PROJECT", "GCP_PROJECT", "GCLOUD_PROJECT"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", RACE, f"Bearer {SECRET}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cannot access submodule" not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    answers = json.loads(next(line for line in lines if line.startswith("ANSWERS "))[len("ANSWERS ") :])
    assert answers["first"][0] == 401
    status, body = answers["second"]
    assert status == 503, body
    assert json.loads(body)["error"] == "Not configured"
    # The second request's warning was written as a Cloud Logging JSON line.
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    warnings = [entry for entry in entries if entry.get("event") == "not_configured"]
    assert len(warnings) == 1 and warnings[0]["severity"] == "WARNING", entries
