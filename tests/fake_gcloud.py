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

Monitoring (deploy.sh's step 7) lives in the state too, so that a second run can find what the first made:
log-based metrics by name (`logging metrics list` prints the names), alert policies and dashboards by a
numeric id with their display name (`list` prints `NAME<TAB>displayName<TAB>X`, as gcloud prints
`value(name,displayName,X)`: X is a policy's channels joined by commas, a dashboard's etag), email
notification channels by id with their address. create and update
store the definition file they were given (`--config-from-file`, `--policy-from-file`), and the call's log
line carries it as `definition`. A dashboard update whose definition carries an etag other than the stored
one is refused (ABORTED), as the API refuses a concurrent edit. The state's `metric_not_ready` is how many
policy create/update calls to refuse, as Cloud Monitoring does for a log-based metric created moments before.
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

next_id() {  # a new numeric resource id
	local id
	id=$(<"$state/next_id")
	printf '%s\n' $((id + 1)) >"$state/next_id"
	printf '%s' "$id"
}

display_name_in() {  # the first "displayName" of a definition file (the resource's own comes first)
	local line
	line=$(grep -m1 -o '"displayName": "[^"]*"' "$1")
	line=${line#'"displayName": "'}
	printf '%s' "${line%'"'}"
}

store_policy() {  # store_policy ID FILE: its display name, definition and channels (joined by commas)
	local channels
	display_name_in "$2" >"$state/policies/$1"
	cp "$2" "$state/policies/$1.json"
	channels=$(grep -m1 -o '"notificationChannels": \[[^]]*\]' "$2") || channels=""
	channels=${channels#*[}
	channels=${channels%]}
	channels=${channels//\"/}
	printf '%s' "${channels// /}" >"$state/policies/$1.channels"
}

metric_not_ready() {  # refuse this policy call while the state says the new metrics are not known yet
	local pending
	pending=$(<"$state/metric_not_ready")
	if ((pending > 0)); then
		printf '%s\n' $((pending - 1)) >"$state/metric_not_ready"
		printf '%s %s\n' 'ERROR: (gcloud.monitoring.policies) NOT_FOUND: Cannot find metric(s) that match type =' \
			'"logging.googleapis.com/user/x". If a metric was created recently, it could take up to 10 minutes.' >&2
		status=1
		return 0
	fi
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
	"logging metrics list")
		for metric in "$state"/metrics/*; do
			[[ -e $metric ]] && printf '%s\n' "${metric##*/}"
		done
		;;
	"logging metrics create "*)
		if [[ -e $state/metrics/$name ]]; then
			already_exists "metric $name"
		else
			cp "$(option --config-from-file)" "$state/metrics/$name"
		fi
		;;
	"logging metrics update "*)
		if [[ -e $state/metrics/$name ]]; then
			cp "$(option --config-from-file)" "$state/metrics/$name"
		else
			not_found "metric $name"
		fi
		;;
	"monitoring policies list")
		for policy in "$state"/policies/*; do
			[[ -e $policy && $policy != *.* ]] || continue
			channels=""
			[[ -e $policy.channels ]] && channels=$(<"$policy.channels")
			printf 'projects/%s/alertPolicies/%s\t%s\t%s\n' "$(option --project)" "${policy##*/}" "$(<"$policy")" \
				"$channels"
		done
		;;
	"monitoring policies create")
		if ! metric_not_ready; then
			store_policy "$(next_id)" "$(option --policy-from-file)"
		fi
		;;
	"monitoring policies update "*)
		id=${name##*/}
		if [[ ! -e $state/policies/$id ]]; then
			not_found "policy $name"
		elif ! metric_not_ready; then
			store_policy "$id" "$(option --policy-from-file)"
		fi
		;;
	"beta monitoring channels list")
		for channel in "$state"/channels/*; do
			[[ -e $channel ]] || continue
			printf 'projects/%s/notificationChannels/%s\temail\t%s\n' "$(option --project)" "${channel##*/}" \
				"$(<"$channel")"
		done
		;;
	"beta monitoring channels create")
		id=$(next_id)
		labels=$(option --channel-labels)
		printf '%s' "${labels#email_address=}" >"$state/channels/$id"
		printf 'projects/%s/notificationChannels/%s\n' "$(option --project)" "$id"
		;;
	"monitoring dashboards list")
		for dashboard in "$state"/dashboards/*; do
			[[ -e $dashboard && $dashboard != *.* ]] || continue
			printf 'projects/%s/dashboards/%s\t%s\t%s\n' "$(<"$state/project_number")" "${dashboard##*/}" \
				"$(<"$dashboard")" "$(<"$dashboard.etag")"
		done
		;;
	"monitoring dashboards create")
		id=$(next_id)
		file=$(option --config-from-file)
		display_name_in "$file" >"$state/dashboards/$id"
		printf 'etag-%s-1' "$id" >"$state/dashboards/$id.etag"
		cp "$file" "$state/dashboards/$id.json"
		;;
	"monitoring dashboards update "*)
		id=${name##*/}
		file=$(option --config-from-file)
		sent_etag=$(grep -m1 -o '"etag": "[^"]*"' "$file" | cut -d'"' -f4) || sent_etag=""
		if [[ ! -e $state/dashboards/$id ]]; then
			not_found "dashboard $name"
		elif [[ -n $sent_etag && $sent_etag != "$(<"$state/dashboards/$id.etag")" ]]; then
			printf 'ERROR: (gcloud.monitoring.dashboards.update) ABORTED: etag mismatch\n' >&2
			status=1
		else
			display_name_in "$file" >"$state/dashboards/$id"
			etag=$(<"$state/dashboards/$id.etag")
			printf 'etag-%s-%d' "$id" $((${etag##*-} + 1)) >"$state/dashboards/$id.etag"
			cp "$file" "$state/dashboards/$id.json"
		fi
		;;
	*) ;; # services enable, secrets add-iam-policy-binding, run services update: nothing to remember
	esac
fi

for definition_flag in --config-from-file --policy-from-file; do
	if definition=$(option "$definition_flag") && [[ -f $definition ]]; then
		# On one line (a JSON string holds no raw line break), so the log stays one call a line.
		extra+=", \"definition\": $(tr '\n' ' ' <"$definition")"
	fi
done
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

_SETS = ("secrets", "functions", "jobs", "metrics")
_MONITORING = ("policies", "dashboards", "channels")
FIRST_ID = 1000


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
        # Monitoring: metric names; {id: display name} of policies and dashboards; {id: address} of channels.
        "metrics": [],
        "policies": {},
        "dashboards": {},
        "channels": {},
        "policy_channels": {},  # {policy id: [channel names]}
        "metric_not_ready": 0,
    }
    state.update(changes)
    return state


def write_state(directory: Path, state: dict[str, Any]) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    for part in (*_SETS, *_MONITORING, "invokers"):
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
    for part in _MONITORING:
        for resource_id, text in state[part].items():
            (directory / part / resource_id).write_text(text)
    for policy_id, channels in state.get("policy_channels", {}).items():
        (directory / "policies" / f"{policy_id}.channels").write_text(",".join(channels))
    for dashboard_id in state["dashboards"]:
        (directory / "dashboards" / f"{dashboard_id}.etag").write_text(f"etag-{dashboard_id}-1")
    (directory / "next_id").write_text(f"{FIRST_ID}\n")
    (directory / "metric_not_ready").write_text(f"{state['metric_not_ready']}\n")


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
    for part in _MONITORING:
        state[part] = {path.name: path.read_text() for path in (directory / part).iterdir() if "." not in path.name}
    state["metric_not_ready"] = int((directory / "metric_not_ready").read_text())
    # What each create or update stored: {metric name: definition}, {policy or dashboard id: definition}.
    state["metric_definitions"] = {
        path.name: json.loads(path.read_text()) for path in (directory / "metrics").iterdir() if path.stat().st_size
    }
    state["policy_channels"] = {
        path.stem: [c for c in path.read_text().split(",") if c] for path in (directory / "policies").glob("*.channels")
    }
    state["policy_definitions"] = {
        path.stem: json.loads(path.read_text()) for path in (directory / "policies").glob("*.json")
    }
    state["dashboard_definitions"] = {
        path.stem: json.loads(path.read_text()) for path in (directory / "dashboards").glob("*.json")
    }
    return state


def read_calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
