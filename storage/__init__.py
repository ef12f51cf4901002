"""Storage: schema migrations, ClickHouse backends (embedded chDB and servers), sinks."""
