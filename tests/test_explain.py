"""engine.explain: a planted deploy -> spike link is found (Granger, statsmodels 0.15 API), and nothing
unrelated, later, or weaker is blamed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.explain import Cause, candidates, explain, granger_p
from engine.records import Deploy
from engine.sources.changes import ChangeEvent

H = 3600
T0 = 1_793_491_200  # 2026-11-01T00:00:00Z, an hour boundary
START_HOUR = T0 // H
ARN = "arn:aws:lambda:us-east-1:111111111111:function:ledger-writer"
OTHER = "arn:aws:lambda:us-east-1:222222222222:function:recs-ranker"
TEAMS = {"role:gha-payments-deployer": "payments", "gha-payments-deployer": "payments",
         "role:recs-cicd": "recs", "recs-cicd": "recs", "person:ana@corp.example": "payments"}


@dataclass
class FakeSpike:
    """The fields explain() reads of engine.spikes.Spike."""

    arn: str
    start: float
    end: float
    kind: str = "statistical"


def _series(jump_col: int, n: int = 24 * 7, seed: int = 1, base: float = 2.0, level: float = 9.0) -> np.ndarray:
    """Noisy cost with a daily rhythm and a step to ``level`` at ``jump_col``."""
    rnd = np.random.default_rng(seed)
    t = np.arange(n)
    cost = base + 0.3 * np.sin(2 * np.pi * t / 24) + rnd.normal(0, 0.08, n)
    cost[jump_col:] += level - base
    return np.clip(cost, 0, None)


def _team_of(key: str) -> str | None:
    return TEAMS.get(key)


def _spike_at(col: int, hours: int = 24) -> FakeSpike:
    return FakeSpike(ARN, float((START_HOUR + col) * H), float((START_HOUR + col + hours) * H))


def test_planted_deploy_link_is_found_with_small_p() -> None:
    jump = 120
    cost = _series(jump)
    d = Deploy(time=(START_HOUR + jump - 2) * H + 600, repo="payments/ledger", commit="abc1234def",
               actor="gha-payments-deployer", pipeline="github-actions", resources=(ARN,))
    noise = Deploy(time=(START_HOUR + jump - 1) * H, repo="recs/ranker", commit="fff0000",
                   actor="recs-cicd", resources=(OTHER,))
    cause = explain(_spike_at(jump), cost, START_HOUR, [noise, d], [], "payments", _team_of)
    assert cause is not None
    assert cause.kind == "deploy" and cause.commit == "abc1234def" and cause.repo == "payments/ledger"
    assert cause.actor == "gha-payments-deployer"
    assert cause.p_value is not None and cause.p_value < 0.05
    j = cause.to_json()
    assert set(j) >= {"commit", "repo", "actor", "time", "p_value", "kind", "event_name", "score"}
    assert j["time"].endswith("Z")
    assert Cause.from_json(j).commit == "abc1234def"
    assert any("Granger" in line for line in cause.evidence)


def test_granger_distinguishes_a_jump_after_the_pulse() -> None:
    cost = _series(100)
    assert granger_p(cost, 98, 2) < 0.05
    # the cost had already jumped 30 h before this pulse: it predicts nothing
    p_late = granger_p(cost, 130, 2)
    assert p_late is None or p_late > 0.05
    assert granger_p(np.ones(100), 50, 2) is None  # constant series: no test, no exception
    assert granger_p(cost[:5], 2, 2) is None  # too few points
    assert granger_p(cost, 0, 3) is None  # pulse where no lag can see it


def test_only_unrelated_deploys_give_no_cause() -> None:
    jump = 120
    cost = _series(jump)
    near = [Deploy(time=(START_HOUR + jump - k) * H + 300, repo="recs/ranker", commit=f"c{k}", actor="recs-cicd",
                   resources=(OTHER,)) for k in (1, 2, 5)]
    changes = [ChangeEvent((START_HOUR + jump - 1) * H, "e1", "UpdateFunctionCode", "lambda.amazonaws.com",
                           "role:recs-cicd", None, (OTHER,), None)]
    assert explain(_spike_at(jump), cost, START_HOUR, near, changes, "payments", _team_of) is None
    assert candidates(_spike_at(jump), near, changes, "payments", _team_of) == []


def test_a_deploy_after_the_spike_start_is_not_blamed() -> None:
    jump = 120
    cost = _series(jump)
    after = Deploy(time=(START_HOUR + jump + 2) * H, repo="payments/ledger", commit="late", actor="gha-payments-deployer",
                   resources=(ARN,))
    assert explain(_spike_at(jump), cost, START_HOUR, [after], [], "payments", _team_of) is None
    # an early warning starts at the launch itself: a change a minute later is after it
    ew = FakeSpike(ARN, float((START_HOUR + jump) * H + 1200), float((START_HOUR + jump + 1) * H), "early_warning")
    later = Deploy(time=ew.start + 60, repo="payments/ledger", commit="x", actor="gha-payments-deployer",
                   resources=(ARN,))
    assert explain(ew, np.zeros(0), START_HOUR, [later], [], "payments", _team_of) is None


def test_team_deploy_not_naming_the_resource_scores_below_one_naming_it() -> None:
    jump = 120
    cost = _series(jump)
    t = (START_HOUR + jump - 1) * H + 900
    team_only = Deploy(time=t, repo="payments/infra", commit="team111", actor="gha-payments-deployer",
                       hints=("payments-platform",))  # target unknown
    cands = candidates(_spike_at(jump), [team_only], [], "payments", _team_of)
    assert len(cands) == 1 and not cands[0].named
    # a team deploy that says it changed something else is not a candidate, nor a team change of another resource
    elsewhere = Deploy(time=t, repo="payments/infra", commit="else333", actor="gha-payments-deployer",
                       resources=("arn:aws:s3:::payments-artifacts",))
    other_fn = ChangeEvent(t, "e2", "UpdateFunctionCode", "lambda.amazonaws.com", "role:gha-payments-deployer",
                           None, ("arn:aws:lambda:us-east-1:111111111111:function:ledger-reader",), None)
    assert candidates(_spike_at(jump), [elsewhere], [other_fn], "payments", _team_of) == []
    assert explain(_spike_at(jump), cost, START_HOUR, [elsewhere], [other_fn], "payments", _team_of) is None
    alone = explain(_spike_at(jump), cost, START_HOUR, [team_only], [], "payments", _team_of)
    assert alone is not None and alone.commit == "team111"
    naming = Deploy(time=t, repo="payments/ledger", commit="name222", actor="gha-payments-deployer",
                    resources=(ARN,))
    both = explain(_spike_at(jump), cost, START_HOUR, [team_only, naming], [], "payments", _team_of)
    assert both is not None and both.commit == "name222" and both.score > alone.score
    # naming the resource wins even against a closer team deploy
    closer = Deploy(time=(START_HOUR + jump) * H + 60, repo="payments/infra", commit="close444",
                    actor="gha-payments-deployer")
    earlier = Deploy(time=t - 3 * H, repo="payments/ledger", commit="name555", actor="gha-payments-deployer",
                     resources=(ARN,))
    best = explain(_spike_at(jump), cost, START_HOUR, [closer, earlier], [], "payments", _team_of)
    assert best is not None and best.commit == "name555"


def test_deploy_like_change_of_the_resource_is_a_cause() -> None:
    jump = 100
    cost = _series(jump, seed=4)
    ev = ChangeEvent((START_HOUR + jump - 1) * H + 1800, "e9", "ModifyInstanceAttribute", "ec2.amazonaws.com",
                     "role:AWSReservedSSO_PowerUserAccess_abc", "ana@corp.example", (ARN,), "m5.4xlarge")
    launch = ChangeEvent((START_HOUR + jump - 1) * H, "e8", "RunInstances", "ec2.amazonaws.com",
                         "role:AWSReservedSSO_PowerUserAccess_abc", "ana@corp.example", (OTHER,), "m5.large")
    cause = explain(_spike_at(jump), cost, START_HOUR, [], [launch, ev], "payments", _team_of)
    assert cause is not None and cause.kind == "change" and cause.event_name == "ModifyInstanceAttribute"
    assert cause.actor == "ana@corp.example" and cause.commit is None


def test_deploy_merges_with_its_own_cloudtrail_call() -> None:
    """deploys.jsonl names the service; its CloudTrail call names the function that spiked."""
    jump = 120
    cost = _series(jump)
    d = Deploy(time=(START_HOUR + jump - 1) * H, repo="other/svc", commit="merge01", actor="somebody-ci",
               resources=("arn:aws:ecs:us-east-1:111111111111:service/c/s",))
    ev = ChangeEvent(d.time + 40, "e1", "UpdateFunctionCode", "lambda.amazonaws.com", "role:somebody-ci", None,
                     (ARN,), None)
    cause = explain(_spike_at(jump), cost, START_HOUR, [d], [ev], "payments", _team_of)
    assert cause is not None and cause.kind == "deploy" and cause.commit == "merge01"


def test_distant_named_deploy_without_granger_support_is_not_blamed() -> None:
    jump = 120
    old = Deploy(time=(START_HOUR + jump - 11) * H, repo="payments/ledger", commit="old", actor="gha-payments-deployer",
                 resources=(ARN,))
    flat = _series(10_000, n=24 * 7)  # no jump at all inside the series
    assert explain(_spike_at(jump), flat, START_HOUR, [old], [], "payments", _team_of) is None
    # a real jump, 11 h after the deploy: past the 6 h an effect takes to show
    assert explain(_spike_at(jump), _series(jump), START_HOUR, [old], [], "payments", _team_of) is None
    recent = Deploy(time=(START_HOUR + jump - 4) * H, repo="payments/ledger", commit="recent",
                    actor="gha-payments-deployer", resources=(ARN,))
    found = explain(_spike_at(jump), _series(jump), START_HOUR, [old, recent], [], "payments", _team_of)
    assert found is not None and found.commit == "recent"


def test_daily_export_counts_the_spikes_first_day() -> None:
    """A resource known per day: its cost steps up at midnight, the deploy came that morning."""
    rnd = np.random.default_rng(7)
    per_day = np.r_[rnd.normal(24.0, 0.5, 15), rnd.normal(120.0, 0.5, 5)]
    cost = np.repeat(per_day / 24.0, 24)  # spread evenly over the hours, as the hourly fold does
    day15 = START_HOUR + 15 * 24
    spike = FakeSpike(ARN, float(day15 * H), float((day15 + 5 * 24) * H))
    d = Deploy(time=(day15 + 10) * H, repo="payments/ledger", commit="morning", actor="gha-payments-deployer",
               resources=(ARN,))
    cause = explain(spike, cost, START_HOUR, [d], [], "payments", _team_of)
    assert cause is not None and cause.commit == "morning"
    assert cause.p_value is not None and cause.p_value < 0.05
    assert explain(spike, cost, START_HOUR, [d], [], "payments", _team_of, daily=False) is None


def test_exactly_flat_bills_still_get_a_p_value() -> None:
    """An RDS instance's hourly price is flat to the cent: statsmodels calls the fit perfect and refuses."""
    jump = 100
    cost = np.full(24 * 6, 0.171)
    cost[jump:] = 1.868
    assert granger_p(cost, jump - 3, 3) < 1e-6
    d = Deploy(time=(START_HOUR + jump - 3) * H + 1800, repo="payments/db", commit="flat01",
               actor="gha-payments-deployer", resources=(ARN,))
    cause = explain(_spike_at(jump), cost, START_HOUR, [d], [], "payments", _team_of)
    assert cause is not None and cause.commit == "flat01" and cause.p_value < 0.05


