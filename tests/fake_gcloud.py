"""A stand-in `gcloud` for the deploy.sh tests: nothing here talks to Google Cloud.

`install` writes the stand-in (a small bash script, so that a deploy's dozen calls cost milliseconds) into a
directory to put first on PATH. Each call appends one JSON line to the file named by FAKE_GCLOUD_LOG: its
argv, the gcloud settings it got from the environment, its working directory, its exit status, for
`secrets create` the number of bytes that arrived on stdin (never the bytes), and for `--flags-file` the
document the file held and its permissions.

The simulated project is a directory named by FAKE_GCLOUD_STATE (`write_state` / `read_state` convert it
from and to a dict, see `fresh_state`): describe calls answer from it, create/deploy/binding calls update it,
so a second run sees what the first one made. A call whose argv starts with a line of the state's `fail`
list exits 1.

Scheduler jobs live in one location (the fake ignores --location but for echoing it): `scheduler jobs list`
prints every job of the state, one a line, as the resource name `projects/P/locations/R/jobs/NAME` (what
current gcloud prints for `value(name)`) or, with the state's `jobs_listed_as` set to "id", as NAME alone;
`scheduler jobs delete NAME` removes one; create and update remember the job's --uri (`job_uris`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

FUNCTION_URL = "https://{name}-a1b2c3d4e5-uc.a.run.app"

SCRIPT = r"""#!/usr/bin/env bash
# Stand-in gcloud written by tests/fake_gcloud.py; see that module.
set -uo pipefail
state=$FAKE_GCLOUD_STATE
args=("$@")

to_json() {  # to_json VARIABLE TEXT: TEXT as a JSON string
	local text=$2
	text=${text//\\/\\\\}
	text=${text//\"/\\\"}
	text=${text//$'\n'/\\n}
	text=${text//$'\r'/\\r}
	text=${text//$'\t'/\\t}
	printf -v "$1" '"%s"' "$text"
}

option() {  # the value of --NAME VALUE or --NAME=VALUE
	local i
	for ((i = 0; i < ${#args[@]}; i++)); do
		if [[ ${args[i]} == "$1" ]]; then
			printf '%s' "${args[i + 1]:-}"
			return 0
		elif [[ ${args[i]} == "$1="* ]]; then
			printf '%s' "${args[i]#*=}"
			return 0
		fi
	done
	return 1
}

not_found() {
	printf 'ERROR: (gcloud) NOT_FOUND: %s not found\n' "$1" >&2
	status=1
}

already_exists() {
	printf 'ERROR: (gcloud) ALREADY_EXISTS: %s already exists\n' "$1" >&2
	status=1
}

# The command and its resource name: the words before the first flag.
words=()
for arg in "$@"; do
	if [[ $arg == -* ]]; then
		break
	fi
	words+=("$arg")
done
name=""
if ((${#words[@]})); then
	name=${words[${#words[@]} - 1]}
fi
extra=""
status=0

failing=0
if [[ -f $state/fail ]]; then
	while IFS= read -r prefix; do
		if [[ -n $prefix && "$* " == "$prefix "* ]]; then
			failing=1
		fi
	done <"$state/fail"
fi

if ((failing)); then
	printf 'ERROR: (gcloud) simulated failure\n' >&2
	status=1
else
	case "${words[*]}" in
	"config get-value project")
		if [[ -f $state/project ]]; then
			cat "$state/project"
		else
			printf '(unset)\n' >&2
		fi
		;;
	"projects describe "*) cat "$state/project_number" ;;
	"secrets describe "*) [[ -e $state/secrets/$name ]] || not_found "secret $name" ;;
	"secrets create "*)
		extra+=", \"stdin_length\": $(wc -c | tr -d ' ')"
		if [[ -e $state/secrets/$name ]]; then
			already_exists "secret $name"
		else
			touch "$state/secrets/$name"
		fi
		;;
	"secrets versions access "*)
		secret=$(option --secret)
		if [[ -e $state/secrets/$secret ]]; then
			cat "$state/secret_value"
		else
			not_found "secret $secret"
		fi
		;;
	"functions deploy "*)
		touch "$state/functions/$name" "$state/invokers/$name"
		if [[ " $* " == *" --allow-unauthenticated "* ]] && ! grep -qx allUsers "$state/invokers/$name"; then
			printf 'allUsers\n' >>"$state/invokers/$name"
		fi
		;;
	"functions describe "*)
		if [[ -e $state/functions/$name ]]; then
			printf 'https://%s-a1b2c3d4e5-uc.a.run.app\n' "$name"
		else
			not_found "function $name"
		fi
		;;
	"functions add-invoker-policy-binding "*)
		member=$(option --member)
		touch "$state/invokers/$name"
		if ! grep -qxF "$member" "$state/invokers/$name"; then
			printf '%s\n' "$member" >>"$state/invokers/$name"
		fi
		;;
	"functions remove-invoker-policy-binding "*)
		member=$(option --member)
		if grep -qxF "$member" "$state/invokers/$name" 2>/dev/null; then
			remaining=$(grep -vxF "$member" "$state/invokers/$name")
			printf '%s' "${remaining:+$remaining$'\n'}" >"$state/invokers/$name"
		else
			not_found "binding for $member"
		fi
		;;
	"run services get-iam-policy "*)
		if [[ -e $state/functions/$name ]]; then
			cat "$state/invokers/$name"
		else
			not_found "service $name"
		fi
		;;
	"scheduler jobs describe "*) [[ -e $state/jobs/$name ]] || not_found "job $name" ;;
	"scheduler jobs list")
		location=$(option --location) || location=""
		project=$(option --project) || project=""
		for job in "$state"/jobs/*; do
			[[ -e $job ]] || continue
			if [[ $(<"$state/jobs_listed_as") == id ]]; then
				printf '%s\n' "${job##*/}"
			else
				printf 'projects/%s/locations/%s/jobs/%s\n' "$project" "$location" "${job##*/}"
			fi
		done
		;;
	"scheduler jobs create http "*)
		if [[ -e $state/jobs/$name ]]; then
			already_exists "job $name"
		else
			option --uri >"$state/jobs/$name"
		fi
		;;
	"scheduler jobs update http "*)
		if [[ -e $state/jobs/$name ]]; then
			option --uri >"$state/jobs/$name"
		else
			not_found "job $name"
		fi
		;;
	"scheduler jobs delete "*)
		if [[ -e $state/jobs/$name ]]; then
			rm "$state/jobs/$name"
		else
			not_found "job $name"
		fi
		;;
	*) ;; # services enable, secrets add-iam-policy-binding, run services update: nothing to remember
	esac
