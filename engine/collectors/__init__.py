"""Live collectors: read a cloud account INTO a bundle directory, in the providers' own export formats.

A collected account is scanned and watched exactly like a bundle a person exported (see DESIGN.md):
``aws.collect`` writes ``resources.json``, ``iam.json``, ``network.json`` and mirrors the CloudTrail,
CUR 2.0 / FOCUS and VPC flow-log objects from S3 under ``cloudtrail/``, ``cost/`` and ``flowlogs/``,
incrementally (``.collect-state.json``). Everything here is read-only towards the cloud.
"""