def test_a_cloudtrail_call_belongs_to_the_deploy_that_made_it() -> None:
    """Two deploys by one CI role 28 min apart: the call touching the resource is the later one's."""
    jump = 120
    first = Deploy(time=(START_HOUR + jump - 3) * H, repo="payments/volumes", commit="first",
                   actor="gha-payments-deployer", resources=("arn:aws:ec2:us-east-1:111111111111:volume/vol-1",))
    second = Deploy(time=first.time + 28 * 60, repo="payments/ledger", commit="second",
                    actor="gha-payments-deployer", resources=(ARN,))
    call = ChangeEvent(second.time + 20, "e1", "UpdateFunctionCode", "lambda.amazonaws.com",
                       "role:gha-payments-deployer", None, (ARN,), None)
    cands = candidates(_spike_at(jump), [first, second], [call], "payments", _team_of)
    assert [c.commit for c in cands] == ["second"]


def test_a_persons_deploy_owns_the_calls_that_followed_it() -> None:
    """An engineer's deploy record, then their own call on the instance 56 min later: the deploy is the cause;
    termination protection, which costs nothing, is no cause on its own."""
    jump = 120
    cost = _series(jump)
    d = Deploy(time=(START_HOUR + jump - 2) * H + 900, repo="payments/basket", commit="eng01",
               actor="ana@corp.example", resources=(ARN,))
    call = ChangeEvent(d.time + 56 * 60, "e1", "ModifyInstanceAttribute", "ec2.amazonaws.com",
                       "role:AWSReservedSSO_PowerUserAccess_abc", "ana@corp.example", (ARN,), "m5.4xlarge")
    cause = explain(_spike_at(jump), cost, START_HOUR, [d], [call], "payments", _team_of)
    assert cause is not None and cause.commit == "eng01"
    harmless = ChangeEvent((START_HOUR + jump) * H - 600, "e2", "ModifyInstanceAttribute", "ec2.amazonaws.com",
                           "role:AWSReservedSSO_PowerUserAccess_abc", "bo@corp.example", (ARN,), None)
    assert not harmless.is_deploy_like
    assert explain(_spike_at(jump), cost, START_HOUR, [], [harmless], "payments", _team_of) is None
