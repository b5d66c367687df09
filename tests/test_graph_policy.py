"""IAM policy wildcards find exactly the resources a full scan with fnmatch finds."""

from __future__ import annotations

import fnmatch
import random

from engine.graph import _glob_hits, _policy_matchers


def test_prefix_bisection_matches_what_fnmatch_matches_everywhere():
    rng = random.Random(7)
    services = ["s3:::", "dynamodb:us-east-1:111:table/", "lambda:us-east-1:111:function:", "sqs:eu-west-1:111:"]
    arns = sorted({f"arn:aws:{rng.choice(services)}{rng.choice(['pay', 'payments', 'ml', 'ml-', 'x'])}"
                   f"{rng.choice(['', '-prod', '-dev', '_1', '[a]'])}{rng.randint(0, 30)}" for _ in range(600)})
    index = {a: i for i, a in enumerate(arns)}
    globs = ["arn:aws:s3:::pay*", "arn:aws:dynamodb:us-east-1:111:table/ml-*", "arn:aws:lambda:*:111:function:x?",
             "arn:aws:sqs:eu-west-1:111:*-dev*", "arn:aws:s3:::ml[-_]*", "arn:aws:*", "arn:aws:s3:::nothing*"]
    for m in _policy_matchers(tuple(globs)):
        assert not isinstance(m, str)
        got = sorted(_glob_hits(m, arns, index))
        want = [index[a] for a in arns if fnmatch.fnmatchcase(a, m[1])]
        assert got == want, m[1]
    assert sum(1 for _ in _glob_hits(_policy_matchers(("arn:aws:*",))[0], arns, index)) == len(arns)
