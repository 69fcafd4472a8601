"""Settings precedence: flag > TRADEWIRE_* env > TOML file > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradewire.config import Settings, load_settings
from tradewire.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tradewire.toml"
    path.write_text(text)
    return path


def test_defaults_match_the_documented_interface() -> None:
    s = load_settings({}, environ={})
    assert (s.host, s.http_port, s.zmq_sub_port, s.zmq_router_port) == (
        "127.0.0.1",
        8765,
        5570,
        5571,
    )
    assert s.durability == "fsync"


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    config = write(tmp_path, "http_port = 1001\nzmq_sub_port = 1002\nzmq_router_port = 1003\n")
    env = {"TRADEWIRE_ZMQ_SUB_PORT": "2002", "TRADEWIRE_ZMQ_ROUTER_PORT": "2003"}
    s = load_settings({"zmq_router_port": 3003, "http_port": None}, config_file=config, environ=env)
    assert (s.http_port, s.zmq_sub_port, s.zmq_router_port) == (1001, 2002, 3003)


def test_config_path_can_come_from_the_environment(tmp_path: Path) -> None:
    config = write(tmp_path, f'data_dir = "{tmp_path / "store"}"\n')
    s = load_settings({}, environ={"TRADEWIRE_CONFIG": str(config)})
    assert s.data_dir == tmp_path / "store"


def test_empty_environment_value_counts_as_unset() -> None:
    assert load_settings({}, environ={"TRADEWIRE_HTTP_PORT": ""}).http_port == Settings().http_port


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        (
            {"TRADEWIRE_HTTP_PORT": "eighty"},
            "invalid value for http_port (from $TRADEWIRE_HTTP_PORT)",
        ),
        ({"TRADEWIRE_HTTP_PORT": "70000"}, "http_port must be between 0 and 65535"),
        ({"TRADEWIRE_DURABILITY": "maybe"}, "invalid value for durability"),
    ],
)
def test_bad_values_name_setting_and_origin(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({}, environ=env)
    assert needle in str(info.value)


def test_unknown_key_in_file_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"unknown setting 'http_prot'.*known settings: .*http_port"
    ):
        load_settings({}, config_file=write(tmp_path, "http_prot = 1\n"), environ={})


def test_missing_or_broken_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({}, config_file=tmp_path / "nope.toml", environ={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({}, config_file=write(tmp_path, "http_port = = 1"), environ={})
