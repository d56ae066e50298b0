# shellcheck shell=bash disable=SC2154,SC2034
# (SC2154, SC2034: the globals are deploy.sh's, set before and read after this file is sourced.)
# The monitoring step of deploy.sh (sourced by it, never run alone): renders the definitions in this folder
# with the project, region, function and job names, then creates or updates, matched by exact name:
#   - the log-based metrics    metrics/NAME.json    -> logging metric FUNCTION-NAME
#   - the notification channels of --alert-email    -> email channels, reused when one has the same address
#   - the alert policies       policies/*.json      -> matched by their displayName ("FUNCTION: ...")
#   - the dashboard            dashboard.json       -> matched by its displayName (FUNCTION)
# It uses deploy.sh's globals (project, region, name, budget_ms, dry_run, alert_emails, notification_channels,
# monitoring_dir) and helpers (run, lookup, show_cmd, say, warn, die, step).

readonly MONITORING_TEMPLATES=monitoring
# A policy that names a log-based metric created a moment ago is refused until Cloud Monitoring knows the
# metric ("Cannot find metric(s) ... could take up to 10 minutes"): retry that refusal, and only that one.
readonly METRIC_NOT_READY_PATTERN='Cannot find metric|metric referenced by the provided filter is unknown'
monitoring_retry_seconds=${DEPLOY_MONITORING_RETRY_SECONDS:-30}
monitoring_attempts=${DEPLOY_MONITORING_ATTEMPTS:-21}
# A channel's resource name as gcloud prints it; anything else is not put into a policy.
readonly CHANNEL_NAME_PATTERN='^projects/[^/"[:space:]]+/notificationChannels/[^/"[:space:]]+$'

