"""`engage keys`, `engage webhooks` and `engage serve` as a user runs them:
output contracts and one-line errors."""

from __future__ import annotations

import socket

from tests.e2e.test_cli import engage


def test_keys_create_list_revoke(cli_env: dict[str, str]) -> None:
    created = engage(cli_env, "keys", "create", "shop")
    assert created.returncode == 0, created.stderr
    key = created.stdout.split()[-1]
    assert key.startswith("egk_i_") and len(key) > 40
    read = engage(cli_env, "keys", "create", "dash", "--scope", "read")
    assert read.stdout.split()[-1].startswith("egk_r_")
    listed = engage(cli_env, "keys", "list")
    assert "shop" in listed.stdout and "ingest" in listed.stdout and "read" in listed.stdout
    assert key not in listed.stdout and key[:10] in listed.stdout
    assert engage(cli_env, "keys", "revoke", "shop").returncode == 0
    again = engage(cli_env, "keys", "revoke", "shop")
    assert again.returncode == 2
    assert again.stderr.strip() == "engage: error: no live API key named 'shop'"
    bad = engage(cli_env, "keys", "create", "x", "--scope", "owner")
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("engage: error: --scope must be one of ingest, read")
    assert "got 'owner'" in bad.stderr


def test_webhooks_add_list_remove_and_bad_urls(cli_env: dict[str, str]) -> None:
    added = engage(
        cli_env, "webhooks", "add", "http://127.0.0.1:9/hook", "--rule", "win-back-90d",
        "--allow-private",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "webhook #1 -> http://127.0.0.1:9/hook (rule win-back-90d)" in added.stdout
    assert added.stdout.split()[-1].startswith("whsec_")
    listed = engage(cli_env, "webhooks", "list")
    assert "win-back-90d" in listed.stdout and "127.0.0.1:9" in listed.stdout
    assert added.stdout.split()[-1] not in listed.stdout
    assert engage(cli_env, "webhooks", "remove", "1").returncode == 0
    assert "0 webhook subscriptions" in engage(cli_env, "webhooks", "list").stdout
    gone = engage(cli_env, "webhooks", "remove", "1")
    assert gone.returncode == 2 and "no active webhook subscription #1" in gone.stderr
    bad = engage(cli_env, "webhooks", "add", "ftp://example.com/x")
    assert bad.returncode == 2
    assert "must be http:// or https://" in bad.stderr and "Traceback" not in bad.stderr
    empty = engage(cli_env, "webhooks", "deliver", "--until-idle")
    assert empty.returncode == 0 and "made 0 delivery attempts" in empty.stdout


def test_serve_on_a_busy_port_is_one_clear_line(cli_env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = engage(cli_env, "serve", "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.startswith(f"engage: error: cannot listen on 127.0.0.1:{port}")
    assert len(result.stderr.strip().splitlines()) == 1
