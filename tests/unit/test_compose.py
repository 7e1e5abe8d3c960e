"""docker-compose.yml describes production; Docker cannot run here, so check the file statically."""

from pathlib import Path

import yaml

from spendstream.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def _settings_env_names() -> set[str]:
    names = set()
    for section, field in Settings.model_fields.items():
        for sub in field.annotation.model_fields:
            names.add(f"SPENDSTREAM_{section.upper()}__{sub.upper()}")
    return names


def test_every_service_has_an_image_or_a_build():
    for name, svc in SERVICES.items():
        assert "image" in svc or "build" in svc, name


def test_the_production_servers_are_all_there():
    images = " ".join(svc.get("image", "") for svc in SERVICES.values())
    for needle in ("apache/kafka", "schema-registry", "redis:7", "clickhouse-server"):
        assert needle in images


def test_every_spendstream_variable_is_a_real_setting():
    known = _settings_env_names()
    for name, svc in SERVICES.items():
        for var in svc.get("environment", {}):
            if var.startswith("SPENDSTREAM_"):
                assert var in known, f"{name}: {var} is not a Settings field"


def test_worker_and_api_depend_on_the_servers_they_use():
    worker = set(SERVICES["worker"]["depends_on"])
    assert {"kafka", "redis", "clickhouse"} <= worker
    assert "redis" in SERVICES["api"]["depends_on"]


def test_ports_match_the_settings_the_containers_get():
    env = SERVICES["api"]["environment"]
    assert f"{env['SPENDSTREAM_API__PORT']}:{env['SPENDSTREAM_API__PORT']}" in SERVICES["api"]["ports"]
    assert env["SPENDSTREAM_REDIS__URL"].startswith("redis://redis:6379")
    assert "9092:9092" in SERVICES["kafka"]["ports"]
    assert env["SPENDSTREAM_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_settings_from_the_compose_environment_validate():
    env = SERVICES["worker"]["environment"]
    import os
    import re

    # substitute compose defaults: ${VAR:-default} -> default
    values = {k: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v)) for k, v in env.items()}
    values = {k: v for k, v in values.items() if v}

    old = dict(os.environ)
    try:
        os.environ.update(values)
        s = Settings()
        assert s.clickhouse.dsn.startswith("http://")
        assert s.kafka.partitions == 12
    finally:
        os.environ.clear()
        os.environ.update(old)
