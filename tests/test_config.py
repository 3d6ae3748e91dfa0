"""The settings table: precedence, validation, masking, and the README staying in sync."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from companion.config import Settings, load_settings, masked_settings, settings_markdown_table
from companion.errors import ConfigError

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_need_no_configuration() -> None:
    settings = load_settings()
    assert settings.port == 8000
    assert settings.redis_url is None
    assert settings.database_url is None


def test_environment_overrides_toml_which_overrides_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = tmp_path / "companion.toml"
    toml.write_text('port = 9001\nhost = "0.0.0.0"\nlog_level = "debug"\n')
    monkeypatch.setenv("COMPANION_CONFIG", str(toml))
    monkeypatch.setenv("COMPANION_PORT", "9002")
    settings = load_settings()
    assert settings.port == 9002  # environment wins
    assert settings.host == "0.0.0.0"  # from the file
    assert settings.log_level == "debug"
    assert settings.workers == 1  # default


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "COMPANION_PORT",
            "abc",
            "invalid setting COMPANION_PORT='abc': Input should be a valid integer",
        ),
        ("COMPANION_PORT", "70000", "less than or equal to 65535"),
        ("COMPANION_LOG_LEVEL", "loud", "Input should be 'debug', 'info', 'warning' or 'error'"),
        ("COMPANION_REDIS_URL", "http://h:6379", "URL scheme must be one of redis://"),
        ("COMPANION_DATABASE_URL", "mysql://h/db", "URL scheme must be one of postgresql://"),
    ],
)
def test_invalid_values_name_the_setting_value_and_rule(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert expected in str(caught.value)
    assert variable in str(caught.value)


def test_secret_values_are_not_echoed_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPANION_REDIS_URL", "http://user:hunter2@h:6379")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "hunter2" not in str(caught.value)


def test_unknown_key_in_toml_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("prot = 1\n")
    monkeypatch.setenv("COMPANION_CONFIG", str(toml))
    with pytest.raises(ConfigError, match="unknown setting 'prot'"):
        load_settings()


@pytest.mark.parametrize(
    ("content", "expected"), [(None, "file not found"), ("port = = 1", "not valid TOML")]
)
def test_bad_config_file_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None, expected: str
) -> None:
    path = tmp_path / "c.toml"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("COMPANION_CONFIG", str(path))
    with pytest.raises(ConfigError, match=expected):
        load_settings()


def test_masked_settings_hide_passwords_but_keep_the_rest() -> None:
    settings = load_settings(
        redis_url="redis://:s3cret@cache.internal:6380/2",
        database_url="postgresql://app:pw0rd@db:5432/companion",
    )
    shown = masked_settings(settings)
    assert shown["redis_url"] == "redis://:***@cache.internal:6380/2"
    assert shown["database_url"] == "postgresql://app:***@db:5432/companion"
    assert "s3cret" not in repr(settings)
    assert "pw0rd" not in repr(settings)


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]


def test_every_setting_has_a_unit_or_is_unitless_by_nature() -> None:
    numeric = {
        name
        for name, field in Settings.model_fields.items()
        if field.annotation in (int, float) and name not in {"port", "workers"}
    }
    # Times and sizes carry their unit; counts say what they count.
    units = (
        "s|ms|bytes|chars|chunks|entries|files|calls|pool_size|queue|runs_per_worker|workers|"
        "threads|sessions|spares"
    )
    pattern = rf"_({units}|per_key|per_tenant|uid|gid|depth|weight|rank_offset|ratio)$"
    assert all(re.search(pattern, name) for name in numeric), numeric


def test_readme_documents_every_setting() -> None:
    readme = README.read_text()
    block = re.search(r"<!-- settings:start -->\n(.*?)\n<!-- settings:end -->", readme, re.S)
    assert block is not None, "README lacks the generated settings table markers"
    assert block.group(1).strip() == settings_markdown_table(), (
        "README settings table is stale: regenerate it with `companion config docs`"
    )


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("http://10.0.0.5:8000/", "http://10.0.0.5:8000"),
        ("https://node-a.internal", "https://node-a.internal"),
        ("ftp://10.0.0.5", None),
        ("http://", None),
        ("http://10.0.0.5:8000/?x=1", None),
    ],
)
def test_node_url_must_be_a_reachable_http_url(url: str, accepted: str | None) -> None:
    if accepted is None:
        with pytest.raises(ConfigError, match="COMPANION_NODE_URL"):
            load_settings(node_url=url)
    else:
        assert load_settings(node_url=url).node_url == accepted
