"""The lock every import deferred to first use goes through (cold start), and why one is needed.

The function serves requests on several threads (gunicorn's gthread worker) and runs refreshes on
thread pools. A package imported lazily by two threads at once can hand the second one a module whose
import is not finished (two first requests configuring Cloud Logging did: "cannot access submodule
'logging_v2' of module 'google.cloud'", lib/logs.py), so each deferred import happens under this lock,
in a request's own thread, before that request starts any thread of its own.
"""

from __future__ import annotations

import threading

# Re-entrant, so a deferred import reached while another is under way in the same thread cannot wait on itself.
IMPORT_LOCK = threading.RLock()
