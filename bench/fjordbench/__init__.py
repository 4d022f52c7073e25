"""Fjord's benchmark driver: starts agents (and an S3 server when asked), drives them
with a Kafka client library nobody here wrote (librdkafka through confluent-kafka),
and reports what users judge a broker by.

Modules:

- ``workers``: the producer and consumer processes (confluent-kafka).
- ``cluster``: agents, the moto S3 server, and reading CPU, memory and object-store
  counters from ``/proc`` and the agents' ``--stats-file``.
- ``workload``: one configuration run end to end (saturation, fixed rate with
  tailing consumers, cold catch-up read) and its metrics.
- ``scenarios``: the named scenarios ``bench/run.py`` runs.
- ``report``: the machine description, JSON, the Markdown table and the SVG plot.
"""
