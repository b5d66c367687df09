"""Detection rules behind local OpenFeature flags: a file and environment overrides, no deploy needed."""

from __future__ import annotations

import os

import numpy as np
import orjson
import pytest

from bot import flags
from config.flags import FileEnvProvider, enabled_rules, env_name, flag_number, install, rule_enabled
from engine.hourly import HourlySeries
from engine.spikes import RULES, SpikeConfig, detect


@pytest.fixture
def flag_file(tmp_path, monkeypatch):
    path = tmp_path / "flags.json"
    monkeypatch.setenv("COSTDNA_FLAGS_FILE", str(path))
    for k in list(os.environ):
        if k.startswith("COSTDNA_FLAG_"):
            monkeypatch.delenv(k)
    install(FileEnvProvider())
    yield path
    flags._installed = False


def write(path, doc) -> None:
    path.write_bytes(orjson.dumps(doc))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a distinct mtime for each write


def spiky() -> HourlySeries:
    rng = np.random.default_rng(0)
    c = 1 + 0.05 * rng.standard_normal(14 * 24)
    c[250:254] = 9.0
    return HourlySeries(490_000, ["arn:aws:ec2:us-east-1:111111111111:instance/i-0123456789abcdef0"], c[None, :],
                        np.ones(len(c), bool), np.zeros(1, bool), {})


def test_env_name():
    assert env_name("spikes.cold_start") == "COSTDNA_FLAG_SPIKES_COLD_START"


def test_all_rules_on_without_a_file(flag_file):
    assert enabled_rules() == RULES
    assert rule_enabled("spikes.statistical") and rule_enabled("cold_start")


def test_switching_a_rule_off_in_the_file_disables_it_in_detect(flag_file):
    assert len(detect(spiky(), config=SpikeConfig(rules=enabled_rules()))) == 1
    write(flag_file, {"spikes.statistical": False})
    assert not rule_enabled("spikes.statistical")
    assert enabled_rules() == RULES - {"statistical"}
    assert detect(spiky(), config=SpikeConfig(rules=enabled_rules())) == []
    write(flag_file, {"spikes.statistical": True})  # back on, again without a restart
    assert len(detect(spiky(), config=SpikeConfig(rules=enabled_rules()))) == 1


def test_env_overrides_the_file(flag_file, monkeypatch):
    write(flag_file, {"spikes.early_warning": False, "spikes.z": 6})
    assert "early_warning" not in enabled_rules()
    monkeypatch.setenv("COSTDNA_FLAG_SPIKES_EARLY_WARNING", "true")
    monkeypatch.setenv("COSTDNA_FLAG_SPIKES_NOVELTY", "off")
    assert enabled_rules() == RULES - {"novelty"}
    assert flag_number("spikes.z", 4.0) == 6.0
    monkeypatch.setenv("COSTDNA_FLAG_SPIKES_Z", "5.5")
    assert flag_number("spikes.z", 4.0) == 5.5


def test_bad_file_or_wrong_type_keeps_defaults(flag_file):
    flag_file.write_text("{not json")
    assert enabled_rules() == RULES
    write(flag_file, {"spikes.cold_start": "nope"})  # a string where a bool is expected
    assert rule_enabled("spikes.cold_start")
    write(flag_file, ["spikes.cold_start"])
    assert enabled_rules() == RULES


def test_the_watch_job_reads_the_flags(flag_file):
    """The hourly watch builds its SpikeConfig from the flags: a rule switched off there stops alerting."""
    from jobs.watch import _detect

    assert len(_detect(spiky(), None, [], [], {}, {})) == 1
    write(flag_file, {"spikes.statistical": False})
    assert _detect(spiky(), None, [], [], {}, {}) == []
