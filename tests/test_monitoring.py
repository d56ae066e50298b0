"""Monitoring as code (deploy.sh step 7, monitoring/): what deploy.sh creates and updates against the stand-in
gcloud, that the rendered definitions are valid for the Logging and Monitoring APIs' formats
(tests/monitoring_api.py), and that every log field they name is in the log lines the function really
writes (driven through the functions-framework app, read as Cloud Logging would, tests/log_query.py).
Nothing reaches Google Cloud."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fake_gcloud import fresh_state
from tests.test_deploy import FAKE_SECRET, PROJECT, ROOT, Deployer, existing_state, option, previous_monitoring

TEMPLATES = ROOT / "monitoring"
NAME = "availability-cron"
REGION = "us-central1"
METRIC_SUFFIXES = sorted(path.stem for path in (TEMPLATES / "metrics").glob("*.json"))
METRICS = [f"{NAME}-{suffix}" for suffix in METRIC_SUFFIXES]
POLICY_FILES = sorted(path.name for path in (TEMPLATES / "policies").glob("*.json"))
LOCK_KEY = 61061061061  # the default source's unsharded lock (tests/test_lock_and_budget.py)


@pytest.fixture
def deployer(tmp_path: Path) -> Deployer:
    return Deployer(tmp_path)


def monitoring_calls(result: Any) -> list[list[str]]:
    return [argv for argv in (call["argv"] for call in result.calls) if argv[0] in ("logging", "monitoring", "beta")]


def definitions(result: Any, *prefix: str) -> list[dict[str, Any]]:
    """The definition files the calls starting with these words sent (list calls send none)."""
    return [
        call["definition"]
        for call in result.calls
        if tuple(call["argv"][: len(prefix)]) == prefix and "definition" in call
    ]


def rendered(deployer: Deployer, tmp_path: Path, *args: str) -> dict[str, Any]:
    """The definitions as a dry run renders them (--monitoring-dir): {metric name: def}, {file: def}, dashboard."""
    out = tmp_path / "rendered"
    result = deployer.run("--project", PROJECT, "--dry-run", "--monitoring-dir", str(out), *args)
    assert result.returncode == 0, result.stderr
    load = lambda path: json.loads(path.read_text())  # noqa: E731
    return {
        "metrics": {path.stem.removeprefix("metric-"): load(path) for path in out.glob("metric-*.json")},
        "policies": {path.name.removeprefix("policy-"): load(path) for path in out.glob("policy-*.json")},
        "dashboard": load(out / "dashboard.json"),
    }


# ------------------------------------------------------------------------------------------- deploy.sh


def test_help_explains_the_monitoring_flags(deployer: Deployer) -> None:
    result = deployer.run("--help")
    assert result.returncode == 0
    for text in ("--no-monitoring", "--alert-email ADDRESS", "--notification-channel ID", "--monitoring-dir DIR",
                 "NAME-runs", "NAME-scheduler-failures", "monitoring/policies/*.json"):  # fmt: skip
        assert text in result.stdout
    assert result.calls == []


def test_first_run_creates_every_definition_once(deployer: Deployer) -> None:
    deployer.set_state(fresh_state(secret_value=FAKE_SECRET))
    result = deployer.run("--project", PROJECT)
    assert result.returncode == 0, result.stderr
    assert sorted(argv[3] for argv in result.argvs("logging", "metrics", "create")) == METRICS
    assert len(result.argvs("monitoring", "policies", "create")) == len(POLICY_FILES) == 6
    assert len(result.argvs("monitoring", "dashboards", "create")) == 1
    assert [argv for argv in monitoring_calls(result) if "update" in argv[:3]] == []
    state = deployer.state()
    assert state["metrics"] == METRICS
    assert sorted(state["policies"].values()) == sorted(
        f"{NAME}: {name}"
        for name in (
            "no finished run for 5 minutes",
            "a run failed (500)",
            "runs not finishing within their budget",
            "oldest successful refresh older than 15 minutes",
            "a provider in cool-down for 10 minutes",
            "Cloud Scheduler calls failing",
        )
    )
    assert list(state["dashboards"].values()) == [NAME]
    # Monitoring comes last, once the jobs whose failures it watches exist.
    first = min(i for i, call in enumerate(result.calls) if call["argv"][0] in ("logging", "monitoring", "beta"))
    assert first > max(i for i, call in enumerate(result.calls) if call["argv"][:2] == ["scheduler", "jobs"])
    assert "7/7 Monitoring" in result.stderr
    assert result.printed() == [call["argv"] for call in result.calls]


def test_second_run_updates_everything_and_creates_nothing(deployer: Deployer) -> None:
    deployer.set_state(fresh_state(secret_value=FAKE_SECRET))
    first = deployer.run("--project", PROJECT, "--alert-email", "ops@example.com")
    assert first.returncode == 0, first.stderr
    before = deployer.state()

    second = deployer.run("--project", PROJECT, "--alert-email", "ops@example.com")
    assert second.returncode == 0, second.stderr
    assert [argv for argv in monitoring_calls(second) if "create" in argv[:4]] == []
    assert sorted(argv[3] for argv in second.argvs("logging", "metrics", "update")) == METRICS
    updated = [argv[3] for argv in second.argvs("monitoring", "policies", "update")]
    assert sorted(updated) == sorted(f"projects/{PROJECT}/alertPolicies/{i}" for i in before["policies"])
    [dashboard] = second.argvs("monitoring", "dashboards", "update")
    assert dashboard[3] == f"projects/123456789012/dashboards/{next(iter(before['dashboards']))}"
    after = deployer.state()
    for part in ("metrics", "policies", "dashboards", "channels"):
        assert after[part] == before[part], part
    # Same definitions both times, but for the etag the dashboard update carries.
    assert after["policy_definitions"] == before["policy_definitions"]
    assert after["metric_definitions"] == before["metric_definitions"]


def test_no_monitoring_issues_no_monitoring_call(deployer: Deployer) -> None:
    deployer.set_state(fresh_state(secret_value=FAKE_SECRET))
    result = deployer.run("--project", PROJECT, "--no-monitoring")
    assert result.returncode == 0, result.stderr
    assert monitoring_calls(result) == []
    assert not {"logging.googleapis.com", "monitoring.googleapis.com"} & set(result.one("services", "enable"))
    assert "6/6 Cloud Scheduler jobs" in result.stderr and "Monitoring" not in result.stderr
    state = deployer.state()
    assert (state["metrics"], state["policies"], state["dashboards"]) == ([], {}, {})


@pytest.mark.parametrize("emails", [(), ("ops@example.com",)], ids=["no-email", "email"])
@pytest.mark.parametrize("make_state", [fresh_state, existing_state], ids=["fresh", "existing"])
def test_dry_run_changes_nothing_and_prints_the_plan(
    deployer: Deployer, emails: tuple[str, ...], make_state: Any
) -> None:
    deployer.set_state(make_state(secret_value=FAKE_SECRET))
    before = deployer.state()
    flags = [word for email in emails for word in ("--alert-email", email)]
    result = deployer.run("--project", PROJECT, "--dry-run", *flags)
    assert result.returncode == 0, result.stderr
    assert deployer.state() == before
    assert result.mutations() == []
    printed = [argv for argv in result.printed() if argv[0] in ("logging", "monitoring", "beta")]
    verb = "create" if make_state is fresh_state else "update"
    assert sorted(argv[3] for argv in printed if argv[:3] == ["logging", "metrics", verb]) == METRICS
    assert len([argv for argv in printed if argv[:3] == ["monitoring", "policies", verb]]) == 6
    assert len([argv for argv in printed if argv[:3] == ["monitoring", "dashboards", verb]]) == 1
    channels = [argv for argv in printed if argv[:4] == ["beta", "monitoring", "channels", "create"]]
    assert [option(argv, "--channel-labels") for argv in channels] == [f"email_address={e}" for e in emails]
    if not emails:
        assert "--alert-email ADDRESS" in result.stderr  # how to add a channel
    assert "add --monitoring-dir DIR to keep them" in result.stderr
    assert "Dry run complete" in result.stderr


def test_dry_run_prints_what_a_real_run_does(deployer: Deployer) -> None:
    deployer.set_state(existing_state(metrics=[], policies={}, dashboards={}))  # the function is there
    args = ("--project", PROJECT, "--notification-channel", "42")
    planned = deployer.run(*args, "--dry-run")
    done = deployer.run(*args)
    assert planned.returncode == done.returncode == 0
    assert planned.printed_without_temp_paths() == done.printed_without_temp_paths()
    assert [
        "monitoring",
        "dashboards",
        "create",
        "--project",
        PROJECT,
        "--config-from-file",
        "dashboard.json",
        "--format",
        "none",
    ] in done.printed_without_temp_paths()


def test_alert_emails_and_channel_ids_are_wired_into_every_policy(deployer: Deployer) -> None:
    other = "projects/other-project/notificationChannels/7"
    args = ["--project", PROJECT, "--alert-email", "ops@example.com", "--alert-email", "oncall@example.com"]
    args += ["--notification-channel", "42", "--notification-channel", other]
    result = deployer.run(*args)
    assert result.returncode == 0, result.stderr
    creates = result.argvs("beta", "monitoring", "channels", "create")
    assert [option(argv, "--channel-labels") for argv in creates] == [
        "email_address=ops@example.com",
        "email_address=oncall@example.com",
    ]
    assert all(option(argv, "--type") == "email" and option(argv, "--project") == PROJECT for argv in creates)
    channels = deployer.state()["channels"]
    by_address = {address: f"projects/{PROJECT}/notificationChannels/{id_}" for id_, address in channels.items()}
    expected = [f"projects/{PROJECT}/notificationChannels/42", other]
    expected += [by_address["ops@example.com"], by_address["oncall@example.com"]]
    policies = definitions(result, "monitoring", "policies")
    assert len(policies) == 6
    assert all(policy["notificationChannels"] == expected for policy in policies)
    assert "notify: " + " ".join(expected) in result.stderr

    # Run again: the channels are found by address and reused, never duplicated.
    again = deployer.run(*args)
    assert again.returncode == 0, again.stderr
    assert again.argvs("beta", "monitoring", "channels", "create") == []
    assert deployer.state()["channels"] == channels
    assert all(p["notificationChannels"] == expected for p in definitions(again, "monitoring", "policies"))


def test_an_existing_channel_is_reused_only_for_exactly_its_address(deployer: Deployer) -> None:
    deployer.set_state(existing_state(channels={"77": "ops@example.com", "78": "xops@example.com.evil"}))
    result = deployer.run("--project", PROJECT, "--alert-email", "ops@example.com", "--alert-email", "x@example.com")
    assert result.returncode == 0, result.stderr
    [create] = result.argvs("beta", "monitoring", "channels", "create")
    assert option(create, "--channel-labels") == "email_address=x@example.com"
    [policy, *_] = definitions(result, "monitoring", "policies")
    assert policy["notificationChannels"][0] == f"projects/{PROJECT}/notificationChannels/77"


def test_without_a_channel_the_policies_are_made_and_the_script_says_how_to_add_one(deployer: Deployer) -> None:
    result = deployer.run("--project", PROJECT)
    assert result.returncode == 0, result.stderr
    assert result.argvs("beta", "monitoring", "channels") == []  # no beta component needed
    assert all(policy["notificationChannels"] == [] for policy in definitions(result, "monitoring", "policies"))
    assert "notify nobody yet: run again with --alert-email ADDRESS (or --notification-channel ID)" in result.stderr


def test_without_channel_flags_existing_policies_keep_their_channels(deployer: Deployer) -> None:
    first = deployer.run("--project", PROJECT, "--notification-channel", "42")
    assert first.returncode == 0, first.stderr
    ours = f"projects/{PROJECT}/notificationChannels/42"
    # Someone adds a channel to one policy in the console; a plain re-deploy keeps both policies' channels.
    state = deployer.state()
    assert state["policy_channels"] == {policy: [ours] for policy in state["policies"]}
    state["policy_channels"]["900"] = [ours, "projects/p/notificationChannels/5"]
    deployer.set_state(state)
    again = deployer.run("--project", PROJECT)
    assert again.returncode == 0, again.stderr
    channels = [p["notificationChannels"] for p in definitions(again, "monitoring", "policies")]
    assert channels == [[ours, "projects/p/notificationChannels/5"]] + [[ours]] * 5
    assert "6 existing alert policies keep the notification channels they have" in again.stderr
    # With a channel flag, every policy notifies exactly what is given.
    given = deployer.run("--project", PROJECT, "--notification-channel", "43")
    assert given.returncode == 0, given.stderr
    expected = [f"projects/{PROJECT}/notificationChannels/43"]
    assert all(p["notificationChannels"] == expected for p in definitions(given, "monitoring", "policies"))


def test_a_policy_refused_for_a_metric_not_known_yet_is_retried(deployer: Deployer) -> None:
    deployer.set_state(fresh_state(secret_value=FAKE_SECRET, metric_not_ready=2))
    result = deployer.run("--project", PROJECT, env={"DEPLOY_MONITORING_RETRY_SECONDS": "0"})
    assert result.returncode == 0, result.stderr
    creates = result.argvs("monitoring", "policies", "create")
    assert len(creates) == 6 + 2
    assert creates[0] == creates[1] == creates[2]
    assert result.stderr.count("does not know the new log-based metrics yet") == 2
    assert len(deployer.state()["policies"]) == 6
    assert result.printed() == [call["argv"] for call in result.calls]  # each attempt is shown


def test_a_policy_still_refused_after_every_attempt_fails_the_run(deployer: Deployer) -> None:
    deployer.set_state(fresh_state(secret_value=FAKE_SECRET, metric_not_ready=99))
    env = {"DEPLOY_MONITORING_RETRY_SECONDS": "0", "DEPLOY_MONITORING_ATTEMPTS": "3"}
    result = deployer.run("--project", PROJECT, env=env)
    assert result.returncode == 1
    assert len(result.argvs("monitoring", "policies", "create")) == 3
    assert "could not create the alert policy 'availability-cron: no finished run for 5 minutes'" in result.stderr
    assert "Cannot find metric" in result.stderr


def test_any_other_policy_failure_is_not_retried(deployer: Deployer) -> None:
    deployer.set_state(existing_state(fail=["monitoring policies update"]))
    result = deployer.run("--project", PROJECT, env={"DEPLOY_MONITORING_RETRY_SECONDS": "0"})
    assert result.returncode == 1
    assert len(result.argvs("monitoring", "policies", "update")) == 1
    assert "simulated failure" in result.stderr
    assert result.argvs("monitoring", "dashboards") == []


def test_a_dashboard_update_carries_the_listed_etag(deployer: Deployer) -> None:
    result = deployer.run("--project", PROJECT)
    assert result.returncode == 0, result.stderr
    [dashboard] = definitions(result, "monitoring", "dashboards", "update")
    assert dashboard["etag"] == "etag-950-1"
    assert deployer.state()["dashboards"] == {"950": NAME}
    # Whatever the listing says is what goes back (an edit in the console meanwhile moved the etag on).
    (deployer.state_dir / "dashboards" / "950.etag").write_text("etag-950-7")
    again = deployer.run("--project", PROJECT)
    assert again.returncode == 0, again.stderr
    assert definitions(again, "monitoring", "dashboards", "update")[0]["etag"] == "etag-950-7"


def test_same_display_name_twice_updates_the_first_and_warns(deployer: Deployer) -> None:
    monitoring = previous_monitoring()
    duplicate = monitoring["policies"]["900"]
    deployer.set_state(existing_state(policies={**monitoring["policies"], "999": duplicate}))
    result = deployer.run("--project", PROJECT)
    assert result.returncode == 0, result.stderr
    updated = [argv[3] for argv in result.argvs("monitoring", "policies", "update")]
    assert f"projects/{PROJECT}/alertPolicies/900" in updated and not any(u.endswith("/999") for u in updated)
    assert f"2 alert policies are named '{duplicate}'" in result.stderr


def test_monitoring_dir_holds_exactly_what_is_sent(deployer: Deployer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = deployer.run("--project", PROJECT, "--monitoring-dir", str(out))
    assert result.returncode == 0, result.stderr
    files = {path.name: json.loads(path.read_text()) for path in out.iterdir()}
    assert len(files) == len(METRICS) + 6 + 1
    for call in result.calls:
        for flag in ("--config-from-file", "--policy-from-file"):
            if (path := option(call["argv"], flag)) is not None:
                assert files[Path(path).name] == call["definition"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--no-monitoring", "--alert-email", "ops@example.com"), "need the monitoring step"),
        (("--no-monitoring", "--monitoring-dir", "/tmp/x"), "need the monitoring step"),
        (("--alert-email", "not-an-address"), "invalid --alert-email"),
        (("--alert-email",), "--alert-email needs a value"),
        (("--notification-channel", "abc"), "invalid --notification-channel"),
        (("--notification-channel", "projects/p/alertPolicies/1"), "invalid --notification-channel"),
        (("--no-monitoring=1",), "--no-monitoring takes no value"),
    ],
)
def test_bad_monitoring_flags_fail_before_any_gcloud_call(
    deployer: Deployer, args: tuple[str, ...], message: str
) -> None:
    result = deployer.run("--project", PROJECT, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.calls == []


@pytest.mark.parametrize("variable", ["DEPLOY_MONITORING_RETRY_SECONDS", "DEPLOY_MONITORING_ATTEMPTS"])
def test_bad_retry_settings_fail_before_any_gcloud_call(deployer: Deployer, variable: str) -> None:
    result = deployer.run("--project", PROJECT, env={variable: "soon"})
    assert result.returncode == 2
    assert f"invalid {variable} 'soon'" in result.stderr
    assert result.calls == []


def test_unlistable_channels_stop_before_any_policy_and_name_the_beta_component(deployer: Deployer) -> None:
    deployer.set_state(existing_state(fail=["beta monitoring channels list"]))
    result = deployer.run("--project", PROJECT, "--alert-email", "ops@example.com")
    assert result.returncode == 1
    assert "gcloud components install beta" in result.stderr
    assert result.argvs("monitoring", "policies", "update") == result.argvs("monitoring", "policies", "create") == []


def test_a_failed_listing_stops_a_real_run_but_not_a_dry_run(deployer: Deployer) -> None:
    deployer.set_state(existing_state(fail=["logging metrics list"]))
    real = deployer.run("--project", PROJECT)
    assert real.returncode == 1
    assert "could not list the log-based metrics" in real.stderr
    assert real.argvs("logging", "metrics", "create") == [] and real.argvs("logging", "metrics", "update") == []
    planned = deployer.run("--project", PROJECT, "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert "showing every one as new" in planned.stderr