# The template FILE with every placeholder filled in, on stdout. CHANNELS is a JSON array of channel names.
render_definition() {
	local file=$1 channels=$2 text
	text=$(<"$file")
	text=${text//\{\{PROJECT\}\}/$project}
	text=${text//\{\{REGION\}\}/$region}
	text=${text//\{\{FUNCTION\}\}/$name}
	text=${text//\"\{\{TIME_BUDGET_MS\}\}\"/$budget_ms}
	text=${text//\"notificationChannels\": \[\]/\"notificationChannels\": $channels}
	printf '%s\n' "$text"
}

# The first "displayName" of a rendered definition: the policy's or the dashboard's own (it comes first).
display_name_of() {
	local line
	line=$(grep -m1 -o '"displayName": "[^"]*"' "$1") || return 1
	line=${line#'"displayName": "'}
	printf '%s' "${line%'"'}"
}

# A listing look-up: its output, or nothing (with a warning) in a dry run where the API may not be enabled yet.
monitoring_listing() {
	local what=$1 output
	shift
	if output=$(lookup "$@"); then
		printf '%s' "$output"
	elif ((dry_run)); then
		warn "could not list the $what (is the API enabled yet?); showing every one as new"
	else
		die "in project $project, could not list the $what"
	fi
}

# A policy create or update: shown and run, retried while Cloud Monitoring does not know a new metric yet.
run_policy_command() {
	local attempt=1 output
	while true; do
		show_cmd "$@"
		if ((dry_run)); then
			return 0
		fi
		if output=$("$@" 2>&1); then
			[[ -z $output ]] || printf '%s\n' "$output" >&2
			return 0
		fi
		if [[ ! $output =~ $METRIC_NOT_READY_PATTERN ]] || ((attempt >= monitoring_attempts)); then
			printf '%s\n' "$output" >&2
			return 1
		fi
		say "Cloud Monitoring does not know the new log-based metrics yet (this can take up to 10 minutes);" \
			"trying again in ${monitoring_retry_seconds}s (attempt $((attempt + 1)) of $monitoring_attempts)."
		sleep "$monitoring_retry_seconds"
		attempt=$((attempt + 1))
	done
}

# The resource names of the channels to notify: --notification-channel ones, then one email channel per
# --alert-email (an existing email channel with exactly that address is reused, never duplicated).
resolve_channels() {
	local channel listing line channel_name channel_type channel_email email found created
	channel_names=()
	for channel in ${notification_channels[@]+"${notification_channels[@]}"}; do
		if [[ $channel == projects/* ]]; then
			channel_names+=("$channel")
		else
			channel_names+=("projects/$project/notificationChannels/$channel")
		fi
	done
	if ((${#alert_emails[@]} == 0)); then
		return 0
	fi
	listing=$(monitoring_listing "notification channels (needs gcloud's beta component: gcloud components install beta)" \
		gcloud beta monitoring channels list --project "$project" --format 'value(name,type,labels.email_address)')
	for email in "${alert_emails[@]}"; do
		found=""
		while IFS=$'\t' read -r channel_name channel_type channel_email; do
			if [[ $channel_type == email && $channel_email == "$email" ]]; then
				found=$channel_name
				break
			fi
		done <<<"$listing"
		if [[ -n $found ]]; then
			[[ $found =~ $CHANNEL_NAME_PATTERN ]] || die "gcloud listed the channel for $email oddly: '$found'"
			say "Notification channel for $email exists: $found"
			channel_names+=("$found")
			continue
		fi
		show_cmd gcloud beta monitoring channels create --project "$project" --type email \
			--display-name "$name alerts: $email" --channel-labels "email_address=$email" --format 'value(name)'
		if ((dry_run)); then
			channel_names+=("projects/$project/notificationChannels/NEW_CHANNEL_FOR_$email")
			continue
		fi
		created=$(gcloud beta monitoring channels create --project "$project" --type email \
			--display-name "$name alerts: $email" --channel-labels "email_address=$email" --format 'value(name)') ||
			die "could not create the notification channel for $email"
		created=${created//[[:space:]]/}
		if [[ ! $created =~ $CHANNEL_NAME_PATTERN ]]; then
			die "gcloud did not print the new notification channel's name for $email (got '$created')"
		fi
		channel_names+=("$created")
	done
}

json_array() {
	local item text=""
	for item in "$@"; do
		text+="${text:+, }\"$item\""
	done
	printf '[%s]' "$text"
}

deploy_metrics() {
	local listing file metric existing=()
	listing=$(monitoring_listing "log-based metrics" gcloud logging metrics list --project "$project" --format 'value(name)')
	while IFS= read -r metric; do
		metric=${metric//[[:space:]]/}
		existing+=("${metric##*/}")
	done <<<"$listing"
	for file in "$MONITORING_TEMPLATES"/metrics/*.json; do
		metric="$name-$(basename "$file" .json)"
		render_definition "$file" '[]' >"$rendered_dir/metric-$metric.json"
		if contains "$metric" ${existing[@]+"${existing[@]}"}; then
			run gcloud logging metrics update "$metric" --project "$project" \
				--config-from-file "$rendered_dir/metric-$metric.json" --format none
		else
			run gcloud logging metrics create "$metric" --project "$project" \
				--config-from-file "$rendered_dir/metric-$metric.json" --format none
		fi
	done
}

# The resource name of the first listed resource whose display name is exactly DISPLAY (LISTING holds
# "name<TAB>displayName[<TAB>etag]" lines); warns when there are several.
find_by_display_name() {
	local listing=$1 display=$2 what=$3 listed_name listed_display listed_etag matches=()
	while IFS=$'\t' read -r listed_name listed_display listed_etag; do
		if [[ -n $listed_name && $listed_display == "$display" ]]; then
			matches+=("$listed_name${listed_etag:+$'\t'$listed_etag}")
		fi
	done <<<"$listing"
	if ((${#matches[@]} > 1)); then
		warn "${#matches[@]} $what are named '$display'; updating the first (${matches[0]%%$'\t'*}), leaving the others"
	fi
	if ((${#matches[@]})); then
		printf '%s' "${matches[0]}"
	fi
}

# Without --alert-email or --notification-channel, an existing policy keeps the channels it has (someone may
# have added one in the console); with either, every policy notifies exactly the channels given.
deploy_policies() {
	local listing file rendered display found policy channels channel kept=()
	channels=$(json_array ${channel_names[@]+"${channel_names[@]}"})
	listing=$(monitoring_listing "alert policies" gcloud monitoring policies list --project "$project" \
		--format 'value(name,displayName,notificationChannels.join(","))')
	for file in "$MONITORING_TEMPLATES"/policies/*.json; do
		rendered="$rendered_dir/policy-$(basename "$file")"
		render_definition "$file" "$channels" >"$rendered"
		display=$(display_name_of "$rendered") || die "no displayName in $file"
		found=$(find_by_display_name "$listing" "$display" "alert policies")
		policy=${found%%$'\t'*}
		if [[ -n $found && $found == *$'\t'* ]] && ((${#channel_names[@]} == 0)); then
			IFS=, read -ra kept <<<"${found#*$'\t'}"
			for channel in "${kept[@]}"; do
				[[ $channel =~ $CHANNEL_NAME_PATTERN ]] ||
					die "the alert policy '$display' lists a channel gcloud printed oddly: '$channel'"
			done
			render_definition "$file" "$(json_array "${kept[@]}")" >"$rendered"
			policies_keeping_channels=$((policies_keeping_channels + 1))
		fi
		if [[ -n $found ]]; then
			run_policy_command gcloud monitoring policies update "$policy" --project "$project" \
				--policy-from-file "$rendered" --format none || die "could not update the alert policy '$display'"
		else
			run_policy_command gcloud monitoring policies create --project "$project" \
				--policy-from-file "$rendered" --format none || die "could not create the alert policy '$display'"
		fi
	done
}

deploy_dashboard() {
	local listing rendered display found dashboard etag text
	rendered="$rendered_dir/dashboard.json"
	render_definition "$MONITORING_TEMPLATES/dashboard.json" '[]' >"$rendered"
	display=$(display_name_of "$rendered") || die "no displayName in $MONITORING_TEMPLATES/dashboard.json"
	listing=$(monitoring_listing "dashboards" gcloud monitoring dashboards list --project "$project" \
		--format 'value(name,displayName,etag)')
	found=$(find_by_display_name "$listing" "$display" "dashboards")
	if [[ -z $found ]]; then
		run gcloud monitoring dashboards create --project "$project" --config-from-file "$rendered" --format none
		return 0
	fi
	dashboard=${found%%$'\t'*}
	if [[ $found == *$'\t'* ]]; then
		# The etag of the version we replace: an edit made meanwhile in the console makes the update fail
		# rather than be lost silently.
		etag=${found#*$'\t'}
		text=$(<"$rendered")
		printf '{\n  "etag": "%s",%s\n' "$etag" "${text#\{}" >"$rendered"
	fi
	run gcloud monitoring dashboards update "$dashboard" --project "$project" --config-from-file "$rendered" --format none
}

deploy_monitoring() {
	local file
	policies_keeping_channels=0
	rendered_dir=$(mktemp -d "${TMPDIR:-/tmp}/availability-cron-monitoring.XXXXXX")
	monitoring_work_dir=$rendered_dir
	say "Definitions: $MONITORING_TEMPLATES/ (metrics/, policies/, dashboard.json), rendered for $name in $region."
	resolve_channels
	deploy_metrics
	deploy_policies
	deploy_dashboard
	if [[ -n $monitoring_dir ]]; then
		mkdir -p "$monitoring_dir" || die "could not create --monitoring-dir $monitoring_dir"
		for file in "$rendered_dir"/*.json; do
			cp "$file" "$monitoring_dir/" || die "could not write $monitoring_dir/$(basename "$file")"
		done
		say "The rendered definitions are in $monitoring_dir."
	fi
	rm -rf "$rendered_dir"
	monitoring_work_dir=""
	if ((dry_run)) && [[ -z $monitoring_dir ]]; then
		say "(dry run: the rendered files named above are gone; add --monitoring-dir DIR to keep them for reading)"
	fi
	if ((${#channel_names[@]} == 0 && policies_keeping_channels)); then
		say "No --alert-email or --notification-channel: $policies_keeping_channels existing alert policies keep the" \
			"notification channels they have."
	elif ((${#channel_names[@]} == 0)); then
		say "The alert policies notify nobody yet: run again with --alert-email ADDRESS (or --notification-channel ID)," \
			"or add a channel to the policies '$name: ...' in the console (Monitoring > Alerting)."
	else
		say "The alert policies notify: ${channel_names[*]}"
	fi
}
