"""The lock every import deferred to first use goes through (cold start), and why one is needed.

The function serves requests on several threads (gunicorn's gthread worker) and runs refreshes on
thread pools. A package imported lazily for the first time by two threads at once can fail half-way
(we have seen "cannot access submodule … of module google.cloud"), so each deferred import happens
under this lock, in a request's own thread, before that request starts any thread of its own.
"""

from __future__ import annotations

import threading

# Re-entrant, so a deferred import reached while another is under way in the same thread cannot wait on itself.
IMPORT_LOCK = threading.RLock()
