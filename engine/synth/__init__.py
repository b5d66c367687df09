"""Synthetic organisation generator: writes a bundle in the clouds' own export formats, plus truth.

``generate(out, seed=...)`` writes ``out/bundle/`` (CloudTrail in the S3 delivery layout, CUR 2.0,
the tagging API, IAM authorization details, ENIs, VPC flow logs, deploys), ``out/truth.csv`` (owners)
and ``out/spikes_truth.csv`` (planted cost spikes, rhythms and cold-start launches: the watch's truth).
The organisation behind it (``org.build_org``) is a pure, seeded function, so the same seed gives a
byte-identical bundle and tests can rebuild the model to check properties of what was written.
"""

from __future__ import annotations

from engine.synth.generate import SynthSummary, generate
from engine.synth.org import KINDS, UNOWNED, UNOWNED_KINDS, Org, OrgParams, build_org

__all__ = ["KINDS", "UNOWNED", "UNOWNED_KINDS", "Org", "OrgParams", "SynthSummary", "build_org", "generate"]
