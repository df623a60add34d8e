"""``prefect.yaml`` and the example incoming config: valid for Prefect, in step with the flows and the config."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
import yaml

from pipeline.config import load_run_config
from pipeline.incoming.config import ScheduleConfig, cron_problem

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prefect_yaml() -> dict:
    return yaml.safe_load((ROOT / "prefect.yaml").read_text())


def load_entrypoint(entrypoint: str):
    file, func = entrypoint.split(":")
    assert (ROOT / file).is_file(), f"{file} does not exist"
    module = importlib.import_module(file.removesuffix(".py").replace("/", "."))
    return getattr(module, func)


def test_prefect_yaml_parses_with_prefects_own_model(prefect_yaml):
    from prefect.cli.deploy._models import PrefectYamlModel

    model = PrefectYamlModel.model_validate(prefect_yaml)
    assert [d.name for d in model.deployments] == ["incoming-feedback", "code-corpus"]
    assert all(d.work_pool.name == "alliance-process" for d in model.deployments)


def test_prefect_yaml_entrypoints_import_and_parameters_match_the_flows(prefect_yaml):
    from prefect import Flow

    expected_flow = {"incoming-feedback": "incoming-feedback", "code-corpus": "code-corpus"}
    for dep in prefect_yaml["deployments"]:
        flow = load_entrypoint(dep["entrypoint"])
        assert isinstance(flow, Flow) and flow.name == expected_flow[dep["name"]]
        sig = inspect.signature(flow.fn)
        required = {n for n, p in sig.parameters.items() if p.default is inspect.Parameter.empty}
        assert set(dep["parameters"]) <= set(sig.parameters), dep["name"]
        assert required <= set(dep["parameters"]), dep["name"]
        assert all(v is None or isinstance(v, str) for v in dep["parameters"].values())  # paths only


def test_prefect_yaml_schedules_are_valid_and_match_the_config_default(prefect_yaml):
    from prefect.client.schemas.schedules import CronSchedule

    deps = {d["name"]: d for d in prefect_yaml["deployments"]}
    (sched,) = deps["incoming-feedback"]["schedules"]
    CronSchedule(cron=sched["cron"], timezone=sched["timezone"])
    default = ScheduleConfig()
    assert (sched["cron"], sched["timezone"], sched["active"]) == (default.cron, default.timezone, True)
    assert deps["code-corpus"]["schedules"] == []  # run by hand


def test_example_incoming_config_is_valid():
    from pipeline.codebook import load_codebook
    from pipeline.incoming.watch import check_alert_rules

    path = ROOT / "configs" / "runs" / "incoming.example.yaml"
    cfg = load_run_config(path)
    rules = check_alert_rules(cfg, load_codebook(cfg.codebook), path)
    assert rules["ruptures-per-clinician"] == ["WA.RUPC.CONFRONTATION", "WA.RUPW.WITHDRAWAL"]
    assert len(cfg.incoming.alerts) == 2 and cfg.incoming.schedule.cron == "30 6 * * 1-5"
    from prefect.client.schemas.schedules import CronSchedule

    CronSchedule(cron=cfg.incoming.schedule.cron, timezone=cfg.incoming.schedule.timezone)


@pytest.mark.parametrize("line", ["0 6 * * *", "*/15 7-19 * * MON-FRI", "0 6 1-31/2 JAN,jul 0", "@daily",
                                  "30 6 * * 1-5", "0 0 1 */3 *"])
def test_cron_check_accepts_what_prefect_accepts(line):
    from prefect.client.schemas.schedules import CronSchedule

    CronSchedule(cron=line)
    assert cron_problem(line) is None


@pytest.mark.parametrize("line", ["0 6 * *", "60 6 * * *", "0 24 * * *", "0 6 32 * *", "0 6 * 13 *", "*/0 * * * *",
                                  "0 6 * * MONDAY", "every day"])
def test_cron_check_rejects_bad_lines(line):
    assert cron_problem(line) is not None


def test_bad_schedule_and_unknown_alert_codes_name_the_file_line_and_key(tmp_path):
    from pipeline.codebook import load_codebook
    from pipeline.errors import ConfigError
    from pipeline.incoming.watch import check_alert_rules

    bad = tmp_path / "bad.yaml"
    bad.write_text("incoming:\n  schedule:\n    cron: '0 25 * * *'\n    timezone: Europe/Lodnon\n")
    with pytest.raises(ConfigError) as err:
        load_run_config(bad)
    assert "incoming.schedule" in str(err.value) and ":3:" in str(err.value)
    codes = tmp_path / "codes.yaml"
    codes.write_text("incoming:\n  alerts:\n    - name: ok\n      codes: [WA.RUPW]\n      threshold: 0.2\n"
                     "    - name: typo\n      codes: [WA.RUPW, WA.RUPZ]\n      threshold: 0.2\n")
    cfg = load_run_config(codes)
    with pytest.raises(ConfigError) as err:
        check_alert_rules(cfg, load_codebook(cfg.codebook), codes)
    assert (err.value.key, err.value.line) == ("incoming.alerts[1].codes", 7) and "WA.RUPZ" in str(err.value)
    dup = tmp_path / "dup.yaml"
    dup.write_text("incoming:\n  alerts:\n    - {name: a, codes: [WA.RUPW], threshold: 0.2}\n"
                   "    - {name: a, codes: [WA.RUPC], threshold: 0.2}\n")
    with pytest.raises(ConfigError, match="unique"):
        load_run_config(dup)
