"""The store service behind ``sovtel serve``: ClickHouse's HTTP interface over the embedded store, so
several processes (jobs, Grafana, the pipeline) share one chDB directory; see docs/serve.md.
"""
