#!/usr/bin/env bash
# Deploy availability-cron as a 2nd-gen Cloud Function and schedule it with Cloud Scheduler.
# Every step is idempotent: run it again to update what exists. `./deploy.sh --help` explains the flags.
set -euo pipefail

SCRIPT_NAME=${0##*/}
readonly SCRIPT_NAME
readonly BUDGET_VARIABLE=AVAILABILITY_CRON_TIME_BUDGET_MS
readonly DEFAULT_BUDGET_MS=55000
readonly SECRET_ACCESSOR_ROLE=roles/secretmanager.secretAccessor

usage() {
	cat <<'EOF'
Usage: ./deploy.sh [flags]

Deploys availability-cron (entry point availability_cron in main.py) as a 2nd-gen Cloud Function
and creates or updates the Cloud Scheduler jobs that call it (see "Scheduler jobs" below), removing the
jobs of an earlier layout. Every step is idempotent.

Flags (a flag wins over its environment variable):
  --project ID                    PROJECT_ID, else GOOGLE_CLOUD_PROJECT, else `gcloud config get-value project`
  --region REGION                 REGION; default us-central1 (also the scheduler job's location)
  --name NAME                     FUNCTION_NAME; default availability-cron
  --runtime RUNTIME               default python312
  --memory SIZE                   default 512Mi
  --cpu CPUS                      default 1
  --timeout SECONDS               function timeout; default 120. Must exceed the run budget by more than
                                  10 s; the scheduler's attempt deadline is this plus 60 s (at most 1800 s)
  --time-budget-ms MS             AVAILABILITY_CRON_TIME_BUDGET_MS; the function's run budget (default 55000,
                                  [10000, 600000]); when given it is also set on the function
  --schedule CRON                 default '* * * * *' (every job of the function runs on it)
  --shards N                      SHARDS; default 1, at most 64. Splits the workspaces into N stable partitions,
                                  each refreshed by its own job (?shard=I&shards=N) under its own lock.
  --no-direct-book                DIRECT_BOOK=0; no DIRECT_BOOK job (source=directBook), and the function's
                                  existing ones are deleted. --direct-book (DIRECT_BOOK=1, the default) keeps them.
  --max-instances N               the function's maximum instances; default the number of scheduler jobs (each
                                  run has an instance to itself: concurrency 1), so that every job's run of a
                                  tick starts at once. Raise it to leave room for calls by hand.
  --time-zone TZ                  default Etc/UTC
  --service-account EMAIL         runtime service account (default: PROJECT_NUMBER-compute@developer.gserviceaccount.com)
  --scheduler-service-account EMAIL
                                  OIDC mode: the identity Cloud Scheduler signs its token as (default: the
                                  runtime service account)
  --secret-name NAME              Secret Manager secret holding CRON_SECRET; default availability-cron-secret.
                                  Created with a random value when absent.
  --database-url-secret NAME      secret holding DATABASE_URL; default availability-cron-database-url.
                                  Must exist: create it yourself (the script prints the command when it is missing).
  --direct-url-secret NAME        optional secret holding DIRECT_URL (wins over DATABASE_URL); must exist
  --cloudsql-instance CONN        optional PROJECT:REGION:INSTANCE; attaches the Cloud SQL socket. DATABASE_URL must
                                  then use the socket form postgresql://USER:PASSWORD@/DB?host=/cloudsql/CONN
                                  and the runtime service account needs roles/cloudsql.client.
  --env KEY=VALUE                 plain environment variable for the function, repeatable (the last one of a key
                                  wins), e.g. --env AVAILABILITY_CRON_CONCURRENCY=32. The function gets exactly
                                  these: without any --env (or --time-budget-ms) its plain variables are cleared.
  --auth bearer|oidc              default bearer.
                                    bearer: public URL (--allow-unauthenticated); the job sends
                                            Authorization: Bearer <CRON_SECRET>.
                                    oidc:   private URL (--no-allow-unauthenticated, allUsers removed if present);
                                            the scheduler service account gets the invoker role, the job sends an
                                            OIDC token for the function URL plus X-Cron-Secret: <CRON_SECRET>.
  --no-monitoring                 skip the monitoring step (see "Monitoring" below); --monitoring (the default) runs it
  --alert-email ADDRESS           repeatable: the alert policies notify this address (an email notification channel,
                                  created once and reused by address; needs gcloud's beta component)
  --notification-channel ID       repeatable: an existing notification channel (its id or its full resource name
                                  projects/P/notificationChannels/ID) the alert policies notify
  --monitoring-dir DIR            also write the rendered monitoring definitions into DIR (with --dry-run: to read
                                  them before a real run)
  --dry-run                       print the plan and change nothing (see below)
  -h, --help                      this help

Scheduler jobs: one per source and shard, all on --schedule, named after the function NAME:
  --shards 1 (default)   NAME-tick                             POST URL
                         NAME-tick-direct-book                 POST URL?source=directBook
  --shards N (N > 1)     NAME-tick-shard-I-of-N                POST URL?shard=I&shards=N          (I = 0 .. N-1)
                         NAME-tick-direct-book-shard-I-of-N    POST URL?source=directBook&shard=I&shards=N
Each job has the same auth mode, headers and attempt deadline, and no retries (the next tick is the retry).
After creating or updating the current jobs, the script lists the jobs in --region and deletes (--quiet) those
of this function's family (exactly the four name forms above, for any I and N) that the current layout does
not have: going from 4 shards to 2 deletes the -of-4 jobs, from 4 to 1 every shard job, from 1 to 4 the plain
NAME-tick, and --no-direct-book every direct-book job. A job of any other name is never touched. Jobs left in
another region by an earlier --region are not looked at.

Output: every gcloud command is printed on stdout, one per line prefixed with "+ ", before it runs, with
secret values shown as ***. Everything else (progress, warnings, errors) goes to stderr.

--dry-run runs only read-only look-ups (config get-value, projects describe, secrets describe, functions
describe, scheduler jobs list, run services get-iam-policy) so the plan shows create or update as it would
happen, prints every command a real run would issue, and never reads a secret's value. It exits 1 when a real
run would stop on a problem it found (such as a missing database URL secret), else 0.

Secrets: the generated CRON_SECRET goes to gcloud on stdin and is never printed. The scheduler jobs need the
value in a header: it is read with `gcloud secrets versions access` into memory and handed to gcloud in a
private temporary --flags-file (never on a command line), with gcloud's file logging off for that command.
After rotating the secret, run this script again so the jobs send the new value.

Monitoring (step 7, skipped with --no-monitoring): the definitions in monitoring/ rendered with the project,
region, function NAME and job names, each created or updated in place, matched by exact name (never duplicated):
  log-based metrics   NAME-runs, NAME-run-failures, NAME-duration-ms, NAME-oldest-success-age, NAME-erroring-caches,
                      NAME-failed, NAME-not-started, NAME-refreshed, NAME-provider-cooldowns, NAME-scheduler-failures
  alert policies      "NAME: ..." (monitoring/policies/*.json), each with a documentation text: no finished run for
                      5 minutes, a run failed, runs over budget, oldest refresh over 15 minutes, a provider in
                      cool-down for 10 minutes, Cloud Scheduler calls failing
  dashboard           "NAME" (monitoring/dashboard.json)
Without --alert-email or --notification-channel, existing policies keep the channels they have and new ones notify
nobody (the script says how to add a channel); with either, every policy notifies exactly the channels given.
A policy naming a metric created moments before is refused until Cloud Monitoring knows the metric (up to 10
minutes): the script retries it every 30 s, 21 times (DEPLOY_MONITORING_RETRY_SECONDS, DEPLOY_MONITORING_ATTEMPTS).

Exit status: 0 done, 1 a step or check failed, 2 bad usage.
EOF
}

# ---------------------------------------------------------------------------------------------- output

# Commands are echoed on the original stdout even when a caller captures or discards a look-up's output.
exec 3>&1

say() { printf '%s\n' "$*" >&2; }
step() { printf '\n==> %s\n' "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
	exit 1
}
usage_error() {
	printf '%s: error: %s\nRun %s --help for usage.\n' "$SCRIPT_NAME" "$*" "$SCRIPT_NAME" >&2
	exit 2
}

# The secret value, once read, so any echo of a command can mask it (it never appears in one by design).
cron_value=""

# Prints a command as a shell would read it back: plain words bare, anything else in single quotes.
show_cmd() {
	local line="+" arg safe='^[A-Za-z0-9_./:=,@%+-]+$'
	for arg in "$@"; do
		if [[ -n $cron_value ]]; then
			arg=${arg//"$cron_value"/***}
		fi
		if [[ $arg =~ $safe ]]; then
			line+=" $arg"
		else
			line+=" '${arg//\'/\'\\\'\'}'"
		fi
	done
	printf '%s\n' "$line" >&3
}

# A command that changes something: shown, then run unless this is a dry run.
run() {
	show_cmd "$@"
	if ((dry_run)); then
		return 0
	fi
	"$@"
}

# A read-only look-up: shown and run in every mode.
lookup() {
	show_cmd "$@"
	"$@"
}

# ---------------------------------------------------------------------------------------------- options

project=${PROJECT_ID:-${GOOGLE_CLOUD_PROJECT:-}}
region=${REGION:-us-central1}
name=${FUNCTION_NAME:-availability-cron}
runtime=python312
memory=512Mi
cpu=1
timeout=120
budget_flag=""
schedule='* * * * *'
time_zone=Etc/UTC
service_account=""
scheduler_service_account=""
secret_name=availability-cron-secret
database_url_secret=availability-cron-database-url
direct_url_secret=""
cloudsql_instance=""
auth=bearer
dry_run=0
monitoring=1
monitoring_dir=""
alert_emails=()
notification_channels=()
shards=${SHARDS:-1}
shards_source=SHARDS
direct_book_setting=${DIRECT_BOOK:-1}
direct_book_source=DIRECT_BOOK
max_instances=""
env_keys=()
env_values=()
problems=0

set_env() {
	local key=$1 value=$2 i
	for ((i = 0; i < ${#env_keys[@]}; i++)); do
		if [[ ${env_keys[i]} == "$key" ]]; then
			env_values[i]=$value
			return 0
		fi
	done
	env_keys+=("$key")
	env_values+=("$value")
}

get_env() {
	local key=$1 i
	for ((i = 0; i < ${#env_keys[@]}; i++)); do
		if [[ ${env_keys[i]} == "$key" ]]; then
			printf '%s' "${env_values[i]}"
			return 0
		fi
	done
	return 1
}

add_env_flag() {
	local setting=$1 key
	if [[ $setting != *=* ]]; then
		usage_error "--env needs KEY=VALUE, got '$setting'"
	fi
	key=${setting%%=*}
	if [[ ! $key =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
		usage_error "--env: invalid variable name '$key'"
	fi
	case $key in
	CRON_SECRET | DATABASE_URL | DIRECT_URL)
		usage_error "--env: $key is a secret; use --secret-name, --database-url-secret or --direct-url-secret"
		;;
	PORT | K_SERVICE | K_REVISION | K_CONFIGURATION | X_GOOGLE_*)
		usage_error "--env: $key is reserved by Cloud Functions"
		;;
	esac
	set_env "$key" "${setting#*=}"
}

while (($#)); do
	arg=$1
	case $arg in
	-h | --help)
		usage
		exit 0
		;;
	--dry-run)
		dry_run=1
		shift
		continue
		;;
	--monitoring | --no-monitoring)
		monitoring=1
		if [[ $arg == --no-monitoring ]]; then
			monitoring=0
		fi
		shift
		continue
		;;
	--direct-book | --no-direct-book)
		direct_book_setting=1
		if [[ $arg == --no-direct-book ]]; then
			direct_book_setting=0
		fi
		direct_book_source=$arg
		shift
		continue
		;;
	--*) ;;
	*) usage_error "unexpected argument '$arg'" ;;
	esac
	flag=${arg%%=*}
	if [[ $arg == *=* ]]; then
		value=${arg#*=}
		consumed=1
	elif (($# >= 2)) && [[ $2 != --* ]]; then
		value=$2
		consumed=2
	else
		value=""
		consumed=0
	fi
	case $flag in
	--project) project=$value ;;
	--region) region=$value ;;
	--name) name=$value ;;
	--runtime) runtime=$value ;;
	--memory) memory=$value ;;
	--cpu) cpu=$value ;;
	--timeout) timeout=$value ;;
	--time-budget-ms) budget_flag=$value ;;
	--schedule) schedule=$value ;;
	--time-zone) time_zone=$value ;;
	--service-account) service_account=$value ;;
	--scheduler-service-account) scheduler_service_account=$value ;;
	--secret-name) secret_name=$value ;;
	--database-url-secret) database_url_secret=$value ;;
	--direct-url-secret) direct_url_secret=$value ;;
	--cloudsql-instance) cloudsql_instance=$value ;;
	--env) ;;
	--auth) auth=$value ;;
	--shards)
		shards=$value
		shards_source=--shards
		;;
	--max-instances) max_instances=$value ;;
	--alert-email) alert_emails+=("$value") ;;
	--notification-channel) notification_channels+=("$value") ;;
	--monitoring-dir) monitoring_dir=$value ;;
	--dry-run | --help | --direct-book | --no-direct-book | --monitoring | --no-monitoring)
		usage_error "$flag takes no value"
		;;
	*) usage_error "unknown flag '$flag'" ;;
	esac
	if ((consumed == 0)); then
		usage_error "$flag needs a value"
	fi
	if [[ $flag == --env ]]; then
		add_env_flag "$value"
	fi
	shift "$consumed"
done

# ---------------------------------------------------------------------------------------------- checks

check() {
	local what=$1 value=$2 pattern=$3 hint=$4
	if [[ ! $value =~ $pattern ]]; then
		usage_error "invalid $what '$value' ($hint)"
	fi
}

case $auth in
bearer | oidc) ;;
*) usage_error "invalid --auth '$auth' (expected bearer or oidc)" ;;
esac
check --region "$region" '^[a-z]+-[a-z]+[0-9]+$' 'e.g. us-central1'
check --name "$name" '^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$' 'lowercase letters, digits and hyphens, at most 49'
check --runtime "$runtime" '^python3[0-9]+$' 'e.g. python312'
check --memory "$memory" '^[0-9]+(k|M|G|Ki|Mi|Gi|KB|MB|GB)?$' 'e.g. 512Mi or 1Gi'
check --cpu "$cpu" '^[0-9]+([.][0-9]+)?$' 'e.g. 1 or 0.5'
timeout=${timeout%s}
check --timeout "$timeout" '^[1-9][0-9]{0,3}$' 'whole seconds'
if ((timeout > 1740)); then
	usage_error "--timeout ${timeout}s is too long: the scheduler's attempt deadline (timeout + 60 s) is at most 1800 s"
fi
if [[ -z ${schedule//[[:space:]]/} ]]; then
	usage_error "--schedule must not be empty"
fi
check --time-zone "$time_zone" '^[A-Za-z][A-Za-z0-9_+/-]*$' 'a tz database name such as Etc/UTC'
secret_pattern='^[A-Za-z0-9_-]{1,255}$'
check --secret-name "$secret_name" "$secret_pattern" 'a Secret Manager secret id'
check --database-url-secret "$database_url_secret" "$secret_pattern" 'a Secret Manager secret id'
if [[ -n $direct_url_secret ]]; then
	check --direct-url-secret "$direct_url_secret" "$secret_pattern" 'a Secret Manager secret id'
fi
email_pattern='^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+$'
if [[ -n $service_account ]]; then
	check --service-account "$service_account" "$email_pattern" 'a service account email'
fi
if [[ -n $scheduler_service_account ]]; then
	check --scheduler-service-account "$scheduler_service_account" "$email_pattern" 'a service account email'
	if [[ $auth == bearer ]]; then
		warn "--scheduler-service-account is only used with --auth oidc; ignoring it"
	fi
fi
if [[ -n $cloudsql_instance ]]; then
	check --cloudsql-instance "$cloudsql_instance" '^([a-z0-9.-]+:)?[a-z][-a-z0-9]*:[a-z]+-[a-z]+[0-9]+:[a-z0-9][-a-z0-9]*$' \
		'PROJECT:REGION:INSTANCE'
fi
if [[ ! $shards =~ ^[1-9][0-9]?$ ]] || ((shards > 64)); then
	usage_error "invalid $shards_source '$shards' (the number of shards: a whole number from 1 to 64)"
fi
case $direct_book_setting in
1 | true | True | TRUE | yes | on) direct_book=1 ;;
0 | false | False | FALSE | no | off) direct_book=0 ;;
*) usage_error "invalid $direct_book_source '$direct_book_setting' (1 or 0)" ;;
esac
# One job per source and shard.
job_count=$((shards * (1 + direct_book)))
if [[ -n $max_instances ]]; then
	check --max-instances "$max_instances" '^[1-9][0-9]{0,3}$' 'a whole number from 1 to 9999'
	if ((max_instances < job_count)); then
		warn "--max-instances $max_instances is below the $job_count scheduler jobs: each run needs an instance" \
			"(concurrency 1), so some jobs' runs will be refused (429) when a tick starts them together"
	fi
else
	max_instances=$job_count
fi
if [[ -n $project ]]; then
	check --project "$project" '^([a-z0-9.-]+:)?[a-z][-a-z0-9]{4,28}[a-z0-9]$' 'a project id'
fi
for address in ${alert_emails[@]+"${alert_emails[@]}"}; do
	check --alert-email "$address" "$email_pattern" 'an email address'
done
for channel in ${notification_channels[@]+"${notification_channels[@]}"}; do
	check --notification-channel "$channel" '^(projects/[a-z0-9.:-]+/notificationChannels/)?[0-9]+$' \
		'a channel id, or projects/P/notificationChannels/ID'
done
check DEPLOY_MONITORING_RETRY_SECONDS "${DEPLOY_MONITORING_RETRY_SECONDS:-30}" '^[0-9]{1,4}$' 'whole seconds'
check DEPLOY_MONITORING_ATTEMPTS "${DEPLOY_MONITORING_ATTEMPTS:-21}" '^[1-9][0-9]{0,3}$' 'a whole number from 1'
if ((!monitoring)) && { ((${#alert_emails[@]} + ${#notification_channels[@]})) || [[ -n $monitoring_dir ]]; }; then
	usage_error "--alert-email, --notification-channel and --monitoring-dir need the monitoring step (drop --no-monitoring)"
fi

# The run budget: --time-budget-ms, else an --env setting of it, else the environment, else the function's default.
budget_ms=""
if [[ -n $budget_flag ]]; then
	budget_ms=$budget_flag
elif budget_from_env_flag=$(get_env "$BUDGET_VARIABLE"); then
	budget_ms=$budget_from_env_flag
elif [[ -n ${AVAILABILITY_CRON_TIME_BUDGET_MS:-} ]]; then
	budget_ms=$AVAILABILITY_CRON_TIME_BUDGET_MS
fi
if [[ -n $budget_ms ]]; then
	check "$BUDGET_VARIABLE" "$budget_ms" '^[1-9][0-9]{4,5}$' 'milliseconds in [10000, 600000]'
	if ((budget_ms > 600000)); then
		usage_error "invalid $BUDGET_VARIABLE '$budget_ms' (milliseconds in [10000, 600000])"
	fi
	set_env "$BUDGET_VARIABLE" "$budget_ms"
else
	budget_ms=$DEFAULT_BUDGET_MS
fi
if ((timeout * 1000 <= budget_ms + 10000)); then
	usage_error "--timeout ${timeout}s must exceed the run budget (${budget_ms} ms) by more than 10 s;" \
		"use at least $(((budget_ms + 10000) / 1000 + 1))s"
fi
attempt_deadline=$((timeout + 60))

if ! command -v gcloud >/dev/null 2>&1; then
	die "gcloud not found on PATH (install the Google Cloud CLI: https://cloud.google.com/sdk/docs/install)"
fi

# The function's source is this script's directory, whatever the caller's working directory.
cd "$(dirname "${BASH_SOURCE[0]}")"
for needed in main.py requirements.txt lib .gcloudignore monitoring/monitoring.sh; do
	if [[ ! -e $needed ]]; then
		die "$needed not found next to $SCRIPT_NAME: run the script from the availability-cron project"
	fi
done

# shellcheck source=monitoring/monitoring.sh
source monitoring/monitoring.sh

# Never wait for an answer to a prompt.
export CLOUDSDK_CORE_DISABLE_PROMPTS=1

if ((dry_run)); then
	say "Dry run: only read-only look-ups are run; every other command is printed, not run."
fi

if [[ -z $project ]]; then
	project=$(lookup gcloud config get-value project 2>/dev/null) || project=""
	if [[ $project == "(unset)" ]]; then
		project=""
	fi
	if [[ -z $project ]]; then
		die "no Google Cloud project: pass --project, set PROJECT_ID or GOOGLE_CLOUD_PROJECT, or run 'gcloud config set project PROJECT'"
	fi
	check "project (from gcloud config)" "$project" '^([a-z0-9.-]+:)?[a-z][-a-z0-9]{4,28}[a-z0-9]$' 'a project id'
fi
job="$name-tick"

if ((direct_book)); then
	sources_text="default and directBook"
else
	sources_text="default only"
fi
say "Project $project, region $region, function $name, auth $auth, timeout ${timeout}s, budget ${budget_ms} ms," \
	"$shards shard(s), sources $sources_text: $job_count scheduler job(s)."

# ---------------------------------------------------------------------------------------------- helpers

problem() {
	if ((dry_run)); then
		printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
		say "(dry run: continuing to show the plan; a real run stops here)"
		problems=$((problems + 1))
	else
		die "$@"
	fi
}

secret_exists() {
	lookup gcloud secrets describe "$1" --project "$project" >/dev/null 2>&1
}

generate_secret() {
	if command -v openssl >/dev/null 2>&1; then
		openssl rand -hex 32
	elif command -v python3 >/dev/null 2>&1; then
		python3 -c 'import secrets; print(secrets.token_hex(32))'
	else
		return 1
	fi
}

json_string() {
	local text=$1
	text=${text//\\/\\\\}
	text=${text//\"/\\\"}
	printf '"%s"' "$text"
}

# The scheduler job's headers as a --flags-file document; $2 is the secret (or *** for display).
headers_document() {
	local header_flag=$1 secret=$2 header value
	if [[ $auth == bearer ]]; then
		header=Authorization
		value="Bearer $secret"
	else
		header=X-Cron-Secret
		value=$secret
	fi
	printf '{"%s": {"Content-Type": "application/json", %s: %s}}\n' \
		"$header_flag" "$(json_string "$header")" "$(json_string "$value")"
}

work_dir=""
monitoring_work_dir=""
cleanup() {
	if [[ -n $work_dir ]]; then
		rm -rf "$work_dir"
	fi
	if [[ -n $monitoring_work_dir ]]; then
		rm -rf "$monitoring_work_dir"
	fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------- 1. APIs

steps=$((6 + monitoring))

step "1/$steps Enabling the APIs"
apis=(cloudfunctions.googleapis.com run.googleapis.com cloudbuild.googleapis.com artifactregistry.googleapis.com
	cloudscheduler.googleapis.com secretmanager.googleapis.com)
if [[ -n $cloudsql_instance ]]; then
	apis+=(sqladmin.googleapis.com)
fi
if ((monitoring)); then
	apis+=(logging.googleapis.com monitoring.googleapis.com)
fi
run gcloud services enable "${apis[@]}" --project "$project"

# ---------------------------------------------------------------------------------------------- 2. secrets

step "2/$steps Secrets"
runtime_sa=$service_account
if [[ -z $runtime_sa ]]; then
	project_number=$(lookup gcloud projects describe "$project" --format 'value(projectNumber)') || project_number=""
	if [[ ! $project_number =~ ^[0-9]+$ ]]; then
		if ((dry_run)); then
			warn "could not read the project number; showing PROJECT_NUMBER"
			project_number=PROJECT_NUMBER
		else
			die "could not read the project number of $project (needed for the default service account);" \
				"pass --service-account"
		fi
	fi
	runtime_sa="$project_number-compute@developer.gserviceaccount.com"
fi
scheduler_sa=${scheduler_service_account:-$runtime_sa}

missing_secret_help() {
	local secret=$1 variable=$2 example=$3
	printf 'the %s secret %s does not exist in project %s (or you cannot read it). Create it first, e.g.\n' \
		"$variable" "$secret" "$project"
	# shellcheck disable=SC2016  # the command is shown for the operator to type; nothing expands here
	printf '  read -rs URL && printf %%s "$URL" | gcloud secrets create %s --project %s --replication-policy=automatic --data-file=-\n' \
		"$secret" "$project"
	printf '  (URL as %s; read -rs keeps it out of your shell history and screen)' "$example"
}
if [[ -n $cloudsql_instance ]]; then
	url_example="postgresql://USER:PASSWORD@/DB?host=/cloudsql/$cloudsql_instance"
else
	url_example="postgresql://USER:PASSWORD@HOST:5432/DB?sslmode=require"
fi
if secret_exists "$database_url_secret"; then
	say "Secret $database_url_secret (DATABASE_URL) exists."
else
	problem "$(missing_secret_help "$database_url_secret" DATABASE_URL "$url_example")"
fi
if [[ -n $direct_url_secret ]]; then
	if secret_exists "$direct_url_secret"; then
		say "Secret $direct_url_secret (DIRECT_URL) exists."
	else
		problem "$(missing_secret_help "$direct_url_secret" DIRECT_URL "$url_example")"
	fi
fi

if secret_exists "$secret_name"; then
	say "Secret $secret_name exists; keeping its value."
else
	say "Secret $secret_name does not exist: creating it with a random value (sent on stdin, never shown)."
	show_cmd gcloud secrets create "$secret_name" --replication-policy=automatic --data-file=- --project "$project"
	if ((!dry_run)); then
		new_secret=$(generate_secret | tr -d '\n') || die "could not generate a random secret (needs openssl or python3)"
		if ((${#new_secret} < 32)); then
			die "could not generate a random secret (needs openssl or python3)"
		fi
		printf '%s' "$new_secret" |
			gcloud secrets create "$secret_name" --replication-policy=automatic --data-file=- --project "$project"
		new_secret=""
	fi
fi

# The runtime service account reads the secrets when an instance starts.
runtime_secrets=("$secret_name" "$database_url_secret")
if [[ -n $direct_url_secret ]]; then
	runtime_secrets+=("$direct_url_secret")
fi
for secret in "${runtime_secrets[@]}"; do
	run gcloud secrets add-iam-policy-binding "$secret" --project "$project" \
		--member "serviceAccount:$runtime_sa" --role "$SECRET_ACCESSOR_ROLE" --condition None >/dev/null
done

# The scheduler job sends the secret, so read it now (in memory only) rather than fail after the deploy.
show_cmd gcloud secrets versions access latest --secret "$secret_name" --project "$project"
if ((!dry_run)); then
	cron_value=$(gcloud secrets versions access latest --secret "$secret_name" --project "$project") ||
		die "could not read the latest version of secret $secret_name"
	# The function strips surrounding whitespace from CRON_SECRET; send what it compares against.
	cron_value=${cron_value#"${cron_value%%[![:space:]]*}"}
	cron_value=${cron_value%"${cron_value##*[![:space:]]}"}
	if [[ -z $cron_value ]]; then
		die "secret $secret_name is empty: add a version with a value (gcloud secrets versions add $secret_name --data-file=-)"
	fi
	if [[ $cron_value == *[[:cntrl:]]* ]]; then
		cron_value=""
		die "secret $secret_name contains control characters (such as a line break) and cannot be sent in a header"
	fi
	say "Read the value of $secret_name (${#cron_value} characters, not shown)."
fi

# ---------------------------------------------------------------------------------------------- 3. deploy

step "3/$steps Deploying the function (this takes a few minutes)"
secrets_spec="CRON_SECRET=$secret_name:latest,DATABASE_URL=$database_url_secret:latest"
if [[ -n $direct_url_secret ]]; then
	secrets_spec+=",DIRECT_URL=$direct_url_secret:latest"
fi
deploy=(gcloud functions deploy "$name" --gen2 --project "$project" --region "$region" --runtime "$runtime"
	--source . --entry-point availability_cron --trigger-http --memory "$memory" --cpu "$cpu"
	--timeout "${timeout}s" --max-instances "$max_instances" --concurrency 1 --set-secrets "$secrets_spec")
if ((${#env_keys[@]})); then
	# gcloud's ^D^ prefix makes D the separator, so values may hold commas; D is one no setting contains.
	delimiter=""
	for candidate in '|' '@' ';' '~' '#' '!' '%'; do
		clash=0
		for ((i = 0; i < ${#env_keys[@]}; i++)); do
			if [[ ${env_values[i]} == *"$candidate"* ]]; then
				clash=1
			fi
		done
		if ((!clash)); then
			delimiter=$candidate
			break
		fi
	done
	if [[ -z $delimiter ]]; then
		usage_error "--env values use every separator gcloud could split them on (| @ ; ~ # ! %)"
	fi
	env_spec="^$delimiter^"
	for ((i = 0; i < ${#env_keys[@]}; i++)); do
		if ((i)); then
			env_spec+=$delimiter
		fi
		env_spec+="${env_keys[i]}=${env_values[i]}"
	done
	deploy+=(--set-env-vars "$env_spec")
else
	deploy+=(--clear-env-vars)
fi
if [[ -n $service_account ]]; then
	deploy+=(--service-account "$service_account")
fi
if [[ $auth == bearer ]]; then
	deploy+=(--allow-unauthenticated)
else
	deploy+=(--no-allow-unauthenticated)
fi
run "${deploy[@]}"

if [[ -n $cloudsql_instance ]]; then
	# 2nd-gen functions run on Cloud Run: the Cloud SQL socket is a setting of the service.
	run gcloud run services update "$name" --region "$region" --project "$project" \
		--add-cloudsql-instances "$cloudsql_instance"
	say "Cloud SQL: DATABASE_URL must use the socket form postgresql://USER:PASSWORD@/DB?host=/cloudsql/$cloudsql_instance"
	say "and $runtime_sa needs roles/cloudsql.client on the instance's project."
fi

# ---------------------------------------------------------------------------------------------- 4. invoker

step "4/$steps Who may invoke the function"
if [[ $auth == oidc ]]; then
	# A function that was public (bearer mode) stays public until allUsers is removed.
	if invokers=$(lookup gcloud run services get-iam-policy "$name" --region "$region" --project "$project" \
		--flatten 'bindings[].members' --filter 'bindings.role:roles/run.invoker' \
		--format 'value(bindings.members)' 2>/dev/null); then
		if grep -qx 'allUsers' <<<"$invokers"; then
			run gcloud functions remove-invoker-policy-binding "$name" --gen2 --region "$region" \
				--project "$project" --member allUsers
		fi
	elif ((!dry_run)); then
		warn "could not read the invoker policy of $name; make sure allUsers is not an invoker"
	fi
	run gcloud functions add-invoker-policy-binding "$name" --gen2 --region "$region" --project "$project" \
		--member "serviceAccount:$scheduler_sa"
else
	say "Bearer mode: the URL is public; the function answers 401 without the secret."
fi

# ---------------------------------------------------------------------------------------------- 5. URL

step "5/$steps The function URL"
url=$(lookup gcloud functions describe "$name" --gen2 --region "$region" --project "$project" \
	--format 'value(serviceConfig.uri)' 2>/dev/null) || url=""
if [[ -z $url ]]; then
	if ((dry_run)); then
		url="https://FUNCTION_URL"
		say "(dry run: the function does not exist yet; showing $url)"
	else
		die "could not read the URL of function $name"
	fi
fi
say "URL: $url"

# ---------------------------------------------------------------------------------------------- 6. scheduler

step "6/$steps Cloud Scheduler jobs"

# The jobs of the current layout: names and URIs, in the order they are created or updated.
job_name() {
	local source=$1 shard=$2 job_id=$job
	if [[ $source == directBook ]]; then
		job_id+="-direct-book"
	fi
	if ((shards > 1)); then
		job_id+="-shard-$shard-of-$shards"
	fi
	printf '%s' "$job_id"
}
job_uri() {
	local source=$1 shard=$2 query=""
	if [[ $source == directBook ]]; then
		query="source=directBook"
	fi
	if ((shards > 1)); then
		query+="${query:+&}shard=$shard&shards=$shards"
	fi
	if [[ -z $query ]]; then
		printf '%s' "$url"
	elif [[ $url == *"?"* ]]; then
		printf '%s&%s' "$url" "$query"
	else
		printf '%s?%s' "$url" "$query"
	fi
}
sources=(default)
if ((direct_book)); then
	sources+=(directBook)
fi
wanted_names=()
wanted_uris=()
for source in "${sources[@]}"; do
	for ((shard = 0; shard < shards; shard++)); do
		wanted_names+=("$(job_name "$source" "$shard")")
		wanted_uris+=("$(job_uri "$source" "$shard")")
	done
done

# This function's family: exactly NAME-tick[-direct-book][-shard-I-of-N]. Anything else (another function's jobs,
# even with a similar prefix, or a job made by hand) is not ours and is never updated or deleted.
in_family() {
	local candidate=$1 suffix
	[[ $candidate == "$job"* ]] || return 1
	suffix=${candidate#"$job"}
	[[ $suffix =~ ^(-direct-book)?(-shard-(0|[1-9][0-9]*)-of-[1-9][0-9]*)?$ ]]
}
contains() {
	local needle=$1 item
	shift
	for item in "$@"; do
		if [[ $item == "$needle" ]]; then
			return 0
		fi
	done
	return 1
}

# One listing tells which jobs exist (create or update: they take different header flags) and which are obsolete.
existing=()
if listing=$(lookup gcloud scheduler jobs list --location "$region" --project "$project" --format 'value(name)'); then
	while IFS= read -r listed; do
		listed=${listed//[[:space:]]/}
		# gcloud prints the resource name, projects/P/locations/R/jobs/NAME, or (older versions) NAME alone.
		listed=${listed##*/}
		if [[ -n $listed ]] && in_family "$listed"; then
			existing+=("$listed")
		fi
	done <<<"$listing"
elif ((dry_run)); then
	warn "could not list the Cloud Scheduler jobs in $region (is the API enabled yet?); showing every job as new"
else
	die "could not list the Cloud Scheduler jobs in $region of $project"
fi

if ((!dry_run)); then
	work_dir=$(mktemp -d "${TMPDIR:-/tmp}/availability-cron-deploy.XXXXXX")
	chmod 700 "$work_dir"
	(
		umask 077
		headers_document --headers "$cron_value" >"$work_dir/create-headers.json"
		headers_document --update-headers "$cron_value" >"$work_dir/update-headers.json"
	)
fi

for ((i = 0; i < ${#wanted_names[@]}; i++)); do
	job_id=${wanted_names[i]}
	common=(--location "$region" --project "$project" --schedule "$schedule" --time-zone "$time_zone"
		--uri "${wanted_uris[i]}" --http-method POST --attempt-deadline "${attempt_deadline}s"
		--max-retry-attempts 0 --message-body '{}')
	if contains "$job_id" ${existing[@]+"${existing[@]}"}; then
		header_flag=--update-headers
		flags_file=$work_dir/update-headers.json
		scheduler=(gcloud scheduler jobs update http "$job_id" "${common[@]}")
		# The other mode's header and token, in case the job was created in that mode.
		if [[ $auth == bearer ]]; then
			scheduler+=(--remove-headers X-Cron-Secret --clear-auth-token)
		else
			scheduler+=(--remove-headers Authorization)
		fi
	else
		header_flag=--headers
		flags_file=$work_dir/create-headers.json
		scheduler=(gcloud scheduler jobs create http "$job_id" "${common[@]}")
	fi
	if [[ $auth == oidc ]]; then
		# The audience is the function URL itself, whatever query string the job adds.
		scheduler+=(--oidc-service-account-email "$scheduler_sa" --oidc-token-audience "$url")
	fi
	# The job resource gcloud prints would include the headers.
	scheduler+=(--format none)
	if ((dry_run)); then
		show_cmd "${scheduler[@]}" --flags-file '<private temporary file>'
	else
		show_cmd "${scheduler[@]}" --flags-file "$flags_file"
	fi
	printf '  flags file: %s\n' "$(headers_document "$header_flag" '***')" >&3
	if ((!dry_run)); then
		CLOUDSDK_CORE_DISABLE_FILE_LOGGING=true "${scheduler[@]}" --flags-file "$flags_file"
	fi
done
if [[ -n $work_dir ]]; then
	rm -rf "$work_dir"
	work_dir=""
fi

# Only once the current jobs are in place: a tick with both layouts refreshes some workspaces twice (harmless),
# one with neither would refresh none.
for job_id in ${existing[@]+"${existing[@]}"}; do
	if ! contains "$job_id" "${wanted_names[@]}"; then
		say "Deleting $job_id: not part of the current layout ($shards shard(s), sources $sources_text)."
		run gcloud scheduler jobs delete "$job_id" --location "$region" --project "$project" --quiet
	fi
done
cron_value=""

# ---------------------------------------------------------------------------------------------- 7. monitoring

if ((monitoring)); then
	step "7/7 Monitoring: log-based metrics, alert policies, dashboard"
	deploy_monitoring
fi

if ((dry_run)); then
	if ((problems)); then
		die "dry run: $problems problem(s) above would stop a real deploy"
	fi
	say ""
	say "Dry run complete: nothing was changed."
	exit 0
fi

say ""
say "Deployed $name ($url); ${#wanted_names[@]} job(s) call it on '$schedule' ($time_zone):"
for job_id in "${wanted_names[@]}"; do
	say "  $job_id"
done
say "Run it now:  gcloud scheduler jobs run ${wanted_names[0]} --location $region --project $project"
say "Logs:        gcloud functions logs read $name --gen2 --region $region --project $project"
if ((monitoring)); then
	say "Dashboard:   https://console.cloud.google.com/monitoring/dashboards?project=$project (\"$name\")"
fi