fi

if flags_file=$(option --flags-file); then
	extra+=", \"flags_file\": $(<"$flags_file"), \"flags_file_mode\": \"0o$(stat -c %a "$flags_file")\""
fi
argv=""
quoted=""
for arg in "$@"; do
	to_json quoted "$arg"
	argv+="${argv:+, }$quoted"
done
environment=""
for variable in CLOUDSDK_CORE_DISABLE_PROMPTS CLOUDSDK_CORE_DISABLE_FILE_LOGGING; do
	if [[ -n ${!variable+set} ]]; then
		to_json quoted "${!variable}"
		environment+="${environment:+, }\"$variable\": $quoted"
	fi
done
cwd=""
to_json cwd "$PWD"
printf '{"argv": [%s], "env": {%s}, "cwd": %s, "status": %d%s}\n' "$argv" "$environment" "$cwd" "$status" "$extra" \
	>>"$FAKE_GCLOUD_LOG"
exit "$status"
"""

_SETS = ("secrets", "functions", "jobs")


def install(directory: Path) -> Path:
    """Write the stand-in as DIRECTORY/gcloud."""
    gcloud = directory / "gcloud"
    gcloud.write_text(SCRIPT)
    gcloud.chmod(0o755)
    return gcloud


def fresh_state(**changes: Any) -> dict[str, Any]:
    """A project holding only the operator's database URL secret; keyword arguments replace entries."""
    state: dict[str, Any] = {
        "project": "demo-project",
        "project_number": "123456789012",
        "secrets": ["availability-cron-database-url"],
        "secret_value": "",
        "functions": [],
        "jobs": [],
        "jobs_listed_as": "path",
        "invokers": {},
        "fail": [],
    }
    state.update(changes)
    return state


def write_state(directory: Path, state: dict[str, Any]) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    for part in (*_SETS, "invokers"):
        (directory / part).mkdir(parents=True)
    if state["project"]:
        (directory / "project").write_text(state["project"] + "\n")
    (directory / "project_number").write_text(state["project_number"] + "\n")
    (directory / "secret_value").write_text(state["secret_value"])
    for part in _SETS:
        for name in state[part]:
            (directory / part / name).touch()
    for function, members in state["invokers"].items():
        (directory / "invokers" / function).write_text("".join(member + "\n" for member in members))
    (directory / "fail").write_text("".join(prefix + "\n" for prefix in state["fail"]))
    (directory / "jobs_listed_as").write_text(state.get("jobs_listed_as", "path"))


def read_state(directory: Path) -> dict[str, Any]:
    project = directory / "project"
    state: dict[str, Any] = {
        "project": project.read_text().strip() if project.exists() else None,
        "project_number": (directory / "project_number").read_text().strip(),
        "secret_value": (directory / "secret_value").read_text(),
        "invokers": {path.name: path.read_text().split() for path in (directory / "invokers").iterdir()},
        "fail": (directory / "fail").read_text().splitlines(),
        "jobs_listed_as": (directory / "jobs_listed_as").read_text(),
        # The --uri each job was last created or updated with ("" for a job preloaded by write_state).
        "job_uris": {path.name: path.read_text() for path in (directory / "jobs").iterdir()},
    }
    for part in _SETS:
        state[part] = sorted(path.name for path in (directory / part).iterdir())
    return state


def read_calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
