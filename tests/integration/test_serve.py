"""``tradewire serve`` as an operator runs it: ready line, health, signals, ports."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.gateway_proc import GatewayProcess, run_cli, start_gateway


def test_ready_line_names_every_listening_address(gateway: GatewayProcess) -> None:
    for url in (gateway.zmq_sub, gateway.zmq_router):
        host, port = url.removeprefix("tcp://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    assert gateway.http.startswith("http://127.0.0.1:")


def test_healthz_reports_ok_and_addresses(gateway: GatewayProcess) -> None:
    body = httpx.get(f"{gateway.http}/healthz", timeout=5).json()
    assert body["status"] == "ok"
    assert body["listen"]["zmq_router"] == gateway.zmq_router


def test_metrics_are_prometheus_text(gateway: GatewayProcess) -> None:
    resp = httpx.get(f"{gateway.http}/metrics", timeout=5)
    assert resp.headers["content-type"].startswith("text/plain")
    assert "tradewire_up 1.0" in resp.text


def test_openapi_document_is_served(gateway: GatewayProcess) -> None:
    doc = httpx.get(f"{gateway.http}/openapi.json", timeout=5).json()
    assert "/healthz" in doc["paths"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_with_exit_zero(tmp_path: Path, sig: int) -> None:
    gw = start_gateway(tmp_path / "data")
    assert gw.stop(sig) == 0
    assert any('"msg":"stopped"' in line for line in gw.stderr_lines)


@pytest.mark.parametrize(
    ("flag", "what"),
    [
        ("--http-port", "HTTP/WebSocket server"),
        ("--zmq-sub-port", "ZeroMQ SUB socket"),
        ("--zmq-router-port", "ZeroMQ ROUTER socket"),
    ],
)
def test_port_in_use_fails_at_once_naming_port_and_flag(
    tmp_path: Path, flag: str, what: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {
            "--http-port": "0",
            "--zmq-sub-port": "0",
            "--zmq-router-port": "0",
            flag: str(port),
        }
        args = [x for kv in ports.items() for x in kv]
        result = subprocess.run(
            [sys.executable, "-m", "tradewire", "serve", "--data-dir", str(tmp_path), *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 2
    error_lines = [
        line for line in result.stderr.splitlines() if line.startswith("tradewire: error")
    ]
    assert error_lines == [
        f"tradewire: error: {what} cannot listen on 127.0.0.1:{port}: address already in use "
        f"(choose another port with {flag})"
    ]
    assert "tradewire ready" not in result.stdout


def test_environment_and_config_file_choose_ports(tmp_path: Path) -> None:
    config = tmp_path / "tw.toml"
    config.write_text('http_port = 1\nlog_level = "DEBUG"\n')  # overridden by the flag
    gw = start_gateway(
        tmp_path / "data", "--config", str(config), env={"TRADEWIRE_HOST": "127.0.0.1"}
    )
    try:
        assert httpx.get(f"{gw.http}/healthz", timeout=5).status_code == 200
    finally:
        assert gw.stop() == 0


def test_bad_config_value_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "tw.toml"
    config.write_text('http_port = "eighty"\n')
    result = run_cli("serve", "--config", str(config), data_dir=tmp_path)
    assert result.returncode == 2
    assert "invalid value for http_port (from config file" in result.stderr


COMMANDS = {"serve", "token", "keys", "send", "status", "ingest", "rebuild", "users", "report"}


def test_help_lists_every_command() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    listed = result.stdout.split("\nCommands:\n", 1)[1].splitlines()
    names = {line.split()[0] for line in listed if line.startswith("  ") and line.strip()}
    assert names >= COMMANDS, sorted(COMMANDS - names)  # more may come (report, ...)
    for line in listed:
        if line.startswith("  ") and line.strip():
            assert len(line.split(None, 1)) == 2, f"no summary: {line!r}"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_its_own_help(command: str) -> None:
    result = run_cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: tradewire {command} "), result.stdout
