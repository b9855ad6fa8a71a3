"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

Nothing here can start a container, so the checks are about the references:
every command a service runs or health-checks is a real ``engage`` command
with real options, the settings parse, and the image holds every package.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from engage.cli.app import app
from engage.config import Settings

ROOT = Path(__file__).resolve().parents[2]
LONG_RUNNING = ("kafka", "postgres", "worker-1", "worker-2", "triggers")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def cli() -> Any:
    """The click group typer builds (typer vendors its own click)."""
    import engage.cli  # noqa: F401  registers the commands

    group = typer.main.get_command(app)
    assert hasattr(group, "commands")
    return group


def _engage_args(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    assert isinstance(command, list), "commands are exec-form lists"
    return [str(c) for c in command]


def _check_invocation(cli: Any, args: list[str]) -> None:
    """The command exists and every --option it is given is one it declares."""
    assert args, "an engage service must say which command it runs"
    command = cli.commands.get(args[0])
    assert command is not None, f"engage has no command {args[0]!r}"
    declared = {opt for p in command.params for opt in getattr(p, "opts", [])}
    for arg in args[1:]:
        if arg.startswith("--"):
            assert arg in declared, f"`engage {args[0]}` has no option {arg}"


def test_the_services_of_the_issue_are_there(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    env = services["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft, one node"
    assert services["postgres"]["image"].startswith("postgres:")
    for name in ("worker-1", "worker-2"):
        assert _engage_args(services[name])[0] == "worker"


def test_long_running_services_have_health_checks(compose: dict[str, Any]) -> None:
    for name in LONG_RUNNING:
        check = compose["services"][name].get("healthcheck")
        assert check and check["test"][0] == "CMD", f"{name} needs an exec-form health check"


def test_every_engage_command_and_health_check_is_real(compose: dict[str, Any], cli: Any) -> None:
    for name, service in compose["services"].items():
        if service.get("build") is None:
            continue  # third-party images
        if service.get("command"):
            _check_invocation(cli, _engage_args(service))
        check = service.get("healthcheck")
        if check:
            assert check["test"][1] == "engage", f"{name}: health check runs engage"
            _check_invocation(cli, check["test"][2:])


def test_third_party_health_checks_use_their_images_tools(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]["healthcheck"]["test"]
    assert kafka[1] == "/opt/kafka/bin/kafka-topics.sh" and "localhost:9092" in kafka
    listeners = compose["services"]["kafka"]["environment"]["KAFKA_LISTENERS"]
    assert ":9092" in listeners
    assert compose["services"]["postgres"]["healthcheck"]["test"][1] == "pg_isready"


def test_engage_services_wait_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    for name in ("worker-1", "worker-2", "triggers"):
        deps = compose["services"][name]["depends_on"]
        assert deps["kafka"]["condition"] == "service_healthy"
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["init"]["condition"] == "service_completed_successfully"


def test_the_environment_is_what_settings_read(compose: dict[str, Any]) -> None:
    env = compose["services"]["worker-1"]["environment"]
    settings = Settings.from_env({k: str(v) for k, v in env.items()})
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.database_url is not None and settings.database_url.startswith("postgresql:")
    host = settings.database_url.split("@")[1].split(":")[0]
    assert host in compose["services"], "the database host is a compose service"
    assert settings.kafka_bootstrap.split(":")[0] in compose["services"]


def test_the_image_holds_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    top_level = {p.split(".")[0] for p in project["tool"]["setuptools"]["packages"]}
    copied = {line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")}
    assert top_level <= copied, f"not copied into the image: {top_level - copied}"
    assert 'ENTRYPOINT ["engage"]' in dockerfile
